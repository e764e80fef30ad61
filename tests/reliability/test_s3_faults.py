"""Item 4 — S3 faults. Transient errors and throttling are retried with exponential backoff by
the boto3 client every phase uses (standard retry mode, 5 attempts); a failure that outlasts the
retries raises a ``StorageError`` naming the key and the S3 error code, and nothing already
written is lost: sampling resumes from its shards, training from its last complete checkpoint."""

from __future__ import annotations

import pytest
import torch
from conftest import job_dict
from rel_fakes import FakeVLLM
from rel_s3 import S3Faults, record_backoff

from o1pruner import pipeline
from o1pruner import training as tr
from o1pruner.data import load_dataset
from o1pruner.sampling.collect import read_shards
from o1pruner.sampling.openai import OpenAISampler
from o1pruner.spec import PromptSpec, StorageSpec, TrainingSpec, parse_job
from o1pruner.storage import StorageError, make_s3_client, open_storage

TRANSIENT = [
    (503, "SlowDown"), (503, "ServiceUnavailable"), (500, "InternalError"), (502, "BadGateway"),
    (400, "RequestTimeout"), (400, "Throttling"), (400, "ThrottlingException"),
    (429, "TooManyRequestsException"), "connection",
]


@pytest.fixture
def spec(s3_server, reliability_bucket, request):
    return StorageSpec(uri=f"s3://{reliability_bucket}/s3faults-{request.node.name[:40].replace('_', '-')}",
                       endpoint_url=s3_server)


def test_the_client_every_phase_uses_has_retries_and_timeouts(s3_server):
    cfg = make_s3_client(s3_server).meta.config
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 5}
    assert cfg.connect_timeout == 10.0 and cfg.read_timeout == 120.0


@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda f: f if isinstance(f, str) else f[1])
def test_transient_errors_and_throttling_are_retried_with_backoff(spec, fault, monkeypatch):
    delays = record_backoff(monkeypatch)
    store = open_storage(spec)  # the default client: 5 attempts
    faults = S3Faults(store.client)
    faults.add("PutObject", fault, times=3).add("GetObject", fault, times=2).add("ListObjectsV2", fault, times=1)
    store.write_text("a/b.txt", "kept")
    assert store.read_text("a/b.txt") == "kept"
    assert store.list("a") == ["a/b.txt"]
    assert len(faults.injected) == 6
    assert len(delays) == 6
    # exponential: each retry of one request waits longer than the one before (until the cap)
    put = delays[:3]
    assert put == sorted(put) and put[0] > 0 and put[-1] <= 20
    if fault in [(400, "Throttling"), (503, "SlowDown"), (400, "ThrottlingException"), (429, "TooManyRequestsException")]:
        assert put[0] >= 1.0  # throttling backs off on a 1 s scale, other errors on 50 ms


def test_persistent_failure_names_the_key_and_keeps_what_was_written(spec, monkeypatch):
    record_backoff(monkeypatch)
    store = open_storage(spec)
    store.write_text("reference/shards/part-1.jsonl", '{"ok": 1}\n')
    faults = S3Faults(store.client).add("PutObject", (503, "SlowDown"))
    with pytest.raises(StorageError) as info:
        store.write_text("reference/shards/part-2.jsonl", '{"ok": 2}\n')
    err = info.value
    assert err.code == "SlowDown"
    assert err.uri == f"{spec.uri}/reference/shards/part-2.jsonl" and err.uri in str(err)
    assert "after 4 retries" in str(err)
    assert len(faults.injected) == 5  # 1 try + 4 retries
    assert "testing" not in str(err)  # the (dummy) credentials are never in a message
    faults.remove()
    assert store.read_text("reference/shards/part-1.jsonl") == '{"ok": 1}\n'
    assert not store.exists("reference/shards/part-2.jsonl")


def test_s3_outage_during_sampling_keeps_finished_shards_and_the_rerun_resumes(spec, monkeypatch):
    record_backoff(monkeypatch)
    job = parse_job(job_dict("/nonexistent-model", spec.uri, spec.endpoint_url, "s3outage",
                             sampling={"k": 2, "backend": "vllm"}))
    ctx = pipeline.open_context(job, with_metrics=False)
    problems = load_dataset(job.spec.datasets.train).problems
    server = FakeVLLM({p.problem: p.answer for p in problems}).start()
    sampler = OpenAISampler(server.url, "reference", concurrency=1, timeout=5, max_retries=0)
    faults = S3Faults(ctx.store.client)

    shard_puts = []

    def outage_after_two(request, event_name, **kw):  # the S3 endpoint goes down for good
        if event_name.endswith("PutObject") and "/shards/" in request.url:
            shard_puts.append(request.url)
            if len(shard_puts) == 3:
                faults.add("PutObject", (503, "SlowDown"))

    ctx.store.client.meta.events.register_first("before-send.s3", outage_after_two)
    try:
        with pytest.raises(StorageError, match="SlowDown") as info:
            pipeline.phase_sample(ctx, sampler=sampler, flush_every=1)
        assert "/reference/shards/part-" in info.value.uri
        assert not ctx.manifest.is_done("sample")
        kept = {r["problem_id"] for r in read_shards(ctx.store, "reference")}
        assert len(kept) == 2  # the two shards written before the outage are still there

        faults.clear()  # the endpoint recovers
        asked_before = sum(server.attempts.values())
        out = pipeline.phase_sample(ctx, sampler=sampler, flush_every=1)
    finally:
        server.stop()
    assert out["resumed_problems"] == 2 and out["samples_total"] == len(problems) * 2
    assert sum(server.attempts.values()) - asked_before == len(problems) - 2  # kept ones not resampled


def test_s3_outage_during_a_checkpoint_upload_resumes_from_the_last_complete_one(spec, tiny_model_dir, monkeypatch):
    record_backoff(monkeypatch)
    t = TrainingSpec(learning_rate=5e-3, epochs=2, batch_size=2, micro_batch_size=2, max_length=48,
                     checkpoint_every_steps=2, keep_checkpoints=3, warmup_ratio=0.0, lr_scheduler="constant")
    examples = [{"problem_id": f"p{i}", "sample_index": 0, "length": 4, "text": f"The answer is {i}.",
                 "correct": True, "reward": 1.0, "advantage": (-1.0) ** i, "finish_reason": "stop"} for i in range(8)]

    def setup():
        torch.manual_seed(0)
        model, tok = tr.load_policy(str(tiny_model_dir), t, torch.float32, torch.device("cpu"))
        units = tr.build_units("o1-pruner", examples, tok, PromptSpec(), t.max_length, {f"p{i}": f"{i}+0?" for i in range(8)})
        return model, tok, units

    store = open_storage(spec)
    faults = S3Faults(store.client).add("step-00000004", (503, "SlowDown"))
    model, tok, units = setup()
    with pytest.raises(StorageError, match="SlowDown"):
        tr.train(model, tok, units, t, store)
    faults.remove()  # the endpoint recovers
    assert tr.latest_checkpoint(store).endswith("step-00000002")
    assert not store.is_dir_complete(f"{tr.CHECKPOINTS}/step-00000004")
    model, tok, units = setup()
    result = tr.train(model, tok, units, t, store)
    assert result.resumed_from.endswith("step-00000002") and result.steps == 8
