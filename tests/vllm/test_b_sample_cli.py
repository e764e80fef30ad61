"""``o1pruner sample JOB.yaml --endpoint …/v1 --eval-base`` against the real vLLM server, storage
on S3 (moto): K samples per problem, token lengths that match what the server generated, the
reference statistics and the base evaluation in S3."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from o1pruner.storage import Manifest, open_storage

from .conftest import cli_json, o1pruner_cmd

pytestmark = pytest.mark.vllm

N, K, MAX_TOKENS, N_EVAL = 8, 4, 48, 4


def test_sample_cli_against_vllm(vllm, make_job, tokenizer):
    job, path = make_job("sample-cli", count=N, k=K, max_tokens=MAX_TOKENS, eval_count=N_EVAL)
    before = vllm.metrics()
    proc = subprocess.run(
        o1pruner_cmd("sample", str(path), "--endpoint", vllm.base_url, "--eval-base"),
        capture_output=True, text=True, timeout=900,
    )
    after = vllm.metrics()
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = cli_json(proc.stdout)
    assert out["problems"] == N and out["samples_total"] == N * K and out["resumed_problems"] == 0

    store = open_storage(job.spec.storage)
    samples = store.read_jsonl("reference/samples.jsonl")
    per_problem = Counter(r["problem_id"] for r in samples)
    assert len(per_problem) == N and set(per_problem.values()) == {K}
    for pid in per_problem:
        assert sorted(r["sample_index"] for r in samples if r["problem_id"] == pid) == list(range(K))

    # token lengths: bounded, "length" means exactly max_tokens, and they add up to what vLLM generated
    for r in samples:
        assert 1 <= r["length"] <= MAX_TOKENS
        assert r["finish_reason"] in ("stop", "length")
        if r["finish_reason"] == "length":
            assert r["length"] == MAX_TOKENS
    evals = store.read_jsonl("eval/base/arith-eval.jsonl")
    assert len(evals) == N_EVAL
    generated = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
    assert generated == sum(r["length"] for r in samples) + sum(r["length"] for r in evals)
    # one sequence per sample: N requests of n = K, then N_EVAL greedy requests
    assert after["vllm:request_success_total"] - before["vllm:request_success_total"] == N * K + N_EVAL
    # and re-tokenising the texts gives (almost always) the same counts
    eos = set(tokenizer.all_special_ids)
    close = sum(
        abs(len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) + (r["finish_reason"] == "stop") - r["length"]) <= 1
        for r in samples
    )
    assert close >= 0.9 * len(samples) and eos

    # reference statistics in S3, consistent with the samples
    stats = {s["problem_id"]: s for s in store.read_jsonl("reference/stats.jsonl")}
    assert set(stats) == set(per_problem)
    for pid, s in stats.items():
        lengths = [r["length"] for r in samples if r["problem_id"] == pid]
        correct = [r["correct"] for r in samples if r["problem_id"] == pid]
        assert s["k"] == K
        assert s["mean_length"] == pytest.approx(sum(lengths) / K)
        assert s["mean_accuracy"] == pytest.approx(sum(correct) / K)

    manifest = Manifest(store)
    assert manifest.is_done("sample") and manifest.is_done("evaluate-base")
    summary = store.read_json("eval/base/summary.json")
    assert summary["arith-eval"]["n"] == N_EVAL
    assert summary["arith-eval"]["mean_length"] == pytest.approx(sum(r["length"] for r in evals) / N_EVAL)
    assert store.list("reference/shards"), "resumable shards are kept in storage"
