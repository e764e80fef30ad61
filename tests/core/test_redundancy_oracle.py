"""The decode-time redundancy oracle (bench/redundancy_oracle.py): which words it bans, how it
places a trained model between oracle structures, its verdicts, and that docs/testbed.md states
its committed figures exactly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import redundancy_oracle as oracle  # noqa: E402

RESULT = REPO / "bench" / "results" / "redundancy_oracle.json"


def test_every_set_of_kinds_once_smallest_first():
    sets = oracle.left_out_sets()
    assert len(sets) == 2 ** len(oracle.KINDS) == len(set(sets))
    assert sets[0] == () and sets[-1] == oracle.KINDS
    assert [len(s) for s in sets] == sorted(len(s) for s in sets)
    assert len({oracle._job(oracle.testbed.Config(), oracle.run_name(s))["metadata"]["name"] for s in sets}) == 16


def test_banned_words_are_the_opening_words_and_always_the_guess():
    assert oracle.banned_words(()) == ["guess"]
    assert oracle.banned_words(("recompute", "again")) == ["wait", "again", "guess"]  # a recompute opens with "wait"


def test_a_trained_model_is_placed_between_the_structures_it_dropped_and_thinned():
    base = {"restate": 1.0, "check": 3.0, "recompute": 2.67, "again": 0.94}
    gone, fewer = oracle.bracket({"restate": 1.0, "check": 3.0, "recompute": 1.86, "again": 0.0}, base)
    assert gone == ("again",) and fewer == ("recompute", "again")
    assert oracle.bracket(base, base) == ((), ())


def test_verdicts_are_booleans_against_the_testbed_targets():
    row = lambda change, gap, low: {"length_change": {"mean": change}, "gap_closed": gap,  # noqa: E731
                                    "delta_accuracy": {"low": low}}
    stats = {"rows": {"a": row(-0.50, 0.80, -0.01), "b": row(-0.30, 0.95, -0.05)}}
    a, b = oracle.verdicts(stats)
    assert (a["length"], a["gap"], a["accuracy"], a["gap_rounds"]) == (True, True, True, False)
    assert (b["length"], b["gap"], b["accuracy"], b["gap_rounds"]) == (False, True, False, True)
    assert all(type(v) is bool for d in (a, b) for k, v in d.items() if k != "run")


def test_the_committed_oracle_covers_every_structure_and_its_verdicts_follow_its_rows():
    data = json.loads(RESULT.read_text())
    rows = data["stats"]["rows"]
    assert set(rows) == {oracle.run_name(s) for s in oracle.left_out_sets()}
    nothing = rows[oracle.run_name(())]
    assert nothing["accuracy"] == data["stats"]["base"]["accuracy"]  # greedy decoding never guesses
    for left_out in oracle.left_out_sets():  # a banned kind never appears in the answers
        assert all(rows[oracle.run_name(left_out)]["profile"][kind] == 0 for kind in left_out), left_out
    everything = rows[oracle.run_name(oracle.KINDS)]
    assert everything["length_change"]["mean"] < min(r["length_change"]["mean"] for name, r in rows.items()
                                                     if name != oracle.run_name(oracle.KINDS))  # the shortest
    assert data["verdicts"] == oracle.verdicts(data["stats"])


def test_docs_state_the_oracles_findings_as_its_json_renders_them():
    data = json.loads(RESULT.read_text())
    text = oracle.DOCS.read_text()
    assert oracle.docs_text(text, data) == text  # `python bench/redundancy_oracle.py --rerender` rewrites it
    for line in oracle.findings(data) + oracle.beside_lines(data):
        assert line in text, line
    changed = json.loads(json.dumps(data))
    changed["stats"]["rows"][oracle.run_name(("again",))]["delta_accuracy"]["mean"] += 0.01
    assert oracle.docs_text(text, changed) != text


def _per_problem(base: tuple, structures: dict[str, tuple]) -> dict:
    """Oracle per-problem data: two difficulties of 40 problems each, L_min 10; each structure is
    (correct on difficulty 2, correct on 3, its length)."""
    def arrays(c2: float, c3: float, length: float) -> dict:
        correct = [i < 40 * c2 for i in range(40)] + [i < 40 * c3 for i in range(40)]
        return {"0": {"correct": correct, "length": [length] * 80}}

    return {"difficulty": [2] * 40 + [3] * 40, "l_min": [10.0] * 80, "base": arrays(*base),
            "methods": {name: arrays(*s) for name, s in structures.items()}}


def test_difficulty_mixture_picks_per_difficulty_the_structure_that_keeps_accuracy_within_the_gap():
    # base 110 tokens (gap 100); "short" closes 100 % but loses difficulty 2; "mid" closes 80 %.
    pp = _per_problem((0.9, 0.5, 110.0), {"short": (0.5, 0.75, 10.0), "mid": (1.0, 0.5, 30.0), "none": (0.9, 0.5, 110.0)})
    mix = oracle.difficulty_mixture(pp, target_gap=0.9)
    # only short on 3 + mid on 2 (length 20, 90 %) or short on both (100 %) reach 90 %; the first keeps difficulty 2
    assert mix["structures"] == {"2": "mid", "3": "short"}
    assert mix["mean_length"] == pytest.approx(20.0) and mix["gap_closed"] == pytest.approx(0.9)
    assert mix["delta_accuracy"] == pytest.approx({"2": 0.1, "3": 0.25})
    assert mix["accuracy"] == pytest.approx((40 + 30) / 80)
    assert mix["guard"]["buckets"]["3"]["mean"] == pytest.approx(0.25)
    assert oracle.difficulty_mixture(pp, target_gap=0.95)["structures"] == {"2": "short", "3": "short"}
    assert oracle.difficulty_mixture(pp, target_gap=1.01) is None  # nothing closes more than all of it


def test_difficulty_mixture_runs_the_accuracy_guard_on_the_mixed_outcomes():
    # the only 90 % structure loses 40 points on difficulty 2: the guard names that bucket
    pp = _per_problem((0.9, 0.5, 110.0), {"short": (0.5, 0.75, 10.0), "none": (0.9, 0.5, 110.0)})
    mix = oracle.difficulty_mixture(pp, target_gap=0.9)
    assert mix["structures"] == {"2": "short", "3": "short"} and mix["guard"]["passed"] is False
    assert "2" in mix["guard"]["failed"] and "3" not in mix["guard"]["failed"]
