r"""Problems: the JSONL loader and the built-in arithmetic word-problem generator.

A dataset is JSONL, one problem per line::

    {"id": "p1", "problem": "Tom has 3 apples ...", "answer": "5"}

Accepted aliases: ``question`` for ``problem``; ``answer`` / ``gold`` / ``final_answer`` /
``solution`` for the answer. A GSM8K-style answer (a worked solution ending in ``#### 42``)
yields ``42``; a MATH-style solution with ``\boxed{...}`` yields the boxed content.
``difficulty`` or MATH's ``level`` ("Level 3") become :attr:`Problem.difficulty`; every other
field is kept in :attr:`Problem.meta`.

Malformed lines (not JSON, not an object, no problem or answer, duplicate id) are counted and
reported in :attr:`LoadResult.bad_lines` as ``(line_number, reason)`` with 1-based line numbers;
they never stop a run. Problems without an ``id`` get ``<dataset>-<i>`` with ``i`` the 0-based
line index in the file, so ids stay stable when other lines are fixed or broken.

``builtin:arithmetic`` (:func:`generate_arithmetic`) needs no file and no hub: seeded word
problems of 1 to 4 steps with exact non-negative integer answers. ``builtin:longthought``
(:func:`generate_longthought`) is the long-thought testbed's chains (:mod:`o1pruner.testbed`),
each with its lower bound ``meta["l_min"]``.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .grading import find_boxed
from .spec import BUILTIN_ARITHMETIC, BUILTIN_LONGTHOUGHT, DatasetSpec, GeneratorSpec

__all__ = [
    "LoadResult",
    "Problem",
    "apply_ops",
    "generate_arithmetic",
    "generate_longthought",
    "load_dataset",
    "parse_jsonl",
]


@dataclass(frozen=True)
class Problem:
    """One problem: a stable id, the problem text, the gold answer, optional difficulty."""

    id: str
    problem: str
    answer: str
    difficulty: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the JSONL line this problem would be written as)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Problem:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        return cls(
            id=str(d["id"]),
            problem=str(d["problem"]),
            answer=str(d["answer"]),
            difficulty=d.get("difficulty"),
            meta=dict(d.get("meta") or {}),
        )


@dataclass
class LoadResult:
    """Problems loaded from a dataset plus the lines that were skipped and why."""

    problems: list[Problem]
    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.problems)


# --------------------------------------------------------------------------- JSONL

_PROBLEM_KEYS = ("problem", "question")
_ANSWER_KEYS = ("answer", "gold", "final_answer", "solution")
_ID_KEYS = ("id", "unique_id")


def _as_text(value: Any) -> str | None:
    """A non-empty string for a JSON scalar answer (``42`` → ``"42"``), else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _final_answer(raw: str, key: str) -> str | None:
    r"""The final answer inside an answer/solution field (``#### 42``, ``\boxed{}``)."""
    if "####" in raw:
        text = raw.rsplit("####", 1)[1].strip()
        # GSM8K writes 1,000 for 1000: drop thousands separators from plain numbers
        if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
            text = text.replace(",", "")
        return text or None
    if "\\boxed" in raw or "\\fbox" in raw:
        return find_boxed(raw)
    if key == "solution":
        return None  # a worked solution without a marked final answer is unusable as gold
    return raw


def _difficulty(obj: dict[str, Any]) -> int | None:
    raw = obj.get("difficulty", obj.get("level"))
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return raw
    m = re.search(r"-?\d+", str(raw))
    return int(m.group(0)) if m else None


