"""Rewards, advantages and the AES metric of O1-Pruner (arXiv 2501.12570). Pure Python, no torch.

Paper map:
- Eq. 4 (Sec. 3.2): the length-harmonizing reward
  R(x, y) = L̄_ref(x) / L(y) − 1 + λ · (A(x, y) − Ā_ref(x)).
- Sec. 3.2 / authors' data construction: the reward is clipped to [−2, 4] and standardised over
  the whole training set; the result is the advantage of the off-policy PPO surrogate (Eq. 7).
- Eq. 8 (Sec. 4.1): the Accuracy-Efficiency Score (AES).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def length_harmonizing_reward(
    ref_mean_len: float,
    ref_mean_acc: float,
    length: int | float,
    correct: bool | float,
    lam: float = 2.0,
) -> float:
    """R(x, y) = L̄_ref(x)/L(y) − 1 + λ·(A(x, y) − Ā_ref(x))  (paper Eq. 4).

    ``length`` is the token length of the *full* solution y (the paper's reward uses the full
    sample length even where training truncates it); ``correct`` is A(x, y) ∈ {0, 1}.
    """
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if ref_mean_len <= 0:
        raise ValueError(f"ref_mean_len must be positive, got {ref_mean_len}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    return ref_mean_len / float(length) - 1.0 + lam * (float(correct) - ref_mean_acc)


def clip_reward(reward: float, low: float = -2.0, high: float = 4.0) -> float:
    """Clip a reward to [low, high] (authors' data construction, default [−2, 4])."""
    return min(max(reward, low), high)


def standardize(values: Sequence[float], eps: float = 1e-8, center: bool = True) -> list[float]:
    """(v − mean) / std over the whole training set (population std, as the authors' numpy code);
    with ``center=False`` v / std (for advantages already centred per problem,
    :mod:`o1pruner.length_rewards`).

    A constant set (std = 0) standardises to zeros: no sample is preferred over another.
    """
    if not values:
        return []
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    if std < eps:
        return [0.0 for _ in values]
    shift = mean if center else 0.0
    return [(v - shift) / std for v in values]


def advantages(
    rewards: Sequence[float],
    clip_low: float = -2.0,
    clip_high: float = 4.0,
    standardize_over_set: bool = True,
) -> list[float]:
    """Advantages for the surrogate (Eq. 7): rewards clipped to [clip_low, clip_high], then
    standardised over the training set."""
    clipped = [clip_reward(r, clip_low, clip_high) for r in rewards]
    return standardize(clipped) if standardize_over_set else clipped


def aes(
    base_acc: float,
    base_len: float,
    acc: float,
    length: float,
    alpha: float = 1.0,
    beta: float = 3.0,
    gamma: float = 5.0,
) -> float:
    """Accuracy-Efficiency Score (paper Eq. 8), exactly as the paper states it:

        ΔLength = (L_base − L_model) / L_base,  ΔAcc = (Acc_model − Acc_base) / Acc_base
        AES = α·ΔLength + β·|ΔAcc|   if ΔAcc ≥ 0
        AES = α·ΔLength − γ·|ΔAcc|   if ΔAcc < 0

    Note: in the paper's Table 2, rows whose accuracy dropped are printed with +β·|ΔAcc| (e.g. the
    fast-solving prompt on Marco-o1 MATH: 0.15 printed, −0.15 by the stated formula). We
    implement the formula as stated, which penalises accuracy loss (γ > β); see docs/aes.md.
    """
    if base_len <= 0:
        raise ValueError(f"base_len must be positive, got {base_len}")
    if base_acc <= 0:
        raise ValueError(f"base_acc must be positive to compute a relative accuracy change, got {base_acc}")
    d_len = (base_len - length) / base_len
    d_acc = (acc - base_acc) / base_acc
    if d_acc >= 0:
        return alpha * d_len + beta * abs(d_acc)
    return alpha * d_len - gamma * abs(d_acc)
