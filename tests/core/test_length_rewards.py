"""The alternative length rewards, from their papers' formulas (hand-computed values)."""

from __future__ import annotations

import pytest

from o1pruner.length_rewards import (
    efficient_reasoning_rewards, group_advantages, kimi_length_penalty, kimi_length_rewards, problem_rewards,
)
from o1pruner.rewards import standardize
from o1pruner.spec import TrainingSpec
from o1pruner.stats import reference_stats
from o1pruner.trainset import o1_pruner_examples


def test_kimi_length_penalty_from_the_formula():
    # min 100, max 300: λ = 0.5 − (len − 100)/200 = 0.5, 0, −0.5; the wrong sample gets min(0, λ) = 0
    assert kimi_length_penalty([100, 200, 300], [True, False, True]) == [0.5, 0.0, -0.5]
    # a short wrong answer is never rewarded for its length: min(0, 0.5) = 0
    assert kimi_length_penalty([100, 300], [False, True]) == [0.0, -0.5]
    assert kimi_length_penalty([100, 300], [False, False]) == [0.0, -0.5]
    assert kimi_length_penalty([80, 80], [True, False]) == [0.0, 0.0]  # no spread, no signal


def test_kimi_total_reward_and_its_group_baseline():
    rewards = kimi_length_rewards([100, 200, 300], [True, False, True], weight=1.0)
    assert rewards == [1.5, 0.0, 0.5]
    assert kimi_length_rewards([100, 200, 300], [True, False, True], weight=0.5) == [1.25, 0.0, 0.75]
    # the long correct answer still beats the short wrong one
    assert kimi_length_rewards([100, 300], [False, True]) == [0.0, 0.5]
    assert group_advantages(rewards) == pytest.approx([1.5 - 2 / 3, -2 / 3, 0.5 - 2 / 3])


def test_efficient_reasoning_from_the_formula():
    # correct lengths 100, 200, 300: MEAN 200, STD sqrt(20000/3) = 81.65, z = ∓1.2247;
    # σ(−1.2247) = 0.22710, σ(0) = 0.5, σ(1.2247) = 0.77290; α = 0.2
    r = efficient_reasoning_rewards([100, 200, 300, 50], [True, True, True, False], alpha=0.2)
    assert r == pytest.approx([0.954579, 0.9, 0.845421, 0.0], abs=1e-6)
    # RLOO: r_i − mean of the other three
    assert group_advantages(r, leave_one_out=True) == pytest.approx([0.372773, 0.3, 0.227227, -0.9], abs=1e-6)
    # one correct sample (STD 0): normalised length 0, reward 1 − α/2; none correct: all 0
    assert efficient_reasoning_rewards([10, 90], [False, True], alpha=0.4) == pytest.approx([0.0, 0.8])
    assert efficient_reasoning_rewards([10, 90], [False, False]) == [0.0, 0.0]
    assert efficient_reasoning_rewards([10, 90], [True, True], alpha=0.0) == [1.0, 1.0]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="same"):
        kimi_length_penalty([1, 2], [True])
    with pytest.raises(ValueError, match="alpha"):
        efficient_reasoning_rewards([1, 2], [True, True], alpha=1.5)
    with pytest.raises(ValueError, match="unknown"):
        problem_rewards("o1-pruner", [1], [True])
    assert group_advantages([0.7]) == [0.0]
    assert standardize([1.0, -1.0, 3.0], center=False) == pytest.approx([1 / 1.6330, -1 / 1.6330, 3 / 1.6330], abs=1e-4)


def _recs():
    """Problem a: K = 4, the two short samples correct; problem b: only the longest correct."""
    table = {"a": ([100, 200, 300, 400], [1, 1, 0, 0]), "b": ([50, 60, 70, 80], [0, 0, 0, 1])}
    return [{"problem_id": p, "sample_index": i, "length": n, "correct": bool(c), "text": f"{p}{i}"}
            for p, (lengths, flags) in table.items() for i, (n, c) in enumerate(zip(lengths, flags))]


@pytest.mark.parametrize("reward", ["kimi-length", "efficient-reasoning"])
def test_the_training_set_uses_the_chosen_reward_on_the_same_samples(reward):
    r = _recs()
    st = reference_stats(r)
    default = o1_pruner_examples(r, st, TrainingSpec(), samples_per_problem=2, seed=0)
    ex = o1_pruner_examples(r, st, TrainingSpec(reward=reward), samples_per_problem=2, seed=0)
    assert [e["text"] for e in ex] == [e["text"] for e in default]  # the same draw of 2 of K
    for e in ex:  # each reward is the group formula over the problem's K = 4 samples
        group = [x for x in r if x["problem_id"] == e["problem_id"]]
        rewards, _ = problem_rewards(reward, [x["length"] for x in group], [x["correct"] for x in group])
        assert e["reward"] == pytest.approx(rewards[e["sample_index"]])
    raw = o1_pruner_examples(r, st, TrainingSpec(reward=reward, standardize_advantages=False), 2, seed=0)
    scaled = standardize([e["advantage"] for e in raw], center=False)
    assert [e["advantage"] for e in ex] == pytest.approx(scaled)
    a0 = next(e for e in ex if e["text"] == "a0")  # shortest correct sample of a: the best advantage
    assert a0["advantage"] == max(e["advantage"] for e in ex if e["problem_id"] == "a")


def test_a_group_reward_needs_the_surrogate():
    from o1pruner.spec import SpecError, parse_spec

    with pytest.raises(SpecError, match="reward"):
        parse_spec({"model": {"source": "m/x"}, "datasets": {"train": {"name": "t", "source": "builtin:arithmetic"},
                    "eval": [{"name": "e", "source": "builtin:arithmetic"}]}, "storage": {"uri": "/tmp/x"},
                    "training": {"method": "sft", "reward": "kimi-length"}})
