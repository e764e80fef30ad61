"""The O1-Pruner pipeline as phases: sample → train → evaluate (→ report).

Each phase reads its inputs from storage, writes its outputs to storage, and records itself in
the manifest; a rerun skips finished phases (and, inside sampling/evaluation, finished problems).
The cluster runs one phase per container (``o1pruner sample|train|evaluate``); ``run_local``
runs them all in one process on a laptop CPU.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from collections.abc import Callable
from functools import partial
from pathlib import Path

from o1pruner.data import Problem, load_dataset, lower_bounds
from o1pruner.diagnostics import reference_diagnostics, truncation_message
from o1pruner.evaluation import IncomparableEvaluations, IncompleteEvaluation, compare, evaluate_model
from o1pruner.models import resolve_model
from o1pruner.report import build_report, fit_termination, render_png, termination_summary
from o1pruner.rounds import result_round, round_prefix, round_summary, rounds_text, stop_reason
from o1pruner.sampling.base import GenerationParams, Sampler
from o1pruner.sampling.collect import sample_problems
from o1pruner.savings import savings_per_million_requests
from o1pruner.spec import EMBEDDED_PREFIX, PruningJob
from o1pruner.stats import reference_stats, summarize
from o1pruner.storage import Manifest, Storage, open_storage, read_uri
from o1pruner.trainset import sample_rewards

log = logging.getLogger(__name__)

PRUNED_MODEL = "train/model"
FAST_PROMPT = "fast-prompt"


class PhaseError(RuntimeError):
    """A phase could not finish; what it produced so far stays in storage."""


@dataclass
class Context:
    job: PruningJob
    store: Storage
    manifest: Manifest
    metrics: object | None = None
    #: malformed lines of each dataset loaded in this process: name -> [(line_number, reason)]
    bad_lines: dict[str, list] = field(default_factory=dict)
    #: the pruning round (:mod:`o1pruner.rounds`); ``store``/``manifest`` are that round's folder
    round: int = 1
    #: the job's storage root (where the base model's evaluation lives); ``None``: ``store``
    root: Storage | None = None

    @property
    def spec(self):
        return self.job.spec

    @property
    def name(self) -> str:
        return self.job.metadata.name

    @property
    def base_store(self) -> Storage:
        """Where the base model's evaluation (and round 1) lives: the storage root."""
        return self.root if self.root is not None else self.store

    def for_round(self, n: int) -> Context:
        """The context of round ``n``: its storage folder and manifest, the same job and metrics."""
        root = self.base_store
        store = root.child(round_prefix(n))
        return Context(job=self.job, store=store, manifest=Manifest(store), metrics=self.metrics,
                       bad_lines=self.bad_lines, round=n, root=root)


def open_context(job: PruningJob, phase: str = "local", with_metrics: bool = True) -> Context:
    store = open_storage(job.spec.storage)
    metrics = None
    # Under torchrun only global rank 0 publishes (serves or pushes) the phase's metrics.
    if with_metrics and os.environ.get("RANK", "0") == "0":
        from o1pruner.metrics import PipelineMetrics

        metrics = PipelineMetrics(job.metadata.name, job.spec.model.served_name, job.spec.metrics, phase=phase)
        metrics.start()
    return Context(job=job, store=store, manifest=Manifest(store), metrics=metrics)


# --------------------------------------------------------------------------- data and models
def _load(ctx: Context, ds) -> list[Problem]:
    st = ctx.spec.storage
    result = load_dataset(ds, read_bytes=partial(read_uri, endpoint_url=st.endpoint_url, region=st.region))
    ctx.bad_lines[ds.name] = list(result.bad_lines)
    if result.bad_lines:
        log.warning("%s: skipped %d malformed lines, e.g. %s", ds.name, len(result.bad_lines), result.bad_lines[:3])
    if not result.problems:
        raise PhaseError(f"dataset {ds.name} ({ds.source}) has no valid problems")
    return result.problems


def _ungradable(records) -> int:
    """Outputs with no extractable final answer (graded wrong, counted for the report)."""
    return sum(1 for r in records if r.get("extracted") is None)


