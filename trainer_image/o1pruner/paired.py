"""Paired comparisons of two models on the same problems: confidence intervals and tests.

A claim that a pruned model keeps its accuracy or shortens its answers is a statement about
per-problem differences (pruned − base, one value per problem). We report their mean with a
percentile paired-bootstrap 95 % interval (resampling problems with replacement), and for
accuracy also the exact McNemar test on the discordant problems. Pure functions (numpy only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


def first_answers_paired(base: Iterable[dict], model: Iterable[dict]) -> list[tuple[dict, dict]]:
    """``(base, model)`` record pairs: the first answer of each ``(dataset, problem_id)`` both
    sides answered, in the base's order (problems only one side answered are left out)."""

    def first(records: Iterable[dict]) -> dict:
        out: dict = {}
        for r in records:
            out.setdefault((r.get("dataset"), r["problem_id"]), r)
        return out

    b, m = first(base), first(model)
    return [(b[k], m[k]) for k in b if k in m]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def bootstrap_mean_ci(diffs: Sequence[float], *, level: float = 0.95, resamples: int = 10_000,
                      seed: int = 0) -> Interval:
    """Mean of per-problem ``diffs`` and its percentile bootstrap interval (problems resampled)."""
    x = np.asarray(diffs, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("need a non-empty 1-D sequence of per-problem differences")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


def bootstrap_ratio_ci(num: Sequence[float], den: Sequence[float], *, level: float = 0.95,
                       resamples: int = 10_000, seed: int = 0) -> Interval:
    """``sum(num) / sum(den) − 1`` (e.g. the relative change of mean length) with a paired
    bootstrap interval: the same resampled problems in numerator and denominator."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("num and den must be non-empty and paired (same length)")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    ratios = a[idx].sum(axis=1) / b[idx].sum(axis=1) - 1
    alpha = (1 - level) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return Interval(float(a.sum() / b.sum() - 1), float(low), float(high), int(a.size))


def mcnemar_exact(base_correct: Sequence[bool], model_correct: Sequence[bool]) -> dict:
    """Exact two-sided McNemar test: ``gained`` (wrong → right) vs ``lost`` (right → wrong)."""
    if len(base_correct) != len(model_correct):
        raise ValueError("paired sequences must have the same length")
    gained = sum(1 for b, m in zip(base_correct, model_correct) if not b and m)
    lost = sum(1 for b, m in zip(base_correct, model_correct) if b and not m)
    n = gained + lost
    if n == 0:
        return {"gained": 0, "lost": 0, "p_value": 1.0}
    k = min(gained, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return {"gained": gained, "lost": lost, "p_value": min(1.0, 2 * tail)}


def gap_closed(base_length: float, model_length: float, min_length: float) -> float | None:
    """Share of the redundancy gap a model closes: (L_base − L_model) / (L_base − L_min)."""
    gap = base_length - min_length
    if gap <= 0:
        return None
    return (base_length - model_length) / gap
