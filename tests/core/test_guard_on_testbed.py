"""The accuracy guard (o1pruner.guard) on the committed testbed benchmark's per-problem outcomes
(bench/results/testbed_per_problem.json.gz: 600 held-out problems, 3 training seeds): it rejects
the runs that lost accuracy, names where, and accepts runs that gained it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from o1pruner.guard import accuracy_guard

PER_PROBLEM = Path(__file__).resolve().parents[2] / "bench" / "results" / "testbed_per_problem.json.gz"


@pytest.fixture(scope="module")
def runs() -> dict:
    return json.loads(gzip.decompress(PER_PROBLEM.read_bytes()))


def _guard(runs: dict, method: str, seed: str) -> dict:
    return accuracy_guard(runs["base"][seed]["correct"], runs["methods"][method][seed]["correct"], runs["difficulty"])


def _delta(runs: dict, method: str, seed: str) -> float:
    base, pruned = runs["base"][seed]["correct"], runs["methods"][method][seed]["correct"]
    return (sum(pruned) - sum(base)) / len(base)


def test_guard_rejects_every_run_that_lost_accuracy_overall(runs):
    lost = [(m, s) for m in runs["methods"] for s in runs["base"] if _delta(runs, m, s) <= -0.05]
    assert ("dpo", "0") in lost and len(lost) >= 4  # DPO on every seed, λ = 0 on seed 0, λ = 5 on seed 2
    for method, seed in lost:
        g = _guard(runs, method, seed)
        assert not g["passed"] and "all" in g["failed"], (method, seed)
        assert "overall" in g["message"], g["message"]


def test_guard_rejects_lambda0_where_it_lost_and_names_the_figures(runs):
    g = _guard(runs, "o1-lam0", "0")
    overall = g["buckets"]["all"]
    assert not g["passed"]
    assert overall["deltaAccuracy"]["high"] < 0  # a real loss, not noise
    assert f"{100 * overall['deltaAccuracy']['mean']:+.1f}" in g["message"]


def test_guard_accepts_runs_that_gained_accuracy_everywhere(runs):
    accepted = [(m, s) for m in runs["methods"] for s in runs["base"] if _guard(runs, m, s)["passed"]]
    assert ("sft", "0") in accepted and ("sft", "2") in accepted
    for method, seed in accepted:
        assert _delta(runs, method, seed) > 0.05, (method, seed)