def _parse_line(obj: Any, dataset: str, index: int) -> Problem | str:
    """A problem, or the reason the line is bad."""
    if not isinstance(obj, dict):
        return f"not a JSON object ({type(obj).__name__})"
    problem_key = next((k for k in _PROBLEM_KEYS if isinstance(obj.get(k), str) and obj[k].strip()), None)
    problem = obj[problem_key].strip() if problem_key else None
    if problem is None:
        return "missing or empty 'problem' (or 'question')"
    answer = raw = None
    answer_key = None
    for key in _ANSWER_KEYS:
        raw = _as_text(obj.get(key))
        if raw is not None:
            answer_key = key
            answer = _final_answer(raw, key)
            if answer:
                break
    if not answer:
        if answer_key:
            return f"no final answer in {answer_key!r} (expected '#### <answer>' or \\boxed{{}})"
        return "missing or empty 'answer' (or 'solution'/'gold')"
    id_key = next((k for k in _ID_KEYS if _as_text(obj.get(k)) is not None), None)
    pid = _as_text(obj[id_key]) if id_key else f"{dataset}-{index}"
    consumed = {problem_key, answer_key, id_key, "difficulty", "level"}
    meta = {k: v for k, v in obj.items() if k not in consumed}
    if raw != answer and "solution" not in meta:
        meta["solution"] = raw  # the worked solution the final answer came from (GSM8K, MATH)
    return Problem(id=str(pid), problem=problem, answer=answer, difficulty=_difficulty(obj), meta=meta)


