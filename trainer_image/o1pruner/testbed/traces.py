r"""Problems and long-thought reasoning traces of the testbed (pure, seeded, no torch).

A problem is a chain of additions and subtractions over small numbers, written with a label
before each operation, ``12 #1 + 7 #2 - 5 #3 + 9``; its difficulty is its number of operations.
A *trace* solves it one labelled step per operation, ``#1 12 + 7 = 19 ;``, and ends with
``answer \boxed{ 23 }``. (The labels let a small model find the next operation by looking it up
instead of counting; they are part of the task, the same for every method.) Tokens are separated by single
spaces and every number is one token, so a trace's token length is ``len(text.split())``.

The behaviour the reference model imitates adds redundancy of the kinds the O1-Pruner paper
(arXiv 2501.12570, Sec. 1) describes in long-thought models, each drawn independently per
trace so the K samples of one problem differ widely in length:

- restating the problem first (``restate 12 + 7 - 5 + 9 ;``);
- re-verifying a step already done by its inverse (``check 19 - 7 = 12 ok ;``);
- "wait, let me recompute" (``wait #1 12 + 7 = 19 ;``);
- solving again from the start (``again #1 12 + 7 = 19 ; … ; same ;``).

Some of it is useful. A step goes wrong with probability ``error_rate``; a check or a recompute
right after it catches the error (``check 20 - 7 = 13 wrong ; fix #1 12 + 7 = 19 ;``), and a
second solve that disagrees replaces the answer (``… ; differ ;``). An error nothing catches
reaches the final answer. There is also a short-cut, a guess (``guess 12 + 7 - 5 + 9 ≈ 20 ;
answer \boxed{ 20 }``, the answer rounded to a multiple of ten), shorter than the minimal
trace and usually wrong: pruning length alone (λ = 0) has an accuracy cost to avoid.

The *minimal trace* (no redundancy, no error) of every problem is known; its length plus the
end-of-sequence token, :func:`minimal_length`, is L_min, the lower bound against which the
share of the redundancy gap a pruned model closes is measured.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

#: Step labels (``#1`` … ``#8``): the largest number of operations a problem may have.
LABELS = tuple(f"#{i}" for i in range(1, 9))
#: Words of the trace language besides numbers (the tokenizer's vocabulary is built from these).
WORDS = ("+", "-", "=", ";", "≈", "restate", "check", "ok", "wrong", "fix", "wait", "again",
         "same", "differ", "guess", "answer", "\\boxed{", "}", *LABELS)


@dataclass(frozen=True)
class TaskSpec:
    """The problem family: values stay in ``[0, max_value]``, operands in ``[1, max_operand]``."""

    max_value: int = 29
    max_operand: int = 5
    min_ops: int = 2
    max_ops: int = 4


@dataclass(frozen=True)
class TraceStyle:
    """How the reference model reasons: the probability of each kind of redundancy.

    Probabilities above 0.5 make the redundant choice the most likely one at its decision
    point, so greedy decoding of the reference model writes it (a long greedy answer) while
    sampled answers include each part only some of the time (lengths vary within a problem).
    """

    p_restate: float = 0.6
    p_check: float = 0.65
    p_recompute: float = 0.6
    p_again: float = 0.6
    p_guess: float = 0.08
    error_rate: float = 0.1
    max_error: int = 3
    #: Share of traces written in a concise mode: each operation once (its errors, at
    #: ``error_rate``, left uncaught), no redundancy, no opening word of its own. Such a model can
    #: reason without its redundancy, as pretrained long-thought models can; below about 0.15 the
    #: redundant opening stays the most likely one, so greedy answers are still long.
    p_concise: float = 0.0
    #: The concise mode's own step error rate (None: ``error_rate``). At 0 its traces are the
    #: minimal traces themselves: concise reasoning as reliable as the verbose mode's checked
    #: result, the premise of length pruning (the redundancy adds nothing the answer needs).
    concise_error_rate: float | None = None


@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]
    values: tuple[int, ...] = field(compare=False)  # running value after each operation

    @property
    def answer(self) -> int:
        return self.values[-1]

    @property
    def text(self) -> str:
        return " ".join([str(self.start), *(f"{LABELS[i]} {op} {b}" for i, (op, b) in enumerate(self.ops))])

    def to_meta(self) -> dict:
        return {"start": self.start, "ops": [list(o) for o in self.ops], "l_min": minimal_length(self)}


def apply(x: int, op: str, b: int) -> int:
    return x + b if op == "+" else x - b


def make_problem(rng: random.Random, n_ops: int, task: TaskSpec = TaskSpec()) -> Problem:
    """A random chain of ``n_ops`` operations whose running value stays in range."""
    start = rng.randint(1, task.max_value)
    x, ops, values = start, [], []
    for _ in range(n_ops):
        b = rng.randint(1, task.max_operand)
        can_add, can_sub = x + b <= task.max_value, x - b >= 0
        op = rng.choice(["+", "-"]) if can_add and can_sub else ("+" if can_add else "-")
        x = apply(x, op, b)
        ops.append((op, b))
        values.append(x)
    return Problem(start, tuple(ops), tuple(values))


def make_problems(count: int, seed: int, task: TaskSpec = TaskSpec()) -> list[Problem]:
    """``count`` seeded problems; difficulties cycle ``min_ops..max_ops`` so any prefix is balanced."""
    rng = random.Random(seed)
    span = task.max_ops - task.min_ops + 1
    return [make_problem(rng, task.min_ops + i % span, task) for i in range(count)]


def _step(i: int, x: int, op: str, b: int, y: int) -> list[str]:
    return [LABELS[i], str(x), op, str(b), "=", str(y), ";"]


def _answer(value: int) -> list[str]:
    return ["answer", "\\boxed{", str(value), "}"]


def minimal_trace(p: Problem) -> str:
    """The shortest correct step-by-step trace: each operation once, then the answer."""
    words: list[str] = []
    x = p.start
    for i, ((op, b), y) in enumerate(zip(p.ops, p.values)):
        words += _step(i, x, op, b, y)
        x = y
    return " ".join(words + _answer(p.answer))


def minimal_length(p: Problem, tokenizer=None) -> int:
    """L_min in generated tokens, counted as the samplers count them (EOS included): in the
    testbed's tokens (one per word), or with a Hugging Face ``tokenizer`` in its tokens (a
    pretrained model warmed up on the traces writes them in its own BPE)."""
    text = minimal_trace(p)
    if tokenizer is None:
        return len(text.split()) + 1
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1


def problem_from_meta(meta: dict) -> Problem:
    """The problem whose :meth:`Problem.to_meta` is ``meta`` (a dataset record's ``meta``)."""
    x, values = meta["start"], []
    for op, b in meta["ops"]:
        x = apply(x, op, b)
        values.append(x)
    return Problem(meta["start"], tuple((op, b) for op, b in meta["ops"]), tuple(values))


def lower_bound(meta: dict, tokenizer=None) -> int | None:
    """L_min of a dataset problem from its ``meta``: for a testbed problem (its chain of
    operations) the minimal trace's length in ``tokenizer``'s tokens (:func:`minimal_length`),
    else a given ``meta["l_min"]``, else None (no known lower bound)."""
    if meta.get("generator") == "longthought" and "ops" in meta:
        return minimal_length(problem_from_meta(meta), tokenizer)
    return meta.get("l_min")


def _wrong(rng: random.Random, y: int, style: TraceStyle) -> int:
    """A wrong result, off by 1 to ``max_error`` (carried forward, a value may leave the task's
    range by up to ``max_ops * max_error``; the tokenizer covers that)."""
    return y + rng.choice([d for d in range(-style.max_error, style.max_error + 1) if d])


def _step_result(rng: random.Random, x: int, op: str, b: int, style: TraceStyle,
                 error_rate: float | None = None) -> tuple[int, int]:
    """A step's true result and the one written: wrong with probability ``error_rate`` (default
    ``style.error_rate``)."""
    true_y = apply(x, op, b)
    rate = style.error_rate if error_rate is None else error_rate
    return true_y, _wrong(rng, true_y, style) if rng.random() < rate else true_y


def concise_trace(p: Problem, rng: random.Random, style: TraceStyle = TraceStyle()) -> str:
    """A trace of the concise mode: the minimal trace's steps, each wrong with probability
    ``style.concise_error_rate`` (default ``style.error_rate``; a wrong value is carried forward:
    nothing checks it)."""
    words: list[str] = []
    x = p.start
    for i, (op, b) in enumerate(p.ops):
        _, x_next = _step_result(rng, x, op, b, style, style.concise_error_rate)
        words += _step(i, x, op, b, x_next)
        x = x_next
    return " ".join(words + _answer(x))


def sample_trace(p: Problem, rng: random.Random, style: TraceStyle = TraceStyle(),
                 task: TaskSpec = TaskSpec()) -> str:
    """One reasoning trace for ``p`` drawn from ``style`` (redundant, sometimes wrong)."""
    if rng.random() < style.p_guess:
        rounded = 10 * round(p.answer / 10)  # within the tokenizer's number range
        return " ".join(["guess", *p.text.split(), "≈", str(rounded), ";", *_answer(rounded)])
    if style.p_concise and rng.random() < style.p_concise:  # no draw when off: the same traces as before
        return concise_trace(p, rng, style)
    words: list[str] = []
    if rng.random() < style.p_restate:
        words += ["restate", *p.text.split(), ";"]
    x = p.start
    for i, (op, b) in enumerate(p.ops):
        true_y, y = _step_result(rng, x, op, b, style)
        words += _step(i, x, op, b, y)
        if rng.random() < style.p_check:
            inverse = "-" if op == "+" else "+"
            back = apply(y, inverse, b)
            if back == x:
                words += ["check", str(y), inverse, str(b), "=", str(back), "ok", ";"]
            else:
                words += ["check", str(y), inverse, str(b), "=", str(back), "wrong", ";", "fix",
                          *_step(i, x, op, b, true_y)]
                y = true_y
        if rng.random() < style.p_recompute:
            words += ["wait", *_step(i, x, op, b, true_y)]
            y = true_y
        x = y
    final = x
    if rng.random() < style.p_again:
        words.append("again")
        z = p.start
        for i, ((op, b), v) in enumerate(zip(p.ops, p.values)):
            words += _step(i, z, op, b, v)
            z = v
        words += ["same" if z == final else "differ", ";"]
        final = z
    return " ".join(words + _answer(final))


def trace_answer(text: str) -> int | None:
    r"""The number inside the trace's ``\boxed{ … }``, or None."""
    words = text.split()
    for i, w in enumerate(words[:-1]):
        if w == "\\boxed{" and words[i + 1].lstrip("-").isdigit():
            return int(words[i + 1])
    return None


def recipe_dict(task: TaskSpec, style: TraceStyle) -> dict:
    out = {"task": asdict(task), "style": asdict(style)}
    if not style.p_concise:  # absent when off, so the recipes without it keep their digests
        del out["style"]["p_concise"]
    if style.concise_error_rate is None:  # likewise
        del out["style"]["concise_error_rate"]
    return out


#: The words that open each kind of redundancy (and of error repair) in a trace.
REDUNDANCY_MARKERS = {"restate": "restate", "check": "check", "recompute": "wait", "again": "again",
                      "guess": "guess", "fix": "fix"}


def redundancy_profile(text: str) -> dict[str, int]:
    """How many times each kind of redundancy occurs in a trace, e.g. ``{"check": 2, ...}``.

    Counts the opening word of each part (``restate``, ``check``, ``wait`` for a recompute,
    ``again`` for a second solve, ``guess``, ``fix`` for a repaired error). Used to show *what* a
    pruned model stopped writing, not only how much shorter it got.
    """
    words = text.split()
    return {kind: words.count(word) for kind, word in REDUNDANCY_MARKERS.items()}


#: Why a wrong answer is wrong (:func:`error_cause`).
ERROR_CAUSES = ("operand", "arithmetic", "after-first-solve", "other")


def error_cause(ops: list | tuple, answer: int, text: str) -> str:
    """Why the answer ``text`` to a chain of operations ``ops`` (whose result is ``answer``) is wrong.

    Read off its first solve (everything before a second solve, ``again``; recomputes and fixes
    included): ``operand`` when a step uses another operand than the problem's for its label,
    ``arithmetic`` when a step's result is not its operation's, ``after-first-solve`` when the
    first solve ends at the right value (the error came later: in this testbed, from the second
    solve, whose result the answer takes), ``other`` otherwise (no steps, a guess, …).
    """
    first = text.split(" again ")[0].split()
    operands = {LABELS[i]: int(b) for i, (_, b) in enumerate(ops)}
    steps = [first[i:i + 7] for i in range(len(first) - 6)
             if first[i] in operands and first[i + 2] in ("+", "-") and first[i + 4] == "=" and first[i + 6] == ";"]
    try:
        parsed = [(w[0], int(w[1]), w[2], int(w[3]), int(w[5])) for w in steps]
    except ValueError:
        return "other"
    if any(b != operands[label] for label, _, _, b, _ in parsed):
        return "operand"
    if any(apply(x, op, b) != y for _, x, op, b, y in parsed):
        return "arithmetic"
    last = [y for label, _, _, _, y in parsed if label == LABELS[len(ops) - 1]]
    return "after-first-solve" if last and last[-1] == answer else "other"

