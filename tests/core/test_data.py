"""Dataset loading (JSONL, aliases, bad lines) and the built-in arithmetic generator."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from o1pruner.data import LoadResult, Problem, generate_arithmetic, load_dataset, parse_jsonl
from o1pruner.spec import DatasetSpec, GeneratorSpec


def _recompute(start: int, ops: list) -> int:
    """Independent re-evaluation of a generator program (not data.apply_ops)."""
    value = start
    for op in ops:
        kind, *args = op
        table = {
            "add": lambda v: v + args[0],
            "sub": lambda v: v - args[0],
            "mul": lambda v: v * args[0],
            "div": lambda v: v / args[0],
            "groups": lambda v: v + args[0] * args[1],
        }
        value = table[kind](value)
    assert value == int(value), "division must be exact"
    return int(value)


# --------------------------------------------------------------------------- Problem


def test_problem_round_trip_and_hashable():
    p = Problem("a-1", "What is 2+2?", "4", difficulty=1, meta={"src": "x"})
    assert Problem.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert Problem.from_dict({"id": 1, "problem": "q", "answer": 3}) == Problem("1", "q", "3")
    hash(p)  # frozen: usable in sets even with a meta dict
    with pytest.raises(AttributeError):
        p.answer = "5"  # type: ignore[misc]


# --------------------------------------------------------------------------- generator


def test_generator_is_deterministic_and_seeded():
    a = generate_arithmetic(40, seed=7)
    assert a == generate_arithmetic(40, seed=7)
    assert [p.problem for p in a] != [p.problem for p in generate_arithmetic(40, seed=8)]
    assert [p.id for p in a] == [f"arithmetic-7-{i}" for i in range(40)]
    assert generate_arithmetic(10, seed=7) == a[:10]  # prefix-stable: limit == smaller count
    assert generate_arithmetic(3, seed=1, name="train")[2].id == "train-1-2"


def test_generator_answers_recompute():
    for p in generate_arithmetic(400, seed=3):
        assert int(p.answer) == _recompute(p.meta["start"], p.meta["ops"])
        assert int(p.answer) >= 0
        assert len(p.meta["ops"]) == p.difficulty
        # the numbers of the program appear in the text, the answer is an exact integer
        assert str(p.meta["start"]) in p.problem
        assert re.fullmatch(r"\d+", p.answer)
        assert p.problem.endswith("?")


def test_generator_numbers_stay_small():
    problems = generate_arithmetic(400, seed=11)
    assert max(int(p.answer) for p in problems) <= 200
    one_step = [p for p in problems if p.difficulty == 1]
    assert max(int(p.answer) for p in one_step) <= 50


@pytest.mark.parametrize(("lo", "hi"), [(1, 4), (2, 3), (3, 3)])
def test_generator_difficulty_spread(lo, hi):
    problems = generate_arithmetic(50, seed=0, min_steps=lo, max_steps=hi)
    counts = Counter(p.difficulty for p in problems)
    assert set(counts) == set(range(lo, hi + 1))
    assert max(counts.values()) - min(counts.values()) <= 1
    prefix = Counter(p.difficulty for p in problems[: (hi - lo + 1) * 2])
    assert set(prefix.values()) == {2}  # every prefix is spread too


def test_generator_varies_wording():
    problems = generate_arithmetic(200, seed=5)
    assert len({p.meta["name"] for p in problems}) >= 8
    assert len({p.meta["object"] for p in problems}) >= 10
    assert {p.meta["frame"] for p in problems} == {"person", "place"}
    assert {op[0] for p in problems for op in p.meta["ops"]} == {"add", "sub", "mul", "div", "groups"}
    assert len({p.problem for p in problems}) == len(problems)


def test_generator_one_step_example_reads_naturally():
    p = next(p for p in generate_arithmetic(20, seed=0) if p.difficulty == 1)
    assert re.match(r"^[A-Z].*\. .*\. How many .* now\?$|^[A-Z].*\. .*\. How many .* in the end\?$", p.problem)


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError):
        generate_arithmetic(5, seed=0, min_steps=3, max_steps=2)
    assert generate_arithmetic(0, seed=0) == []


# --------------------------------------------------------------------------- JSONL


def test_parse_jsonl_aliases_and_final_answers():
    lines = [
        {"problem": "p0", "answer": "7"},
        {"question": "p1", "answer": "Work: 3 + 4 = 7.\n#### 7"},
        {"question": "p2", "answer": "big\n#### 1,250"},
        {"problem": "p3", "solution": r"Thus the area is $\boxed{\frac{\pi}{2}}$.", "level": "Level 3", "type": "Geometry"},
        {"problem": "p4", "gold": 12.0, "id": "custom-id"},
        {"problem": "p5", "answer": r"\boxed{x+1}", "difficulty": 2},
        {"problem": "p6", "answer": "3", "solution": "long text", "unique_id": "test/algebra/1.json"},
    ]
    result = parse_jsonl("\n".join(json.dumps(x) for x in lines), "ds")
    assert result.bad_lines == []
    by_problem = {p.problem: p for p in result.problems}
    assert by_problem["p0"] == Problem("ds-0", "p0", "7")
    assert by_problem["p1"].answer == "7" and by_problem["p1"].meta["solution"].startswith("Work")
    assert by_problem["p2"].answer == "1250"
    assert by_problem["p3"].answer == r"\frac{\pi}{2}"
    assert by_problem["p3"].difficulty == 3 and by_problem["p3"].meta["type"] == "Geometry"
    assert by_problem["p4"].id == "custom-id" and by_problem["p4"].answer == "12"
    assert by_problem["p5"].answer == "x+1" and by_problem["p5"].difficulty == 2
    assert by_problem["p6"].id == "test/algebra/1.json" and by_problem["p6"].meta == {"solution": "long text"}


def test_parse_jsonl_counts_bad_lines():
    text = "\n".join(
        [
            json.dumps({"problem": "good", "answer": "1"}),
            "{not json",
            "",
            json.dumps([1, 2]),
            json.dumps({"problem": "", "answer": "1"}),
            json.dumps({"problem": "no answer"}),
            json.dumps({"problem": "q", "answer": "   "}),
            json.dumps({"problem": "q", "solution": "no marked final answer"}),
            json.dumps({"id": "dup", "problem": "a", "answer": "1"}),
            json.dumps({"id": "dup", "problem": "b", "answer": "2"}),
            "[" * 100_000,
            json.dumps({"problem": "last", "answer": "9"}),
        ]
    )
    result = parse_jsonl(text, "ds")
    assert [p.problem for p in result.problems] == ["good", "a", "last"]
    assert result.problems[-1].id == "ds-11"  # 0-based line index, blank/bad lines included
    lines = dict(result.bad_lines)
    assert sorted(lines) == [2, 4, 5, 6, 7, 8, 10, 11]
    assert lines[2].startswith("not JSON")
    assert "not a JSON object" in lines[4]
    assert "problem" in lines[5]
    assert "answer" in lines[6] and "answer" in lines[7]
    assert "solution" in lines[8]
    assert "duplicate id 'dup'" in lines[10]
    assert lines[11].startswith("not JSON")


def test_sample_dataset_file(sample_dataset_path):
    result = parse_jsonl(sample_dataset_path.read_text(), "gsm8k-sample")
    assert len(result.problems) == 20
    assert [n for n, _ in result.bad_lines] == [21, 22]
    answers = {p.answer for p in result.problems}
    assert {"1500", "-5", "0.625", "18.5"} <= answers
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", a) for a in answers)


# --------------------------------------------------------------------------- load_dataset


def test_load_builtin_uses_generator_spec_and_limit():
    ds = DatasetSpec(name="arith", source="builtin:arithmetic", generator=GeneratorSpec(count=30, seed=4, max_steps=2))
    result = load_dataset(ds)
    assert isinstance(result, LoadResult) and len(result.problems) == 30 and result.bad_lines == []
    assert {p.difficulty for p in result.problems} == {1, 2}
    assert result.problems[0].id == "arith-4-0"
    limited = load_dataset(ds.model_copy(update={"limit": 5}))
    assert limited.problems == result.problems[:5]
    assert len(load_dataset(DatasetSpec(name="d", source="builtin:arithmetic")).problems) == GeneratorSpec().count


def test_load_local_file_with_limit(sample_dataset_path):
    result = load_dataset(DatasetSpec(name="gsm", source=str(sample_dataset_path), limit=4))
    assert [p.id for p in result.problems] == ["gsm-0", "gsm-1", "gsm-2", "gsm-3"]
    assert len(result.bad_lines) == 2  # bad lines are still reported


def test_load_s3_uses_read_bytes(sample_dataset_path):
    seen = []

    def read_bytes(uri: str) -> bytes:
        seen.append(uri)
        return b"\xef\xbb\xbf" + sample_dataset_path.read_bytes()  # a BOM is tolerated

    result = load_dataset(DatasetSpec(name="s", source="s3://bucket/data/x.jsonl"), read_bytes=read_bytes)
    assert seen == ["s3://bucket/data/x.jsonl"]
    assert len(result.problems) == 20


def test_load_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(DatasetSpec(name="m", source=str(tmp_path / "missing.jsonl")))
