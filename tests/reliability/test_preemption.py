"""Item 2 — trainer preemption, with a real ``o1pruner train`` process against S3 (moto).

The job: 8 training examples, batch 2, 2 epochs = 8 optimizer steps, a checkpoint every 2
steps (model + optimizer + scheduler + RNG + data position, ``_COMPLETE`` marker last).

Chain: SIGTERM at a random step (the trainer checkpoints at the next step boundary and exits
143) → restart → SIGKILL while a checkpoint is being uploaded (a half-written checkpoint
folder, no marker) → restart: it must resume from the latest *complete* checkpoint, and the
final ``train/model`` must equal an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from rel_procs import TrainProcess, kill

from o1pruner import training as tr
from o1pruner.storage import COMPLETE_MARKER, Manifest, open_storage

TOTAL_STEPS = 8


def _model_weights(job) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    store = open_storage(job.spec.storage)
    assert store.is_dir_complete("train/model")
    return load(store.read_bytes("train/model/model.safetensors"))


def _checkpoints(store) -> dict[int, bool]:
    """``{step: complete}`` of the checkpoint folders now in storage."""
    out = {}
    for name in store.list_dirs(tr.CHECKPOINTS):
        files = {k.rsplit("/", 1)[-1] for k in store.list(f"{tr.CHECKPOINTS}/{name}")}
        out[int(name.removeprefix("step-"))] = COMPLETE_MARKER in files
    return out


@pytest.fixture(scope="module")
def reference_weights(request):
    """Weights of an uninterrupted run (same job, same seed), computed once per module."""
    return {}


def _uninterrupted(job, cache: dict) -> dict[str, torch.Tensor]:
    """The reference: the same train phase, uninterrupted, run in this process (saves a
    process start; the code path below the CLI is the same)."""
    from o1pruner import pipeline

    if "w" not in cache:
        out = pipeline.phase_train(pipeline.open_context(job, with_metrics=False))
        assert out["steps"] == TOTAL_STEPS and out["resumed_from"] is None
        cache["w"] = _model_weights(job)
    return cache["w"]


def test_sigterm_then_sigkill_mid_checkpoint_resumes_to_the_same_weights(make_train_job, tmp_path, reference_weights):
    seed = int(os.environ.get("RELIABILITY_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    why = f"(RELIABILITY_SEED={seed})"
    job, path = make_train_job("preempted")
    ref_job, _ = make_train_job("uninterrupted")
    # the uninterrupted reference trains in a thread of this process while the real trainer
    # processes below start up (most of their time is imports and model loading)
    pool = ThreadPoolExecutor(1)
    reference = pool.submit(_uninterrupted, ref_job, reference_weights)
    store = open_storage(job.spec.storage)

    # 1. SIGTERM (pod preemption) at a random step: checkpoint at the next boundary, exit 143
    term_at = rng.randint(1, 3)
    p1 = TrainProcess(path, tmp_path)
    assert p1.wait_for(lambda: p1.step >= term_at), f"trainer exited before step {term_at} {why}\n{p1.stderr[-2000:]}"
    p1.signal(signal.SIGTERM)
    rc, _ = p1.finish()
    assert rc == 143, f"{why}\n{p1.stderr[-2000:]}"
    assert "preempted: SIGTERM: checkpointed at step" in p1.stderr
    ckpts = _checkpoints(store)
    term_step = max(ckpts)
    assert ckpts[term_step] and term_step >= term_at, (ckpts, why)
    assert not Manifest(store).is_done("train")

    # 2. restart, then SIGKILL while a later checkpoint is half uploaded (files but no marker)
    p2 = TrainProcess(path, tmp_path)

    def half_written() -> bool:
        return any(not done and step > term_step for step, done in _checkpoints(store).items())

    caught = p2.wait_for(half_written, poll=0.005)
    assert caught, f"no checkpoint after step {term_step} was seen half-written {why}\n{p2.stderr[-2000:]}"
    kill(p2)
    ckpts = _checkpoints(store)
    partial = [s for s, done in ckpts.items() if not done]
    assert partial, f"the killed upload left no partial checkpoint: {ckpts} {why}"
    complete = max(s for s, done in ckpts.items() if done)
    assert complete < min(partial)
    assert f"resumed from s3://" in p2.stderr and f"step {term_step}" in p2.stderr

    # 3. restart: resumes from the latest COMPLETE checkpoint, never the half-written one
    assert tr.latest_checkpoint(store).endswith(f"step-{complete:08d}")
    p3 = TrainProcess(path, tmp_path)
    rc, out = p3.finish()
    assert rc == 0, f"{why}\n{p3.stderr[-3000:]}"
    assert out["resumed_from"].endswith(f"step-{complete:08d}"), (out, why)
    assert out["steps"] == TOTAL_STEPS
    assert Manifest(store).is_done("train")

    expected = reference.result(timeout=300)
    pool.shutdown()
    got = _model_weights(job)
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m} {why}")
    diff = max(float((got[n] - expected[n]).abs().max()) for n in expected)
    print(f"preemption {why}: SIGTERM at step {term_at} -> checkpoint {term_step}; "
          f"SIGKILL with partial checkpoint(s) {partial} -> resumed from {complete}; "
          f"max |weight difference| vs uninterrupted = {diff:.3g}")
