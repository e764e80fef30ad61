"""Training examples from reference samples (pure Python; tokenisation happens in training).

O1-Pruner (paper Sec. 3.1-3.2; authors' data construction): after a seeded shuffle, keep
``samples_per_problem`` (2) of the K samples of each problem; each gets the reward of Eq. 4
computed with that problem's reference statistics and the sample's *full* token length, clipped
to [−2, 4] and standardised over the whole training set → its advantage.

Baselines (paper Sec. 4.1): SFT on the two shortest correct samples per problem; DPO with each
of the two shortest correct samples chosen over the longest sample of the problem.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

from o1pruner.length_rewards import problem_rewards
from o1pruner.rewards import advantages, length_harmonizing_reward, standardize
from o1pruner.spec import TrainingSpec


def _by_problem(records: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["problem_id"]].append(r)
    for rs in groups.values():
        rs.sort(key=lambda r: r["sample_index"])
    return dict(sorted(groups.items()))


def sample_rewards(records: Iterable[dict], stats: dict[str, dict], training: TrainingSpec) -> dict[str, list[float]]:
    """The reward ``training.reward`` gives each of the K samples of every problem (before any
    clip or standardisation), in ``sample_index`` order: what the diagnostics inspect."""
    out: dict[str, list[float]] = {}
    for pid, rs in _by_problem(records).items():
        if training.reward == "o1-pruner":
            st = stats[pid]
            out[pid] = [length_harmonizing_reward(st["mean_length"], st["mean_accuracy"], max(r["length"], 1),
                                                  r["correct"], lam=training.lam) for r in rs]
        else:
            out[pid], _ = problem_rewards(training.reward, [max(r["length"], 1) for r in rs],
                                          [bool(r["correct"]) for r in rs], weight=training.length_reward_weight,
                                          alpha=training.efficiency_alpha)
    return out


def o1_pruner_examples(
    records: Iterable[dict],
    stats: dict[str, dict],
    training: TrainingSpec,
    samples_per_problem: int = 2,
    seed: int = 0,
) -> list[dict]:
    """Examples ``{problem_id, text, length, correct, reward, advantage}`` for the surrogate.

    ``training.reward`` picks the reward (the same samples are kept whichever it is): O1-Pruner's
    Eq. 4 per sample, clipped and standardised over the set; or a group reward of
    :mod:`o1pruner.length_rewards` over the problem's K samples, baseline-subtracted per problem
    and scaled to unit std over the set."""
    if training.reward != "o1-pruner":
        return _group_reward_examples(records, training, samples_per_problem, seed)
    rng = random.Random(seed)
    chosen: list[dict] = []
    for pid, rs in _by_problem(records).items():
        rs = list(rs)
        rng.shuffle(rs)
        st = stats[pid]
        for r in rs[:samples_per_problem]:
            reward = length_harmonizing_reward(
                st["mean_length"], st["mean_accuracy"], max(r["length"], 1), r["correct"], lam=training.lam
            )
            chosen.append({**r, "reward": reward})
    advs = advantages(
        [e["reward"] for e in chosen],
        training.reward_clip_min,
        training.reward_clip_max,
        standardize_over_set=training.standardize_advantages,
    )
    for e, a in zip(chosen, advs, strict=True):
        e["advantage"] = a
    return chosen


def _group_reward_examples(records: Iterable[dict], training: TrainingSpec, samples_per_problem: int,
                           seed: int) -> list[dict]:
    rng = random.Random(seed)
    chosen: list[dict] = []
    for rs in _by_problem(records).values():
        rewards, advs = problem_rewards(
            training.reward, [max(r["length"], 1) for r in rs], [bool(r["correct"]) for r in rs],
            weight=training.length_reward_weight, alpha=training.efficiency_alpha,
        )
        scored = [{**r, "reward": rw, "advantage": a} for r, rw, a in zip(rs, rewards, advs, strict=True)]
        rng.shuffle(scored)  # the same draw as O1-Pruner's: the same samples are kept
        chosen.extend(scored[:samples_per_problem])
    if training.standardize_advantages:
        for e, a in zip(chosen, standardize([e["advantage"] for e in chosen], center=False), strict=True):
            e["advantage"] = a
    return chosen


def sft_examples(records: Iterable[dict], per_problem: int = 2) -> list[dict]:
    """The ``per_problem`` shortest correct samples of each problem (problems with none are skipped)."""
    out = []
    for rs in _by_problem(records).values():
        correct = sorted((r for r in rs if r["correct"]), key=lambda r: (r["length"], r["sample_index"]))
        out.extend(correct[:per_problem])
    return out


def dpo_pairs(records: Iterable[dict], per_problem: int = 2) -> list[dict]:
    """Pairs ``{problem_id, chosen, rejected}``: a shortest correct sample over the problem's
    longest sample (skipped when the longest is itself one of the chosen)."""
    pairs = []
    for pid, rs in _by_problem(records).items():
        correct = sorted((r for r in rs if r["correct"]), key=lambda r: (r["length"], r["sample_index"]))
        longest = max(rs, key=lambda r: (r["length"], -r["sample_index"]))
        for c in correct[:per_problem]:
            if c is longest or c["length"] >= longest["length"]:
                continue
            pairs.append({"problem_id": pid, "chosen": c, "rejected": longest})
    return pairs