def train_problems(ctx: Context) -> list[Problem]:
    return _load(ctx, ctx.spec.datasets.train)


def eval_problems(ctx: Context) -> dict[str, list[Problem]]:
    return {ds.name: _load(ctx, ds) for ds in ctx.spec.datasets.eval}


def base_model_path(ctx: Context) -> str:
    return resolve_model(ctx.spec.model.source, ctx.spec.model.revision, read_s3_dir=_download_s3_dir)


def pruned_model_path(ctx: Context) -> str:
    """Round ``ctx.round``'s pruned model, downloaded to a local directory."""
    if not ctx.store.is_dir_complete(PRUNED_MODEL):
        raise PhaseError(f"no complete pruned model at {ctx.store.uri(PRUNED_MODEL)}: run the train phase first")
    suffix = "" if ctx.round == 1 else f"-r{ctx.round}"
    dest = Path(tempfile.gettempdir()) / f"o1pruner-{ctx.name}{suffix}-pruned"
    ctx.store.download_dir(PRUNED_MODEL, str(dest))
    return str(dest)


def reference_model_path(ctx: Context) -> str:
    """The model a round samples its references from and trains: the base model in round 1,
    the previous round's pruned model after."""
    if ctx.round == 1:
        return base_model_path(ctx)
    return pruned_model_path(ctx.for_round(ctx.round - 1))


def _download_s3_dir(uri: str, dest: Path) -> None:
    from o1pruner.spec import StorageSpec

    open_storage(StorageSpec(uri=uri)).download_dir("", str(dest))


def make_sampler(ctx: Context, model_path: str, endpoint: str | None = None, served_name: str | None = None) -> Sampler:
    """An HTTP sampler when an endpoint is known, else the in-process transformers sampler.

    ``sampling.backend: vllm`` without an endpoint starts a local vLLM server
    (:mod:`o1pruner.vllm_server`) for the duration of the phase.
    """
    s = ctx.spec.sampling
    endpoint = endpoint or s.endpoint
    if endpoint:
        from o1pruner.sampling.openai import OpenAISampler

        return OpenAISampler(
            endpoint, served_name or ctx.spec.model.served_name, concurrency=s.concurrency,
            timeout=s.request_timeout_seconds, max_retries=s.max_retries,
        )
    if s.backend == "vllm":
        from o1pruner.vllm_server import local_vllm_sampler

        return local_vllm_sampler(ctx.spec, model_path, served_name=served_name)
    from o1pruner.sampling.hf import HFSampler

    return HFSampler.from_pretrained(model_path, batch_size=s.batch_size)


def phase_sampler(ctx: Context, model_path: Callable[[], str], endpoint: str | None = None) -> Sampler:
    """A phase's own sampler: with an endpoint the model is served there, so ``model_path`` (a
    download, e.g. the previous round's pruned model) is not called."""
    if endpoint or ctx.spec.sampling.endpoint:
        return make_sampler(ctx, "", endpoint)
    return make_sampler(ctx, model_path(), endpoint)