def _jsonl_lines(data: str | bytes) -> list[str | UnicodeDecodeError]:
    """Split JSONL into lines; with bytes, each line is decoded on its own (a BOM is allowed on the
    first), so one non-UTF-8 line is one bad line, not a failed file."""
    if isinstance(data, str):
        return data.splitlines()
    lines: list[str | UnicodeDecodeError] = []
    for index, raw in enumerate(data.split(b"\n")):
        try:
            lines.append(raw.rstrip(b"\r").decode("utf-8-sig" if index == 0 else "utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(exc)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_jsonl(data: str | bytes, dataset: str) -> LoadResult:
    """Parse JSONL (text, or bytes decoded line by line) into problems; bad lines are collected,
    not raised. Blank lines are skipped."""
    problems: list[Problem] = []
    bad: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, line in enumerate(_jsonl_lines(data)):
        lineno = index + 1
        if isinstance(line, UnicodeDecodeError):
            bad.append((lineno, f"not UTF-8: byte 0x{line.object[line.start]:02x} at column {line.start + 1}"))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append((lineno, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        except (ValueError, RecursionError) as exc:  # e.g. absurdly deep nesting
            bad.append((lineno, f"not JSON: {type(exc).__name__}"))
            continue
        parsed = _parse_line(obj, dataset, index)
        if isinstance(parsed, str):
            bad.append((lineno, parsed))
        elif parsed.id in seen:
            bad.append((lineno, f"duplicate id {parsed.id!r}"))
        else:
            seen.add(parsed.id)
            problems.append(parsed)
    return LoadResult(problems, bad)


# --------------------------------------------------------------------------- generator

_PEOPLE = [
    ("Tom", "he", "his"), ("Ann", "she", "her"), ("Ravi", "he", "his"), ("Mia", "she", "her"),
    ("Lucas", "he", "his"), ("Sofia", "she", "her"), ("Kenji", "he", "his"), ("Amara", "she", "her"),
    ("Omar", "he", "his"), ("Lena", "she", "her"), ("Diego", "he", "his"), ("Priya", "she", "her"),
]
_OBJECTS = [
    "apples", "marbles", "stickers", "books", "coins", "pencils", "cookies", "stamps",
    "shells", "cards", "balloons", "crayons", "eggs", "toy cars", "beads", "oranges",
]
_PLACES = ["box", "basket", "jar", "bag", "drawer", "crate"]

# Phrasings per operation. Person frame: "{name} has N {obj}." Place frame: "A {place} holds N {obj}."
# {p} is the name in the first step and the pronoun after it; {who} is a (random) person.
_PERSON_OPS = {
    "add": ["{p} buys {n} more", "{p} finds {n} more", "{p} gets {n} more from {other}", "{other} gives {him} {n} more"],
    "sub": ["{p} gives {n} to {other}", "{p} loses {n}", "{p} sells {n}", "{p} uses {n}"],
    "mul": ["{p} now has {k} times as many {obj} as before", "{p} collects more until {he} has {k} times as many"],
    "div": ["{p} splits them into {k} equal groups and keeps one group", "{p} shares them equally with {sharers}, keeping one share"],
    "groups": ["{p} buys {k} packs with {m} {obj} in each pack", "{p} gets {k} bags of {m} {obj}"],
}
_PLACE_OPS = {
    "add": ["{who} puts {n} more {obj} in the {place}", "{who} adds {n} {obj} to the {place}"],
    "sub": ["{who} takes {n} {obj} out of the {place}", "{who} removes {n} {obj} from the {place}"],
    "mul": ["the number of {obj} in the {place} becomes {k} times as large"],
    "div": ["{who} splits the {obj} into {k} equal piles and leaves only one pile in the {place}"],
    "groups": ["{who} adds {k} packs of {m} {obj} to the {place}"],
}


def apply_ops(start: int, ops: list[list[Any]]) -> int:
    """Evaluate a generator program: ``start`` then ops ``["add", n]``, ``["sub", n]``,
    ``["mul", k]``, ``["div", k]`` (exact) and ``["groups", k, m]`` (add ``k * m``)."""
    value = start
    for op in ops:
        kind = op[0]
        if kind == "add":
            value += op[1]
        elif kind == "sub":
            value -= op[1]
        elif kind == "mul":
            value *= op[1]
        elif kind == "div":
            if value % op[1]:
                raise ValueError(f"{value} is not divisible by {op[1]}")
            value //= op[1]
        elif kind == "groups":
            value += op[1] * op[2]
        else:
            raise ValueError(f"unknown op {kind!r}")
    return value


def _choose_op(rng: random.Random, value: int) -> list[int | str]:
    """One operation that keeps the running value a small non-negative integer."""
    kinds = ["add", "add", "sub", "sub", "groups"]
    if 1 <= value <= 12:
        kinds.append("mul")
    divisors = [k for k in (2, 3, 4) if value >= 2 * k and value % k == 0]
    if divisors:
        kinds.append("div")
    if value < 2:
        kinds = [k for k in kinds if k != "sub"]
    kind = rng.choice(kinds)
    if kind == "add":
        return ["add", rng.randint(1, 12)]
    if kind == "sub":
        return ["sub", rng.randint(1, min(value - 1, 12))]
    if kind == "mul":
        return ["mul", rng.choice((2, 3))]
    if kind == "div":
        return ["div", rng.choice(divisors)]
    return ["groups", rng.randint(2, 4), rng.randint(2, 6)]


def _render(rng: random.Random, start: int, ops: list[list[Any]], frame: str) -> tuple[str, dict[str, str]]:
    """The word problem for a program, and the words chosen (kept in ``meta``)."""
    name, he, _his = rng.choice(_PEOPLE)
    obj = rng.choice(_OBJECTS)
    place = rng.choice(_PLACES)
    if frame == "person":
        table = _PERSON_OPS
        parts = [f"{name} has {start} {obj}."]
        question = rng.choice([f"How many {obj} does {name} have now?", f"How many {obj} does {name} have in the end?"])
    else:
        table = _PLACE_OPS
        parts = [f"A {place} holds {start} {obj}."]
        question = f"How many {obj} are in the {place} now?"
    for i, op in enumerate(ops):
        other = rng.choice([p for p in _PEOPLE if p[0] != name])[0]
        k = op[1]
        fields = {
            "p": he if i > 0 else name,
            "he": he,
            "him": "him" if he == "he" else "her",
            "other": other,
            "who": rng.choice(_PEOPLE)[0],
            "obj": obj,
            "place": place,
                    "n": k,
            "k": k,
            "m": op[2] if len(op) > 2 else "",
            "sharers": other if k == 2 else f"{k - 1} friends",
        }
        text = rng.choice(table[op[0]]).format(**fields)
        if i > 0 and rng.random() < 0.5:
            text = "then " + text
        parts.append(text[0].upper() + text[1:] + ".")
    parts.append(question)
    return " ".join(parts), {"name": name, "object": obj, "place": place, "frame": frame}


def generate_arithmetic(
    count: int, seed: int, min_steps: int = 1, max_steps: int = 4, name: str = "arithmetic"
) -> list[Problem]:
    """Seeded arithmetic word problems of graded difficulty (difficulty = number of steps).

    Difficulties cycle ``min_steps..max_steps`` so every prefix is spread evenly. Answers are
    exact non-negative integers; ``meta`` holds the program (``start``, ``ops``) so the answer
    can be recomputed with :func:`apply_ops`. Ids are ``<name>-<seed>-<i>``; the first ``n``
    problems of a larger ``count`` are the same as those of ``count = n``.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if not 1 <= min_steps <= max_steps:
        raise ValueError("need 1 <= min_steps <= max_steps")
    rng = random.Random(seed)
    span = max_steps - min_steps + 1
    problems = []
    for i in range(count):
        steps = min_steps + i % span
        start = rng.randint(2, 20)
        value = start
        ops: list[list[Any]] = []
        for _ in range(steps):
            op = _choose_op(rng, value)
            ops.append(op)
            value = apply_ops(value, [op])
        frame = "person" if rng.random() < 0.7 else "place"
        text, words = _render(rng, start, ops, frame)
        meta = {"generator": "arithmetic", "seed": seed, "index": i, "start": start, "ops": ops, **words}
        problems.append(Problem(id=f"{name}-{seed}-{i}", problem=text, answer=str(value), difficulty=steps, meta=meta))
    return problems


def generate_longthought(count: int, seed: int, min_steps: int = 2, max_steps: int = 4,
                         name: str = "longthought") -> list[Problem]:
    """Seeded testbed problems (:func:`o1pruner.testbed.traces.make_problems`): difficulty = the
    number of operations; ``meta`` holds the chain and ``l_min``, the minimal trace's length in
    tokens (EOS included). Ids are ``<name>-<seed>-<i>``."""
    from dataclasses import replace

    from .testbed.traces import TaskSpec, make_problems

    task = replace(TaskSpec(), min_ops=min_steps, max_ops=max_steps)
    return [
        Problem(id=f"{name}-{seed}-{i}", problem=p.text, answer=str(p.answer), difficulty=len(p.ops),
                meta={"generator": "longthought", "seed": seed, "index": i, **p.to_meta()})
        for i, p in enumerate(make_problems(count, seed, task))
    ]


def lower_bounds(problems: list[Problem], model_path: str) -> dict[str, int] | None:
    """``{problem id: L_min}`` in the tokens of the model at ``model_path``, for the problems
    with a known lower bound (:func:`o1pruner.testbed.traces.lower_bound`), or None if none has
    one. The model's tokenizer is loaded only when a testbed problem needs it."""
    from .testbed.traces import lower_bound

    tokenizer = None
    if any(p.meta.get("generator") == "longthought" for p in problems):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
    out = {p.id: lower_bound(p.meta, tokenizer) for p in problems}
    return {k: int(v) for k, v in out.items() if v is not None} or None


# --------------------------------------------------------------------------- loading


def load_dataset(ds: DatasetSpec, read_bytes: Callable[[str], bytes] | None = None) -> LoadResult:
    """Load the dataset a :class:`~o1pruner.spec.DatasetSpec` names, with ``limit`` applied.

    ``builtin:arithmetic`` runs the generator (``ds.generator`` or its defaults); an
    ``s3://`` source is read with ``read_bytes(uri)`` (default: :func:`o1pruner.storage.read_uri`
    with the process environment); anything else is a local file path.
    """
    if ds.source in (BUILTIN_ARITHMETIC, BUILTIN_LONGTHOUGHT):
        gen = ds.generator or GeneratorSpec()
        count = min(gen.count, ds.limit) if ds.limit else gen.count
        generate = generate_arithmetic if ds.source == BUILTIN_ARITHMETIC else generate_longthought
        return LoadResult(generate(count, gen.seed, gen.min_steps, gen.max_steps, name=ds.name), [])
    if ds.source.startswith("s3://"):
        if read_bytes is None:
            from .storage import read_uri

            read_bytes = read_uri
        raw = read_bytes(ds.source)
    else:
        raw = Path(ds.source).expanduser().read_bytes()
    result = parse_jsonl(raw, ds.name)
    if ds.limit is not None:
        result.problems = result.problems[: ds.limit]
    return result
