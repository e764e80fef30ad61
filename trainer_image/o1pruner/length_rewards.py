"""Correctness-aware length rewards from the literature, for the same off-policy surrogate.

O1-Pruner's reward (:func:`o1pruner.rewards.length_harmonizing_reward`) stays the default
(``spec.training.reward: o1-pruner``). The two alternatives below score the K reference samples of
one problem *as a group* (a sample's reward depends on its siblings), so each function takes the
lengths and correctness flags of the problem's K samples and returns one reward per sample, in
order. Pure Python, no torch.

Advantages (what the surrogate of :mod:`o1pruner.loss` multiplies): both papers subtract a
per-problem baseline; :func:`group_advantages` does that — Kimi k1.5's mean of the K rewards,
and the leave-one-out mean (RLOO) for Arora & Zanette, who train with RLOO. Unlike O1-Pruner's
rewards these are bounded and already centred per problem, so there is no [−2, 4] clip; with
``standardizeAdvantages`` they are divided by their standard deviation over the training set
(:func:`o1pruner.rewards.standardize` with ``center=False``) so that every reward takes steps of
the same size at the same learning rate and a comparison measures the reward's shape, not its
scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

REWARDS = ("o1-pruner", "kimi-length", "efficient-reasoning")


def _check(lengths: Sequence[float], correct: Sequence[bool]) -> None:
    if len(lengths) != len(correct) or not lengths:
        raise ValueError("need the lengths and correctness flags of a problem's samples (same, non-zero count)")
    if min(lengths) <= 0:
        raise ValueError(f"lengths must be positive, got {min(lengths)}")


def kimi_length_penalty(lengths: Sequence[float], correct: Sequence[bool]) -> list[float]:
    """Kimi k1.5's length reward (arXiv 2501.12599, Sec. 2.3.3) of the K samples of one problem:

        λ_i = 0.5 − (len_i − min_len) / (max_len − min_len)
        len_reward_i = λ_i             if sample i is correct
        len_reward_i = min(0, λ_i)     if it is wrong

    min_len and max_len are over all K samples. The shortest correct sample gets +0.5, the
    longest −0.5; a wrong sample can only lose (a short wrong answer is never rewarded for its
    length). When every sample has the same length the reward is 0 (no length signal; the
    formula divides by zero there)."""
    _check(lengths, correct)
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0 for _ in lengths]
    lam = [0.5 - (n - lo) / (hi - lo) for n in lengths]
    return [v if c else min(0.0, v) for v, c in zip(lam, correct)]


def kimi_length_rewards(lengths: Sequence[float], correct: Sequence[bool], weight: float = 1.0) -> list[float]:
    """Kimi k1.5's total reward: the correctness reward (1 correct, 0 wrong) plus ``weight`` ×
    :func:`kimi_length_penalty` ("added to the original reward with a weighting parameter")."""
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    return [float(bool(c)) + weight * p for c, p in zip(correct, kimi_length_penalty(lengths, correct))]


def efficient_reasoning_rewards(lengths: Sequence[float], correct: Sequence[bool], alpha: float = 0.2) -> list[float]:
    """Arora & Zanette 2025, "Training Language Models to Reason Efficiently" (arXiv 2502.04463),
    their length-penalised reward: for the K samples of one problem,

        r_i = 1{correct_i} · (1 − α · σ((len_i − MEAN) / STD))

    with MEAN and STD the mean and standard deviation (population) of the lengths of the
    problem's *correct* samples and σ the logistic sigmoid. A wrong sample gets 0; a correct one
    between 1 − α and 1, more the shorter it is relative to its correct siblings. With a single
    correct sample, or correct samples of one length, STD = 0 and the normalised length is taken
    as 0 (reward 1 − α/2)."""
    _check(lengths, correct)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    ok = [n for n, c in zip(lengths, correct) if c]
    if not ok:
        return [0.0 for _ in lengths]
    mean = sum(ok) / len(ok)
    std = math.sqrt(sum((n - mean) ** 2 for n in ok) / len(ok))

    def sigmoid(z: float) -> float:
        return 1.0 / (1.0 + math.exp(-z))

    return [(1.0 - alpha * sigmoid((n - mean) / std if std > 0 else 0.0)) if c else 0.0
            for n, c in zip(lengths, correct)]


def group_advantages(rewards: Sequence[float], leave_one_out: bool = False) -> list[float]:
    """Per-problem baseline-subtracted rewards: r_i − mean_j r_j (Kimi k1.5), or with
    ``leave_one_out`` r_i − mean_{j≠i} r_j (RLOO, as Arora & Zanette train). One sample: 0."""
    k = len(rewards)
    if k < 2:
        return [0.0 for _ in rewards]
    total = sum(rewards)
    if leave_one_out:
        return [r - (total - r) / (k - 1) for r in rewards]
    return [r - total / k for r in rewards]


def problem_rewards(name: str, lengths: Sequence[float], correct: Sequence[bool], *, weight: float = 1.0,
                    alpha: float = 0.2) -> tuple[list[float], list[float]]:
    """``(rewards, advantages)`` of one problem's K samples under the group reward ``name``
    (``kimi-length`` or ``efficient-reasoning``; O1-Pruner's reward is per sample, see
    :mod:`o1pruner.trainset`)."""
    if name == "kimi-length":
        rewards = kimi_length_rewards(lengths, correct, weight)
        return rewards, group_advantages(rewards)
    if name == "efficient-reasoning":
        rewards = efficient_reasoning_rewards(lengths, correct, alpha)
        return rewards, group_advantages(rewards, leave_one_out=True)
    raise ValueError(f"unknown group reward {name!r} (known: kimi-length, efficient-reasoning)")
