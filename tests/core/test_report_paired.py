"""The report's paired comparison: matched problems, CIs, gap closed, PNG with L_min."""

from __future__ import annotations

import pytest

from o1pruner.report import build_report, paired_summary, render_png


def _recs(correct, lengths, difficulty=None):
    return [{"dataset": "d", "problem_id": f"p{i}", "sample_index": 0, "correct": c, "length": n,
             "difficulty": (difficulty[i] if difficulty else 1)} for i, (c, n) in enumerate(zip(correct, lengths))]


def test_paired_summary_matches_problems_and_measures_the_gap():
    base = _recs([True, True, False, True] * 25, [100, 80, 90, 110] * 25, [1, 2] * 50)
    pruned = _recs([True, True, False, True] * 25, [40, 30, 50, 40] * 25, [1, 2] * 50)
    l_min = {f"p{i}": 20 for i in range(100)}
    s = paired_summary(base, pruned, l_min)
    assert s["problems"] == 100
    assert s["deltaAccuracy"]["mean"] == 0 and s["deltaAccuracy"]["low"] == 0
    assert s["lengthChange"]["mean"] == pytest.approx(160 / 380 - 1)
    assert s["gapClosed"] == pytest.approx((95 - 40) / (95 - 20))
    assert s["mcnemar"] == {"gained": 0, "lost": 0, "p_value": 1.0}
    assert set(s["byDifficulty"]) == {"1", "2"}


def test_paired_summary_ignores_unmatched_problems_and_omits_gap_without_l_min():
    base = _recs([True] * 10, [50] * 10)
    pruned = _recs([False] * 5, [10] * 5)
    s = paired_summary(base, pruned)
    assert s["problems"] == 5
    assert s["deltaAccuracy"]["mean"] == -1
    assert "gapClosed" not in s


def test_report_png_marks_l_min(tmp_path):
    base = _recs([True, False] * 20, [100, 90] * 20, [2, 3] * 20)
    pruned = _recs([True, False] * 20, [40, 50] * 20, [2, 3] * 20)
    results = {"average": {"baseLength": 95, "prunedLength": 45, "baseAccuracy": 0.5, "prunedAccuracy": 0.5,
                           "aes": 0.5}, "datasets": {}}
    report = build_report("job", results, base, pruned, l_min={f"p{i}": 20 for i in range(40)})
    assert report["paired"]["meanLMin"] == 20
    png = render_png(report, base, pruned)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
