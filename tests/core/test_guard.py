"""The accuracy guard (o1pruner.guard): paired per-bucket verdicts, wired into the report."""

from __future__ import annotations

import pytest

from o1pruner.guard import accuracy_guard, guard_records
from o1pruner.report import build_report, termination_summary
from o1pruner.spec import GuardSpec


def _run(hard_lost: int, n: int = 60):
    """Base solves every problem; the pruned model loses ``hard_lost`` of the hard bucket (3)."""
    base = [True] * (2 * n)
    pruned = [True] * n + [i >= hard_lost for i in range(n)]
    buckets = [1] * n + [3] * n
    return base, pruned, buckets


def test_a_run_that_loses_accuracy_on_the_hard_bucket_fails_naming_it():
    g = accuracy_guard(*_run(hard_lost=6), max_drop=0.01)
    assert not g["passed"]
    assert "3" in g["failed"] and "1" not in g["failed"]
    hard = g["buckets"]["3"]
    assert hard["verdict"] == "fail" and hard["n"] == 60
    assert hard["deltaAccuracy"]["mean"] == pytest.approx(-0.1)
    assert hard["deltaAccuracy"]["low"] < -0.01
    assert g["buckets"]["1"]["verdict"] == "pass"
    assert "difficulty 3" in g["message"] and "-10.0 points" in g["message"] and "n=60" in g["message"]


def test_an_equal_run_passes():
    g = accuracy_guard(*_run(hard_lost=0))
    assert g["passed"] and g["failed"] == [] and set(g["buckets"]) == {"all", "1", "3"}
    assert all(b["deltaAccuracy"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": b["n"]} for b in g["buckets"].values())
    assert g["message"].startswith("accuracy guard passed")


def test_a_generous_threshold_tolerates_the_same_loss():
    assert accuracy_guard(*_run(hard_lost=6), max_drop=0.5)["passed"]


def test_a_small_bucket_is_inconclusive_but_counts_overall():
    base = [True] * 45
    pruned = [True] * 40 + [False] * 5  # all 5 problems of bucket 4 lost
    buckets = [1] * 40 + [4] * 5
    g = accuracy_guard(base, pruned, buckets, max_drop=0.01, min_problems=20)
    assert g["buckets"]["4"]["verdict"] == "inconclusive" and g["inconclusive"] == ["4"]
    assert g["failed"] == ["all"] and not g["passed"]  # the overall bucket still sees the loss
    g2 = accuracy_guard([True] * 45, [True] * 44 + [False], [1] * 40 + [4] * 5, max_drop=0.2, min_problems=20)
    assert g2["passed"] and "difficulty 4" in g2["message"]


def test_nothing_paired_fails_and_bad_input_is_refused():
    assert not accuracy_guard([], [], [])["passed"]
    with pytest.raises(ValueError, match="paired"):
        accuracy_guard([True], [True, False], [1])


def _recs(correct, difficulty):
    return [{"dataset": "d", "problem_id": f"p{i}", "correct": c, "length": 50, "difficulty": d}
            for i, (c, d) in enumerate(zip(correct, difficulty))]


def test_report_carries_the_verdict_and_refuses_the_model():
    base, pruned, buckets = _run(hard_lost=6)
    results = {"datasets": {}, "average": {}}
    report = build_report("j", results, _recs(base, buckets), _recs(pruned, buckets), guard=GuardSpec())
    assert report["accepted"] is False and report["guard"]["failed"] == ["all", "3"]
    summary = termination_summary(report)
    assert summary["accepted"] is False and summary["guard"]["failed"] == ["all", "3"]
    assert "difficulty 3" in summary["guard"]["message"]
    same = build_report("j", results, _recs(base, buckets), _recs(base, buckets), guard=GuardSpec())
    assert same["accepted"] is True and same["guard"]["passed"]
    off = build_report("j", results, _recs(base, buckets), _recs(pruned, buckets), guard=GuardSpec(enabled=False))
    assert off["accepted"] is True and "guard" not in off


def test_guard_records_pairs_first_answers():
    base = _recs([True, True], [1, 1]) + [{"dataset": "d", "problem_id": "p0", "correct": False, "difficulty": 1}]
    g = guard_records(base, _recs([True, True], [1, 1]), min_problems=1)
    assert g["buckets"]["all"]["n"] == 2 and g["passed"]


def test_the_verdict_survives_a_termination_message_over_4_kib():
    import json

    from o1pruner.report import fit_termination

    base, pruned, buckets = _run(hard_lost=6)
    report = build_report("j", {"datasets": {}, "average": {"baseAccuracy": 1.0}}, _recs(base, buckets),
                          _recs(pruned, buckets), guard=GuardSpec())
    summary = termination_summary(report)
    summary["datasets"] = {f"set-{i}": {"baseAccuracy": 0.5, "prunedAccuracy": 0.4, "baseLength": 1234.5,
                                        "prunedLength": 999.25, "aes": 0.123456} for i in range(40)}
    text = fit_termination(summary)
    assert len(text.encode()) <= 4096
    doc = json.loads(text)  # still valid JSON: the rows went, the verdict stayed
    assert "datasets" not in doc and doc["accepted"] is False and doc["guard"]["failed"] == ["all", "3"]
    assert doc["average"] == {"baseAccuracy": 1.0}
    small = {"average": {"aes": 1.0}, "tokens": {"saved": 3}}
    assert json.loads(fit_termination(small)) == small
