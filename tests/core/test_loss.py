"""The O1-Pruner clipped surrogate (Eq. 6-7) and the SFT/DPO baselines."""

import pytest
import torch

from o1pruner.loss import dpo_loss, o1_pruner_loss, sft_loss


def _loss(policy, ref, adv, eps=0.2):
    return o1_pruner_loss(torch.tensor(policy), torch.tensor(ref), torch.tensor(adv), eps)


def test_ratio_is_sequence_level_from_mean_token_logps():
    out = _loss([-1.0], [-1.0], [1.0])
    assert out.ratio_mean == pytest.approx(1.0)
    assert out.loss.item() == pytest.approx(-1.0)  # −A·r with r = 1


def test_positive_advantage_clipped_above():
    # r = e^0.5 ≈ 1.65 > 1.2: max(−A r, −A·1.2) = −1.2 for A = 1 (no incentive past 1+ε)
    out = _loss([-0.5], [-1.0], [1.0])
    assert out.loss.item() == pytest.approx(-1.2)
    assert out.clip_fraction == 1.0


def test_positive_advantage_not_clipped_below():
    # r = e^-0.5 ≈ 0.61 < 0.8: for A > 0 the unclipped term is the max → −A r (pessimistic)
    r = torch.exp(torch.tensor(-0.5)).item()
    assert _loss([-1.5], [-1.0], [1.0]).loss.item() == pytest.approx(-r)


def test_negative_advantage_clipped_below_and_not_above():
    # A < 0, r small: max(−A r, −A·0.8) = 0.8·|A| (clipped: no incentive to push r below 1−ε)
    assert _loss([-1.5], [-1.0], [-2.0]).loss.item() == pytest.approx(2.0 * 0.8)
    # A < 0, r large: unclipped −A r is the max
    r = torch.exp(torch.tensor(0.5)).item()
    assert _loss([-0.5], [-1.0], [-2.0]).loss.item() == pytest.approx(2.0 * r)


def test_gradient_sign_follows_advantage():
    p = torch.tensor([-1.0, -1.0], requires_grad=True)
    o1_pruner_loss(p, torch.tensor([-1.0, -1.0]), torch.tensor([1.0, -1.0])).loss.backward()
    # minimising the loss raises log π for A > 0 and lowers it for A < 0
    assert p.grad[0] < 0 < p.grad[1]


def test_clipped_region_has_no_gradient():
    p = torch.tensor([0.0], requires_grad=True)  # r = e^1 ≫ 1.2 with A > 0
    o1_pruner_loss(p, torch.tensor([-1.0]), torch.tensor([1.0])).loss.backward()
    assert p.grad.item() == 0.0


def test_batch_mean():
    out = _loss([-1.0, -1.0], [-1.0, -1.0], [1.0, 3.0])
    assert out.loss.item() == pytest.approx(-2.0)


def test_sft_and_dpo():
    assert sft_loss(torch.tensor([-4.0, -2.0]), torch.tensor([2.0, 2.0])).item() == pytest.approx(1.5)
    zero = torch.tensor([0.0])
    assert dpo_loss(zero, zero, zero, zero).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    better = dpo_loss(torch.tensor([1.0]), torch.tensor([-1.0]), zero, zero)
    assert better.item() < dpo_loss(zero, zero, zero, zero).item()


def test_clip_fraction_split_by_the_sign_of_the_advantage():
    # four samples: r = e^0.5 (clipped) with A > 0 and A < 0, r = e^-0.5 (clipped) with A < 0, r = 1 (not)
    out = _loss([-0.5, -0.5, -1.5, -1.0], [-1.0, -1.0, -1.0, -1.0], [1.0, -1.0, -2.0, 3.0])
    assert out.clip_fraction == 0.75
    assert out.clip_fraction_positive == 0.25 and out.clip_fraction_negative == 0.5