# --------------------------------------------------------------------------- phases
def phase_sample(
    ctx: Context, sampler: Sampler | None = None, endpoint: str | None = None, flush_every: int = 8
) -> dict:
    """Reference sampling (paper Sec. 3.1): K graded samples per training problem and the
    per-problem statistics L̄_ref(x), Ā_ref(x)."""
    if ctx.manifest.is_done("sample"):
        log.info("sample: already done, skipping")
        return ctx.manifest.outputs("sample")
    s = ctx.spec.sampling
    problems = train_problems(ctx)
    own = sampler is None
    sampler = sampler or phase_sampler(ctx, partial(reference_model_path, ctx), endpoint)
    try:
        params = GenerationParams(n=s.k, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed)
        name = ctx.spec.datasets.train.name
        outcome = sample_problems(
            sampler, problems, ctx.spec.prompt, params, store=ctx.store, prefix="reference", dataset=name,
            metrics=ctx.metrics, desc=f"reference sampling (K={s.k})", flush_every=flush_every,
            grading=ctx.spec.datasets.train.grading,
        )
    finally:
        if own:
            sampler.close()
    if outcome.failed:
        raise PhaseError(
            f"{len(outcome.failed)} of {len(problems)} problems failed after retries "
            f"(finished ones are kept and will not be resampled): {sorted(outcome.failed)[:5]}"
        )
    stats = reference_stats(outcome.records)
    ctx.store.write_jsonl("reference/samples.jsonl", outcome.records)
    ctx.store.write_jsonl("reference/stats.jsonl", list(stats.values()))
    overall = summarize(outcome.records)
    diag = reference_diagnostics(outcome.records, sample_rewards(outcome.records, stats, ctx.spec.training))
    if diag["truncationWarning"]:
        log.warning("sample: %s", truncation_message(diag))
    if ctx.metrics is not None:
        ctx.metrics.reference_stats(name, overall["mean_length"], overall["accuracy"])
        ctx.metrics.reference_diagnostics(name, diag["truncationRate"], diag["zeroRewardVarianceShare"])
        ctx.metrics.reference_length_by_correctness(name, diag["meanLengthCorrect"], diag["meanLengthIncorrect"])
        ctx.metrics.push()
    if s.max_truncation_rate is not None and diag["truncationRate"] > s.max_truncation_rate:
        raise PhaseError(f"spec.sampling.maxTruncationRate is {s.max_truncation_rate}: {truncation_message(diag)} "
                         f"(samples kept in {ctx.store.uri('reference/')})")
    outputs = {
        "samples": ctx.store.uri("reference/samples.jsonl"),
        "stats": ctx.store.uri("reference/stats.jsonl"),
        "problems": len(problems),
        "samples_total": len(outcome.records),
        "mean_length": overall["mean_length"],
        "mean_accuracy": overall["accuracy"],
        "resumed_problems": outcome.resumed_problems,
        "malformed_lines": len(ctx.bad_lines.get(name, [])),
        "malformed_line_examples": [list(b) for b in ctx.bad_lines.get(name, [])[:5]],
        "ungradable_samples": _ungradable(outcome.records),
        "generated_tokens": outcome.generated_tokens,
        "seconds": outcome.seconds,
        # the operator's sampler (an endpoint): its declared GPUs; an in-process sampler: unknown
        "sampler_accelerators": s.sampler.replicas * int(s.sampler.resources.gpus() or 0) if s.endpoint else None,
        "diagnostics": diag,
    }
    ctx.manifest.mark_done("sample", outputs)
    return outputs


def training_examples(ctx: Context, method: str | None = None) -> tuple[str, list[dict]]:
    from o1pruner.trainset import dpo_pairs, o1_pruner_examples, sft_examples

    t = ctx.spec.training
    method = method or t.method
    records = ctx.store.read_jsonl("reference/samples.jsonl")
    if method == "o1-pruner":
        stats = {r["problem_id"]: r for r in ctx.store.read_jsonl("reference/stats.jsonl")}
        return method, o1_pruner_examples(records, stats, t, ctx.spec.sampling.samples_per_problem, seed=t.seed)
    if method == "sft":
        return method, sft_examples(records, ctx.spec.sampling.samples_per_problem)
    return method, dpo_pairs(records, ctx.spec.sampling.samples_per_problem)


