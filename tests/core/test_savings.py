"""What pruning saves per million requests (o1pruner.savings), by hand."""

from __future__ import annotations

import pytest

from o1pruner.savings import savings_per_million_requests


def test_tokens_and_hours_per_million_requests():
    s = savings_per_million_requests(1200.0, 800.0, tokens_per_second=2000.0, accelerators=2)
    # 400 tokens × 1e6 requests = 4e8 tokens; at 2000 tokens/s: 2e5 s = 55.56 sampler-hours; × 2 GPUs
    assert s["tokensSavedPerMillionRequests"] == 4e8
    assert s["samplerHoursSavedPerMillionRequests"] == pytest.approx(2e5 / 3600)
    assert s["acceleratorHoursSavedPerMillionRequests"] == pytest.approx(2 * 2e5 / 3600)


def test_without_a_throughput_or_accelerators_only_what_is_known():
    s = savings_per_million_requests(100.0, 150.0)
    assert s["tokensSavedPerMillionRequests"] == -5e7  # a longer model costs tokens
    assert s["samplerHoursSavedPerMillionRequests"] is None and s["acceleratorHoursSavedPerMillionRequests"] is None
    s2 = savings_per_million_requests(100.0, 50.0, tokens_per_second=100.0)
    assert s2["samplerHoursSavedPerMillionRequests"] == pytest.approx(5e7 / 100 / 3600)
    assert s2["acceleratorHoursSavedPerMillionRequests"] is None
    with pytest.raises(ValueError):
        savings_per_million_requests(-1.0, 1.0)


def test_savings_reach_the_status_results():
    import json

    from o1pruner_operator.status import parse_results

    from o1pruner.report import termination_summary

    report = {"results": {"datasets": {"d": {"baseLength": 200.0, "prunedLength": 100.0}}, "average": {}},
              "tokens": {}, "savings": savings_per_million_requests(200.0, 100.0, 1000.0, None)}
    parsed = parse_results(json.dumps(termination_summary(report)))
    assert parsed["savings"]["tokensSavedPerMillionRequests"] == 1e8
    assert parsed["savings"]["samplerHoursSavedPerMillionRequests"] == pytest.approx(27.778, abs=1e-3)
    assert "acceleratorHoursSavedPerMillionRequests" not in parsed["savings"]
