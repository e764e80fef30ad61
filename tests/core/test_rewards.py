"""Reward (Eq. 4), clipping/standardisation, and AES (Eq. 8) against the paper's Table 2."""

import math

import pytest

import o1pruner
from o1pruner.rewards import advantages, aes, clip_reward, length_harmonizing_reward, standardize


def test_reward_formula():
    # L̄_ref/L − 1 + λ(A − Ā_ref)
    assert length_harmonizing_reward(200, 0.5, 100, True, lam=2.0) == pytest.approx(2 - 1 + 2 * 0.5)
    assert length_harmonizing_reward(200, 0.5, 400, False, lam=2.0) == pytest.approx(0.5 - 1 - 1.0)
    # a sample at the reference mean length and accuracy is worth nothing
    assert length_harmonizing_reward(300, 1.0, 300, True) == pytest.approx(0.0)
    # λ = 0: length only
    assert length_harmonizing_reward(100, 0.0, 50, True, lam=0.0) == pytest.approx(1.0)


def test_reward_public_api_and_bad_input():
    assert o1pruner.length_harmonizing_reward(10, 0.0, 10, 1) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="length"):
        length_harmonizing_reward(10, 0.0, 0, True)
    with pytest.raises(ValueError, match="lam"):
        length_harmonizing_reward(10, 0.0, 5, True, lam=-1)


def test_shorter_correct_beats_longer_and_wrong():
    short_right = length_harmonizing_reward(500, 0.5, 250, True)
    long_right = length_harmonizing_reward(500, 0.5, 1000, True)
    short_wrong = length_harmonizing_reward(500, 0.5, 250, False)
    assert short_right > long_right > length_harmonizing_reward(500, 0.5, 1000, False)
    assert short_right > short_wrong


def test_clip_and_standardise():
    assert clip_reward(10) == 4.0 and clip_reward(-10) == -2.0 and clip_reward(1.5) == 1.5
    z = standardize([1.0, 2.0, 3.0, 4.0])
    assert sum(z) == pytest.approx(0.0)
    assert math.sqrt(sum(v * v for v in z) / 4) == pytest.approx(1.0)
    assert standardize([3.0, 3.0]) == [0.0, 0.0]
    adv = advantages([10.0, -10.0, 0.0])  # clipped to 4, -2, 0 first
    assert adv == pytest.approx(standardize([4.0, -2.0, 0.0]))
    assert advantages([10.0, 0.0], standardize_over_set=False) == [4.0, 0.0]


# Paper Table 2 (Marco-o1-7B): baseline MATH 73.8 / 1156, GSM8K 89.2 / 530, GaoKao 57.1 / 1112.
@pytest.mark.parametrize(
    "base, model, printed",
    [
        ((73.8, 1156), (77.5, 657), 0.58),  # O1-Pruner, MATH
        ((89.2, 530), (91.4, 343), 0.43),  # O1-Pruner, GSM8K
        ((57.1, 1112), (61.6, 664), 0.64),  # O1-Pruner, GaoKao
        ((89.2, 530), (89.9, 497), 0.09),  # SFT, GSM8K
        ((90.6, 2191), (91.0, 1385), 0.38),  # QwQ O1-Pruner, MATH
    ],
)
def test_aes_reproduces_table2(base, model, printed):
    assert o1pruner.aes(base[0], base[1], model[0], model[1]) == pytest.approx(printed, abs=0.005)


def test_aes_penalises_accuracy_drop_as_stated_not_as_printed():
    # DPO on Marco MATH: 71.8 / 761. Table 2 prints 0.42 = ΔL + 3|ΔAcc|; the stated formula gives ΔL − 5|ΔAcc|.
    d_len, d_acc = (1156 - 761) / 1156, (71.8 - 73.8) / 73.8
    assert aes(73.8, 1156, 71.8, 761) == pytest.approx(d_len - 5 * abs(d_acc))
    assert aes(73.8, 1156, 71.8, 761) == pytest.approx(0.206, abs=0.001)
    assert d_len + 3 * abs(d_acc) == pytest.approx(0.42, abs=0.005)  # the printed value


def test_aes_weights_and_errors():
    assert aes(0.5, 100, 0.5, 100) == 0.0
    assert aes(0.5, 100, 0.6, 50, alpha=2, beta=1) == pytest.approx(2 * 0.5 + 0.2)
    with pytest.raises(ValueError, match="base_acc"):
        aes(0.0, 100, 0.5, 50)