def phase_train(ctx: Context, max_steps: int | None = None) -> dict:
    """Length-harmonizing fine-tuning (paper Sec. 3.2) of the reference model on its samples."""
    from o1pruner import training as tr

    if ctx.manifest.is_done("train"):
        log.info("train: already done, skipping")
        return ctx.manifest.outputs("train")
    if not ctx.manifest.is_done("sample"):
        raise PhaseError("train needs the sample phase's reference samples; run `o1pruner sample` first")
    t = ctx.spec.training
    method, examples = training_examples(ctx)
    if not examples:
        raise PhaseError(f"no training examples for method {method} (e.g. SFT/DPO need correct samples)")
    problems = {p.id: p.problem for p in train_problems(ctx)}
    device, dtype = tr.pick_device_dtype(t)
    model, tokenizer = tr.load_policy(reference_model_path(ctx), t, dtype, device)
    units = tr.build_units(method, examples, tokenizer, ctx.spec.prompt, t.max_length, problems)
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    result = tr.train(
        model, tokenizer, units, t, ctx.store, method=method, metrics=ctx.metrics, max_steps=max_steps,
        world_size=world_size, rank=rank,
    )
    outputs = {
        "method": method,
        "examples": len(examples),
        # examples whose text is a correct solution (a DPO pair's chosen one always is)
        "correct_examples": sum(bool(e.get("correct", "chosen" in e)) for e in examples),
        "steps": result.steps,
        "resumed_from": ctx.store.uri(result.resumed_from) if result.resumed_from else None,
        "padding_waste": result.padding_waste,
        "seconds": result.seconds,
        "checkpoints": ctx.store.uri(tr.CHECKPOINTS),
        "final_loss": result.history[-1]["loss"] if result.history else None,
        # mean over the steps; the split by the advantage's sign adds up to the total
        **{key: sum(h[key] for h in result.history) / len(result.history) if result.history else None
           for key in ("clip_fraction", "clip_fraction_positive", "clip_fraction_negative")},
    }
    outputs["model"] = tr.save_model(result.model, tokenizer, ctx.store, PRUNED_MODEL, engine=result.engine, rank=rank)
    if rank == 0:
        ctx.manifest.mark_done("train", outputs)
    return outputs


def phase_evaluate(
    ctx: Context, which: str, sampler: Sampler | None = None, endpoint: str | None = None, fast_solving: bool = False
) -> dict:
    """Evaluate the base or the pruned model on every eval set; when both are done, the report."""
    label = FAST_PROMPT if fast_solving else which
    phase = f"evaluate-{label}"
    if which == "base" and ctx.round != 1:
        ctx = ctx.for_round(1)  # every round is judged against the original base's evaluation
    if ctx.manifest.is_done(phase):
        log.info("%s: already done, skipping", phase)
        summary = ctx.store.read_json(f"eval/{label}/summary.json")
    else:
        own = sampler is None
        if own:
            sampler = phase_sampler(ctx, partial(base_model_path if which == "base" else pruned_model_path, ctx),
                                    endpoint)
        try:
            summary = evaluate_model(
                sampler, eval_problems(ctx), ctx.spec.prompt, ctx.spec.evaluation, ctx.store, label,
                seed=ctx.spec.sampling.seed, fast_solving=fast_solving, metrics=ctx.metrics,
                grading={ds.name: ds.grading for ds in ctx.spec.datasets.eval},
            )
        except IncompleteEvaluation as exc:
            raise PhaseError(str(exc)) from exc
        finally:
            if own:
                sampler.close()
        ctx.manifest.mark_done(phase, {"summary": ctx.store.uri(f"eval/{label}/summary.json")})
    if ctx.metrics is not None:
        ctx.metrics.push()
    return summary


def make_report(ctx: Context) -> dict | None:
    """Combine base and pruned evaluations into ``report/report.json`` and ``report/report.png``;
    evaluations not scored on the same problems fail the phase instead of being compared."""
    try:
        return _make_report(ctx)
    except IncomparableEvaluations as exc:
        raise PhaseError(f"report: {exc}") from exc


