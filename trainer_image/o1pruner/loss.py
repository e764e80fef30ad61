"""Training objectives (torch): the O1-Pruner surrogate and the paper's SFT / DPO baselines.

O1-Pruner (paper Sec. 3.2, Eq. 5-7), line by line in :func:`o1_pruner_loss`:
- Eq. 6: importance ratio of the off-policy objective, computed at sequence level from
  length-normalised log-probs (as the authors' trainer does):
  r = exp(mean_t log π_θ(y_t|x, y_<t) − mean_t log π_ref(y_t|x, y_<t)).
- Eq. 7: PPO-style clipped surrogate, maximised; we minimise its negative:
  loss = mean_batch max(−A·r, −A·clip(r, 1−ε, 1+ε)).
  The advantage A is the reward of Eq. 4 clipped to [−2, 4] and standardised over the training
  set (see :mod:`o1pruner.rewards`); no KL term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossOutput:
    loss: torch.Tensor
    clip_fraction: float
    ratio_mean: float
    #: the clip fraction split by the sign of the advantage: shares of the whole batch (clipped
    #: samples with A > 0, with A < 0), so they add up to ``clip_fraction`` bar A = 0 samples.
    clip_fraction_positive: float = 0.0
    clip_fraction_negative: float = 0.0


def o1_pruner_loss(
    policy_mean_logp: torch.Tensor,
    ref_mean_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_epsilon: float = 0.2,
) -> LossOutput:
    """Clipped surrogate of Eq. 7 over a batch of reference samples (all tensors of shape [B])."""
    ratio = torch.exp(policy_mean_logp - ref_mean_logp)  # Eq. 6, sequence-level ratio
    clipped = torch.clamp(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
    surrogate = torch.maximum(-advantages * ratio, -advantages * clipped)  # Eq. 7 (negated)
    with torch.no_grad():
        was_clipped = ((ratio - clipped).abs() > 0).float()
        clip_fraction = was_clipped.mean().item()
        positive = (was_clipped * (advantages > 0).float()).mean().item()
        negative = (was_clipped * (advantages < 0).float()).mean().item()
    return LossOutput(loss=surrogate.mean(), clip_fraction=clip_fraction, ratio_mean=ratio.mean().item(),
                      clip_fraction_positive=positive, clip_fraction_negative=negative)


def sft_loss(policy_sum_logp: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """Baseline SFT on the shortest correct samples: token-averaged negative log-likelihood."""
    return -(policy_sum_logp.sum() / n_tokens.sum().clamp(min=1))


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Baseline DPO (Rafailov et al. 2023) on summed sequence log-probs: shortest correct
    (chosen) over longest (rejected), β = 0.1 as in the paper's baseline."""
    logits = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(logits).mean()
