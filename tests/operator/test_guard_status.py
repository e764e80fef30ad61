"""The accuracy guard's verdict in the job's status (pure status builders)."""

from __future__ import annotations

import json

from o1pruner_operator.status import guard_condition, parse_results

FAILED = {
    "datasets": {"math500": {"baseAccuracy": 0.8, "prunedAccuracy": 0.7, "baseLength": 200, "prunedLength": 100}},
    "accepted": False,
    "guard": {"passed": False, "failed": ["all", "4"], "maxAccuracyDrop": 0.01,
              "message": "accuracy guard failed (CI lower bound below −1.0 points): difficulty 4: accuracy "
                         "0.800 → 0.600, Δ -20.0 points (95 % CI -30.0 to -10.0, n=100)"},
}


def test_a_failed_guard_becomes_a_true_condition_naming_the_bucket():
    results = parse_results(json.dumps(FAILED))
    assert results["accepted"] is False and results["guard"]["failed"] == ["all", "4"]
    status, reason, message = guard_condition(results)
    assert status is True and reason == "AccuracyDropped"
    assert "difficulty 4" in message and "-20.0 points" in message and "not accepted" in message


def test_a_passed_guard_is_a_false_condition_and_no_verdict_is_none():
    passed = {**FAILED, "accepted": True, "guard": {"passed": True, "failed": [], "message": "accuracy guard passed"}}
    assert guard_condition(parse_results(json.dumps(passed))) == (False, "AccuracyKept", "accuracy guard passed")
    legacy = {"datasets": FAILED["datasets"]}
    parsed = parse_results(json.dumps(legacy))
    assert "guard" not in parsed and "accepted" not in parsed and guard_condition(parsed) is None
    junk = {**legacy, "guard": {"passed": "no"}, "accepted": "yes"}
    assert guard_condition(parse_results(json.dumps(junk))) is None


def test_reference_truncation_condition_from_the_sample_message():
    from o1pruner_operator.status import parse_diagnostics, truncation_condition

    msg = json.dumps({"diagnostics": {"samples": 800, "truncatedSamples": 40, "truncationRate": 0.05,
                                      "zeroRewardVarianceShare": 0.1, "junk": "x"}})
    diag = parse_diagnostics(msg)
    assert diag == {"samples": 800, "truncatedSamples": 40, "truncationRate": 0.05, "zeroRewardVarianceShare": 0.1}
    status, reason, message = truncation_condition(diag)
    assert status is True and reason == "TruncationAbove1Percent" and "5.0 % of the reference samples (40 of 800)" in message
    assert truncation_condition({"truncationRate": 0.005})[0] is False
    assert parse_diagnostics("Traceback") is None and parse_diagnostics('{"datasets": {}}') is None