def _make_report(ctx: Context) -> dict | None:
    base_store = ctx.base_store
    base_manifest = Manifest(base_store)
    if not (base_manifest.is_done("evaluate-base") and ctx.manifest.is_done("evaluate-pruned")):
        return None
    ev = ctx.spec.evaluation
    base = base_store.read_json("eval/base/summary.json")
    pruned = ctx.store.read_json("eval/pruned/summary.json")
    results = compare(base, pruned, ev.aes)
    names = [ds.name for ds in ctx.spec.datasets.eval]
    base_recs = _eval_records(base_store, "base", names)
    pruned_recs = _eval_records(ctx.store, "pruned", names)
    extra: dict = {"manifest": ctx.manifest.data()}
    if ctx.spec.rounds.count > 1:
        extra["round"] = ctx.round
    for ds in ctx.spec.datasets.eval:
        if ds.name not in ctx.bad_lines:  # eval phases ran in another process: count again
            _load(ctx, ds)
    sampled = ctx.manifest.outputs("sample")
    trained = ctx.manifest.outputs("train")
    extra["diagnostics"] = {
        "reference": sampled.get("diagnostics"),
        "training": {k: trained.get(k) for k in ("clip_fraction", "clip_fraction_positive", "clip_fraction_negative")},
    }
    extra["dataQuality"] = {
        "malformedLines": {
            ctx.spec.datasets.train.name: sampled.get("malformed_lines", 0),
            **{n: len(ctx.bad_lines[n]) for n in names},
        },
        "ungradableOutputs": {
            "reference": sampled.get("ungradable_samples", 0),
            "base": _ungradable(base_recs),
            "pruned": _ungradable(pruned_recs),
        },
    }
    if base_manifest.is_done(f"evaluate-{FAST_PROMPT}"):
        extra["fastPromptBaseline"] = compare(
            base, base_store.read_json(f"eval/{FAST_PROMPT}/summary.json"), ev.aes, ("base", FAST_PROMPT)
        )
    extra["savings"] = _savings(sampled, base_recs, pruned_recs)
    if ctx.spec.model.source.startswith(EMBEDDED_PREFIX):  # a built-in model: name the build
        from o1pruner.testbed.build import build_identity

        extra["baseModel"] = build_identity(Path(base_model_path(ctx)))
    l_min = lower_bounds([p for ps in eval_problems(ctx).values() for p in ps], base_model_path(ctx))
    report = build_report(ctx.name, results, base_recs, pruned_recs, extra, l_min=l_min, guard=ev.guard)
    ctx.store.write_json("report/report.json", report)
    ctx.store.write_bytes("report/report.png", render_png(report, base_recs, pruned_recs))
    if ctx.metrics is not None:
        for name, row in results["datasets"].items():
            ctx.metrics.aes(name, row["aes"], row["lengthReduction"])
        for n, length, accuracy in _round_figures(ctx, base, results):
            ctx.metrics.round_result(n, length, accuracy)
        for model, rows in report["byDifficulty"].items():
            ctx.metrics.accuracy_by_difficulty(model, rows)
        if extra["savings"] is not None:
            ctx.metrics.savings(extra["savings"]["tokensSavedPerMillionRequests"],
                                extra["savings"]["samplerHoursSavedPerMillionRequests"])
        ctx.metrics.push()
    ctx.manifest.mark_done("report", {"report": ctx.store.uri("report/report.json"), "png": ctx.store.uri("report/report.png")})
    return report


def _round_figures(ctx: Context, base: dict, results: dict) -> list[tuple[int, float, float]]:
    """(round, mean eval length, accuracy) of the base (round 0) and of every round up to this
    one that is evaluated: each round's eval pod publishes them all (a Pushgateway group holds
    only the last push)."""
    avg = results["average"]
    out = [(0, avg["baseLength"], avg["baseAccuracy"])]
    for n in range(1, ctx.round + 1):
        rctx = ctx if n == ctx.round else ctx.for_round(n)
        if n == ctx.round or rctx.manifest.is_done("evaluate-pruned"):
            a = avg if n == ctx.round else compare(base, rctx.store.read_json("eval/pruned/summary.json"))["average"]
            out.append((n, a["prunedLength"], a["prunedAccuracy"]))
    return out


def _savings(sampled: dict, base: list[dict], pruned: list[dict]) -> dict | None:
    """Savings per million requests from the evaluations' mean lengths and the reference
    sampler's measured throughput (completion tokens / seconds of the sample phase)."""
    if not base or not pruned:
        return None
    tokens, seconds = sampled.get("generated_tokens") or 0, sampled.get("seconds") or 0
    return savings_per_million_requests(
        sum(r["length"] for r in base) / len(base), sum(r["length"] for r in pruned) / len(pruned),
        tokens / seconds if tokens > 0 and seconds > 0 else None, sampled.get("sampler_accelerators"),
    )


