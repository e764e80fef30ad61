"""Paired statistics: bootstrap intervals, McNemar, gap closed."""

from __future__ import annotations

import numpy as np
import pytest

from o1pruner.paired import bootstrap_mean_ci, bootstrap_ratio_ci, gap_closed, mcnemar_exact


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = bootstrap_mean_ci(rng.normal(1.0, 1.0, 50))
    large = bootstrap_mean_ci(rng.normal(1.0, 1.0, 2000))
    for ci in (small, large):
        assert ci.low < ci.mean < ci.high
    assert (large.high - large.low) < (small.high - small.low) / 4
    assert large.low < 1.0 < large.high and large.excludes_zero()


def test_bootstrap_of_a_constant_difference_is_that_constant():
    ci = bootstrap_mean_ci([-0.5] * 40)
    assert ci.mean == ci.low == ci.high == -0.5


def test_bootstrap_is_seeded_and_rejects_empty_input():
    x = np.arange(30) % 7 - 3.0
    assert bootstrap_mean_ci(x, seed=3) == bootstrap_mean_ci(x, seed=3)
    with pytest.raises(ValueError):
        bootstrap_mean_ci([])


def test_ratio_interval_is_relative_change_of_sums():
    base = [100.0, 80.0, 60.0, 120.0] * 25
    model = [50.0, 40.0, 30.0, 60.0] * 25
    ci = bootstrap_ratio_ci(model, base)
    assert ci.mean == pytest.approx(-0.5) and ci.low == pytest.approx(-0.5) and ci.high == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        bootstrap_ratio_ci([1.0], [1.0, 2.0])


def test_mcnemar_counts_discordant_pairs_and_matches_the_binomial_tail():
    base = [True] * 10 + [False] * 10 + [True] * 80
    model = [False] * 10 + [True] * 10 + [True] * 80
    r = mcnemar_exact(base, model)
    assert (r["gained"], r["lost"], r["p_value"]) == (10, 10, 1.0)
    r = mcnemar_exact([True] * 9 + [False], [False] * 9 + [False])
    assert r["lost"] == 9 and r["gained"] == 0
    assert r["p_value"] == pytest.approx(2 / 2**9)
    assert mcnemar_exact([True], [True])["p_value"] == 1.0


def test_gap_closed():
    assert gap_closed(100, 40, 20) == pytest.approx(0.75)
    assert gap_closed(100, 100, 20) == 0
    assert gap_closed(100, 110, 20) < 0
    assert gap_closed(20, 20, 20) is None
