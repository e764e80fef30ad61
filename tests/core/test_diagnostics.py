"""Diagnostics of the reference samples (o1pruner.diagnostics) and where they go."""

from __future__ import annotations

import pytest

from o1pruner.diagnostics import reference_diagnostics, truncation_message, truncation_rate
from o1pruner.spec import TrainingSpec
from o1pruner.stats import reference_stats
from o1pruner.trainset import sample_rewards


def _recs():
    """Problem a: K = 4 with one truncated (wrong) sample; problem b: all wrong, all 60 tokens."""
    rows = [("a", 100, True, False), ("a", 200, True, False), ("a", 300, False, False), ("a", 512, False, True),
            ("b", 60, False, False), ("b", 60, False, False), ("b", 60, False, False), ("b", 60, False, False)]
    return [{"problem_id": p, "sample_index": i % 4, "length": n, "correct": c, "truncated": t}
            for i, (p, n, c, t) in enumerate(rows)]


def test_reference_diagnostics_by_hand():
    r = _recs()
    d = reference_diagnostics(r, sample_rewards(r, reference_stats(r), TrainingSpec()))
    assert d["samples"] == 8 and d["problems"] == 2
    assert d["truncatedSamples"] == 1 and d["truncationRate"] == 0.125 and d["truncationWarning"]
    # b: every sample has the same length and correctness → the same O1-Pruner reward
    assert d["zeroRewardVarianceShare"] == 0.5 and d["zeroAccuracyVarianceShare"] == 0.5
    assert d["meanLengthCorrect"] == 150 and d["meanLengthIncorrect"] == pytest.approx((300 + 512 + 240) / 6)
    assert "12.5 % of the reference samples (1 of 8)" in truncation_message(d) and "maxTokens" in truncation_message(d)


def test_sample_rewards_follow_the_chosen_reward():
    r = _recs()
    st = reference_stats(r)
    assert sample_rewards(r, st, TrainingSpec(reward="efficient-reasoning"))["b"] == [0.0] * 4
    kimi = sample_rewards(r, st, TrainingSpec(reward="kimi-length"))["a"]
    assert kimi[0] == 1.5 and kimi[3] == -0.5  # shortest correct 1 + 0.5; longest (wrong) min(0, −0.5)


def test_no_samples_and_no_truncation():
    assert truncation_rate([]) == 0.0
    d = reference_diagnostics([{"problem_id": "x", "length": 5, "correct": True}], {"x": [0.1]})
    assert d["truncationRate"] == 0.0 and not d["truncationWarning"] and d["meanLengthIncorrect"] is None


class _HalfTruncated:
    """A sampler whose odd samples run into the token cap."""

    def generate(self, prompts, params):
        from o1pruner.sampling.base import Completion

        for key, _ in prompts:
            yield key, [Completion(r"so \boxed{1}", 5) if i % 2 == 0 else Completion("1 1 1", params.max_tokens, "length")
                        for i in range(params.n)]

    def close(self):
        pass


def _ctx(tmp_path, **sampling):
    from o1pruner.pipeline import open_context
    from o1pruner.spec import parse_job

    job = {"apiVersion": "o1pruner.dev/v1alpha1", "kind": "PruningJob", "metadata": {"name": "diag"}, "spec": {
        "model": {"source": str(tmp_path / "no-model")},
        "datasets": {"train": {"name": "t", "source": "builtin:arithmetic", "generator": {"count": 3}},
                     "eval": [{"name": "e", "source": "builtin:arithmetic", "generator": {"count": 2}}]},
        "sampling": {"k": 4, "maxTokens": 32, "backend": "transformers", **sampling},
        "storage": {"uri": str(tmp_path / "run")}}}
    return open_context(parse_job(job), with_metrics=False)


def test_the_sample_phase_records_diagnostics_and_fails_above_max_truncation_rate(tmp_path):
    from o1pruner.pipeline import PhaseError, phase_sample

    out = phase_sample(_ctx(tmp_path / "a"), sampler=_HalfTruncated())
    assert out["diagnostics"]["truncationRate"] == 0.5 and out["diagnostics"]["samples"] == 12
    ctx = _ctx(tmp_path / "b", maxTruncationRate=0.2)
    with pytest.raises(PhaseError, match=r"maxTruncationRate is 0.2: 50.0 % of the reference samples \(6 of 12\)"):
        phase_sample(ctx, sampler=_HalfTruncated())
    assert len(ctx.store.read_jsonl("reference/samples.jsonl")) == 12 and not ctx.manifest.is_done("sample")
