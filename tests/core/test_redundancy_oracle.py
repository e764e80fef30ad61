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
