"""Crash the sampler mid-run: SIGKILL the vLLM server once shards are in S3. The client retries
(with backoff), gives up and keeps what it finished; after a restart a rerun samples only the
missing problems (counted by the fresh server's /metrics) and the result is complete."""

from __future__ import annotations

import subprocess
import time
from collections import Counter, defaultdict

import pytest

from o1pruner.sampling.collect import read_shards
from o1pruner.storage import open_storage

from .conftest import cli_json, o1pruner_cmd

pytestmark = pytest.mark.vllm

N, K, MAX_TOKENS = 32, 4, 48


def test_kill_server_mid_run_then_resume(vllm_controller, make_job, tmp_path):
    ctl = vllm_controller
    server = ctl.ensure()
    # few retries with short backoff so the first run gives up quickly once the server is gone
    job, path = make_job("kill-resume", count=N, k=K, max_tokens=MAX_TOKENS, maxRetries=2)
    store = open_storage(job.spec.storage)
    log_path = tmp_path / "first-run.log"

    with open(log_path, "w") as log:
        first = subprocess.Popen(
            o1pruner_cmd("sample", str(path), "--endpoint", server.base_url),
            stdout=subprocess.PIPE, stderr=log, text=True,
        )
        try:
            deadline = time.monotonic() + 600
            while not store.list("reference/shards"):
                assert first.poll() is None, f"run ended before any shard was written:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no shard written within 10 minutes"
                time.sleep(0.5)
            ctl.kill()  # SIGKILL: API server and engine core die mid-request
            killed_at = time.monotonic()
            stdout, _ = first.communicate(timeout=600)
        finally:
            if first.poll() is None:
                first.kill()
    stderr = log_path.read_text()
    # the client retried before giving up; the phase fails but keeps finished problems
    assert "retry 1/2" in stderr, stderr[-3000:]
    assert first.returncode == 3, (first.returncode, stdout[-1000:], stderr[-3000:])
    assert "will not be resampled" in stderr
    assert time.monotonic() - killed_at < 300

    kept = read_shards(store, "reference")
    kept_counts = Counter(r["problem_id"] for r in kept)
    assert set(kept_counts.values()) == {K}, "a shard only ever holds whole problems"
    done_first = set(kept_counts)
    assert 0 < len(done_first) < N, f"kill was not mid-run: {len(done_first)}/{N} problems finished"
    kept_texts = {(r["problem_id"], r["sample_index"]): r["text"] for r in kept}

    # restart the server (fresh counters) and rerun the same command
    server = ctl.start()
    before = server.metrics()
    assert before.get("vllm:request_success_total", 0.0) == 0.0
    second = subprocess.run(
        o1pruner_cmd("sample", str(path), "--endpoint", server.base_url),
        capture_output=True, text=True, timeout=900,
    )
    assert second.returncode == 0, second.stderr[-4000:]
    out = cli_json(second.stdout)
    assert out["resumed_problems"] == len(done_first)
    assert out["samples_total"] == N * K

    # only the missing problems reached the server: K sequences each
    after = server.metrics()
    assert after["vllm:request_success_total"] - before.get("vllm:request_success_total", 0.0) == (N - len(done_first)) * K

    samples = store.read_jsonl("reference/samples.jsonl")
    by_problem = defaultdict(list)
    for r in samples:
        by_problem[r["problem_id"]].append(r["sample_index"])
    assert len(by_problem) == N
    assert all(sorted(v) == list(range(K)) for v in by_problem.values())
    # finished problems were carried over untouched, not resampled
    for r in samples:
        key = (r["problem_id"], r["sample_index"])
        if r["problem_id"] in done_first:
            assert r["text"] == kept_texts[key]
    generated_new = sum(r["length"] for r in samples if r["problem_id"] not in done_first)
    assert after["vllm:generation_tokens_total"] - before.get("vllm:generation_tokens_total", 0.0) == generated_new
    assert len(store.read_jsonl("reference/stats.jsonl")) == N