def write_termination_message(report: dict, path: str | None = None) -> bool:
    """Write the compact results where Kubernetes reads a container's termination message."""
    return write_termination(termination_summary(report), path)


def write_termination(doc: dict, path: str | None = None) -> bool:
    """Write ``doc`` as compact JSON (≤ 4 KiB, :func:`o1pruner.report.fit_termination`) where
    Kubernetes reads the container's termination message (the operator reads it into status)."""
    path = path or os.environ.get("O1PRUNER_TERMINATION_LOG", "/dev/termination-log")
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(fit_termination(doc))
        return True
    except OSError:
        return False


def run_local(job: PruningJob, max_steps: int | None = None) -> dict:
    """All phases in one process: the embedded, one-command run. Returns the report."""
    spec = job.spec
    if spec.rounds.count > 1 and spec.sampling.endpoint:
        raise PhaseError("spec.rounds.count > 1 with spec.sampling.endpoint: the endpoint serves the base model, "
                         "but round 2 on samples the previous round's pruned model; run the rounds without an "
                         "endpoint (in-process or a local vLLM) or through the operator")
    ctx = open_context(job)
    # One sampler (in-process model or local vLLM server) for the reference model's phases; the
    # pruned model gets its own after training.
    shared: Sampler | None = None
    if not spec.sampling.endpoint:
        if not (ctx.manifest.is_done("sample") and ctx.manifest.is_done("evaluate-base")):
            shared = make_sampler(ctx, base_model_path(ctx))
    try:
        phase_sample(ctx, sampler=shared)
        phase_evaluate(ctx, "base", sampler=shared)
        if spec.evaluation.include_fast_prompt_baseline:
            phase_evaluate(ctx, "base", sampler=shared, fast_solving=True)
    finally:
        if shared is not None:
            shared.close()
            shared = None
    phase_train(ctx, max_steps=max_steps)
    phase_evaluate(ctx, "pruned")
    report = make_report(ctx)
    assert report is not None
    if spec.rounds.count == 1:
        return report
    return _later_rounds(ctx, report, max_steps)


ROUNDS_REPORT = "rounds/report"


def _later_rounds(ctx: Context, first: dict, max_steps: int | None) -> dict:
    """Rounds 2.. (:mod:`o1pruner.rounds`) after round 1's ``first`` report; each skips what its
    manifest says is done, so a rerun resumes in the round it stopped in. Returns the job's
    report: the result round's, with every round's summary, written to ``rounds/report.json``."""
    r = ctx.spec.rounds
    reports = {1: first}
    rounds = [round_summary(1, first, first["results"]["average"]["baseLength"])]
    reason = stop_reason(rounds[-1], r.count, r.min_length_gain)
    while reason is None:
        rctx = ctx.for_round(rounds[-1]["round"] + 1)
        phase_sample(rctx)
        phase_train(rctx, max_steps=max_steps)
        phase_evaluate(rctx, "pruned")
        report = make_report(rctx)
        assert report is not None
        reports[rctx.round] = report
        rounds.append(round_summary(rctx.round, report, rounds[-1]["prunedMeanLength"]))
        reason = stop_reason(rounds[-1], r.count, r.min_length_gain)
    result = result_round(rounds)
    shown = result or 1
    rctx = ctx.for_round(shown)
    report = {**reports[shown], "rounds": rounds, "resultRound": result, "stopReason": reason,
              "model": rctx.store.uri(PRUNED_MODEL) if result else None}
    root = ctx.base_store
    root.write_json(f"{ROUNDS_REPORT}.json", report)
    names = [ds.name for ds in ctx.spec.datasets.eval]
    root.write_bytes(f"{ROUNDS_REPORT}.png", render_png(
        report, _eval_records(root, "base", names), _eval_records(rctx.store, "pruned", names)))
    log.info("rounds: %s (%s)", rounds_text(rounds, result), reason)
    return report


def _eval_records(store: Storage, label: str, names: list[str]) -> list[dict]:
    return [r for n in names for r in store.read_jsonl(f"eval/{label}/{n}.jsonl")]
