"""Shared machinery of benchmarks 1 and 2 (paper Tables 2 and 3 at small scale).

Everything goes through the pipeline's public functions (``open_context``, ``phase_sample``,
``phase_train``, ``phase_evaluate``), so what is measured is what ``o1pruner run`` does:

- one *shared* run directory holds the reference samples (K per training problem), the base
  model's evaluation and the fast-solving-prompt evaluation; every method reuses them;
- each trained method gets its own run directory (``runs/bench/method-<name>``) seeded with a
  copy of the shared reference samples and statistics (the manifest marks ``sample`` done), then
  ``phase_train`` and ``phase_evaluate(..., "pruned")``;
- every method has the same budget: the same training problems and reference samples, epochs,
  optimizer steps' batch size, learning rate, schedule and cutoff;
- all evaluations (base, fast prompt, each trained model) use the same backend and settings
  (greedy, one sample, same max tokens), by default in-process transformers (a vLLM server
  per trained model would cost ~2 minutes of start-up each on this CPU); the reference samples
  come from a local vLLM server.

All of it resumes: a rerun skips finished phases (the manifests), so ``make bench`` after an
interruption continues where it stopped.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, Timer, job_dict  # noqa: E402

log = logging.getLogger("bench.pruning")


@dataclass
class Setup:
    train_count: int = 32
    eval_count: int = 48
    k: int = 8
    max_tokens: int = 128
    min_steps: int = 1
    max_steps: int = 2
    epochs: int = 3
    batch_size: int = 8
    micro_batch_size: int = 4
    learning_rate: float = 2e-5
    max_length: int = 320
    seed: int = 0
    sample_backend: str = "vllm"  # reference sampling (K per problem): a local vLLM server
    eval_backend: str = "transformers"  # greedy evals: in-process (no 2-minute server start per model)
    tag: str = "v1"

    def job(self, name: str, storage: Path, training: dict | None = None) -> dict:
        job = job_dict(
            name, str(storage), train_count=self.train_count, eval_count=self.eval_count, k=self.k,
            max_tokens=self.max_tokens,
            sampling={"seed": self.seed, "backend": self.sample_backend, "batchSize": 16},
            training={
                "learningRate": self.learning_rate, "epochs": self.epochs, "batchSize": self.batch_size,
                "microBatchSize": self.micro_batch_size, "maxLength": self.max_length, "lrScheduler": "cosine",
                "warmupRatio": 0.1, "checkpointEverySteps": 1000, "seed": 42, **(training or {}),
            },
        )
        for ds in [job["spec"]["datasets"]["train"], *job["spec"]["datasets"]["eval"]]:
            ds["generator"].update(minSteps=self.min_steps, maxSteps=self.max_steps)
        return job

    @property
    def root(self) -> Path:
        return WORK / f"pruning-{self.tag}"


def _ctx(job_obj: dict):
    from o1pruner.pipeline import open_context
    from o1pruner.spec import parse_job

    return open_context(parse_job(job_obj), with_metrics=False)


def _sampler(ctx, model_path: str, backend: str):
    if backend == "vllm":
        from o1pruner.vllm_server import local_vllm_sampler

        return local_vllm_sampler(ctx.spec, model_path)
    from o1pruner.sampling.hf import HFSampler

    return HFSampler.from_pretrained(model_path, batch_size=16)


def shared_reference(setup: Setup):
    """Reference samples + base and fast-prompt evaluations (one sampler for all three)."""
    from o1pruner.pipeline import FAST_PROMPT, base_model_path, phase_evaluate, phase_sample

    ctx = _ctx(setup.job("bench-shared", setup.root / "shared"))
    phases = ["sample", "evaluate-base", f"evaluate-{FAST_PROMPT}"]
    timings: dict[str, float] = {}
    if not ctx.manifest.is_done("sample"):
        t = Timer()
        sampler = _sampler(ctx, base_model_path(ctx), setup.sample_backend)
        timings["sampler_start"] = t.seconds()
        try:
            t = Timer()
            phase_sample(ctx, sampler=sampler)
            timings["sample"] = t.seconds()
        finally:
            sampler.close()
    if not all(ctx.manifest.is_done(p) for p in phases):
        sampler = _sampler(ctx, base_model_path(ctx), setup.eval_backend)
        try:
            t = Timer()
            phase_evaluate(ctx, "base", sampler=sampler)
            timings["evaluate_base"] = t.seconds()
            t = Timer()
            phase_evaluate(ctx, "base", sampler=sampler, fast_solving=True)
            timings["evaluate_fast_prompt"] = t.seconds()
        finally:
            sampler.close()
    return ctx, timings


def trained_method(setup: Setup, shared_ctx, name: str, training: dict) -> tuple[dict, dict]:
    """Train one method on the shared reference data and evaluate it; returns (summary, info)."""
    from o1pruner.pipeline import phase_evaluate, phase_train, pruned_model_path

    ctx = _ctx(setup.job(f"bench-{name}", setup.root / f"method-{name}", training))
    if not ctx.manifest.is_done("sample"):
        for key in ("reference/samples.jsonl", "reference/stats.jsonl"):
            ctx.store.write_bytes(key, shared_ctx.store.read_bytes(key))
        ctx.manifest.mark_done("sample", {**shared_ctx.manifest.outputs("sample"), "copied_from": shared_ctx.store.uri()})
    info: dict = {}
    t = Timer()
    out = phase_train(ctx)
    info.update(train_seconds=out.get("seconds"), train_steps=out.get("steps"), train_examples=out.get("examples"),
                correct_examples=out.get("correct_examples"),
                padding_waste=out.get("padding_waste"), final_loss=out.get("final_loss"), train_wall=t.seconds())
    if not ctx.manifest.is_done("evaluate-pruned"):
        t = Timer()
        sampler = _sampler(ctx, pruned_model_path(ctx), setup.eval_backend)
        try:
            phase_evaluate(ctx, "pruned", sampler=sampler)
        finally:
            sampler.close()
        info["eval_wall"] = t.seconds()
    summary = ctx.store.read_json("eval/pruned/summary.json")
    recs = [r for name in summary for r in ctx.store.read_jsonl(f"eval/pruned/{name}.jsonl")]
    info["truncated_fraction"] = sum(r.get("finish_reason") == "length" for r in recs) / max(len(recs), 1)
    return summary, info


def row(method: str, summary: dict, base: dict, store=None, label: str | None = None, **extra) -> dict:
    """One table row: accuracy, mean length, their change vs the base, AES (paper Eq. 8)."""
    from o1pruner.rewards import aes

    (name, s), = summary.items()
    b = base[name]
    value = aes(b["accuracy"], b["mean_length"], s["accuracy"], s["mean_length"]) if b["accuracy"] > 0 else None
    r = {
        "method": method,
        "accuracy": s["accuracy"],
        "mean_length": s["mean_length"],
        "length_ratio": s["mean_length"] / b["mean_length"],
        "length_change": s["mean_length"] / b["mean_length"] - 1.0,
        "accuracy_change": s["accuracy"] - b["accuracy"],
        "aes": value,
        "n": s["n"],
    }
    if store is not None and label is not None:
        recs = store.read_jsonl(f"eval/{label}/{name}.jsonl")
        r["truncated_fraction"] = sum(x.get("finish_reason") == "length" for x in recs) / max(len(recs), 1)
    r.update(extra)
    return r
