"""Training examples: 2 of K per problem, reward → clip → standardise; SFT and DPO selections."""

import pytest

from o1pruner.rewards import length_harmonizing_reward
from o1pruner.spec import TrainingSpec
from o1pruner.stats import reference_stats
from o1pruner.trainset import dpo_pairs, o1_pruner_examples, sft_examples


def recs():
    out = []
    for p, lengths, correct in [("a", [100, 200, 300, 400], [1, 1, 0, 0]), ("b", [50, 60, 70, 80], [0, 0, 0, 1])]:
        for i, (n, c) in enumerate(zip(lengths, correct)):
            out.append({"problem_id": p, "sample_index": i, "length": n, "correct": bool(c), "text": f"{p}{i}"})
    return out


def test_reference_stats():
    st = reference_stats(recs())
    assert st["a"]["mean_length"] == 250 and st["a"]["mean_accuracy"] == 0.5 and st["a"]["k"] == 4
    assert st["b"]["mean_accuracy"] == 0.25


def test_o1_pruner_examples():
    r = recs()
    ex = o1_pruner_examples(r, reference_stats(r), TrainingSpec(), samples_per_problem=2, seed=0)
    assert len(ex) == 4 and {e["problem_id"] for e in ex} == {"a", "b"}
    st = reference_stats(r)
    for e in ex:
        s = st[e["problem_id"]]
        assert e["reward"] == pytest.approx(length_harmonizing_reward(s["mean_length"], s["mean_accuracy"], e["length"], e["correct"]))
    advs = [e["advantage"] for e in ex]
    assert sum(advs) == pytest.approx(0.0, abs=1e-9)
    # same seed, same choice; the ordering of advantages follows the rewards
    again = o1_pruner_examples(r, st, TrainingSpec(), 2, seed=0)
    assert [e["text"] for e in again] == [e["text"] for e in ex]
    best = max(ex, key=lambda e: e["reward"])
    assert best["advantage"] == max(advs)


def test_sft_and_dpo_selection():
    r = recs()
    assert [e["text"] for e in sft_examples(r)] == ["a0", "a1", "b3"]
    pairs = dpo_pairs(r)
    assert [(p["chosen"]["text"], p["rejected"]["text"]) for p in pairs] == [("a0", "a3"), ("a1", "a3")]
