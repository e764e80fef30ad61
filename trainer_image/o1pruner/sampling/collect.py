"""Drive a :class:`Sampler` over a dataset: grade every sample and keep resumable shards.

Finished problems are flushed to storage as small JSONL shards (``<prefix>/shards/part-*.jsonl``,
each written atomically). A rerun reads the shards first and only samples the problems that are
missing, so an interrupted run (a killed sampler pod, a preempted job) never resamples finished
work. Problems whose requests failed are retried once more at the end, then reported.

Every sample is graded with its dataset's :class:`~o1pruner.spec.GradingSpec`, knowing whether it
stopped at the token cap (the backend's finish reason); resumed samples are graded again, so a
rerun with other grading rules never mixes two gradings.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from o1pruner.data import Problem
from o1pruner.grading import grade, is_truncated
from o1pruner.prompts import build_messages
from o1pruner.sampling.base import Completion, GenerationParams, Sampler
from o1pruner.spec import GradingSpec, PromptSpec
from o1pruner.storage import Storage

log = logging.getLogger(__name__)
#: Sampling pushes its metrics to a Pushgateway at most this often (seconds), while it runs.
SAMPLING_PUSH_SECONDS = 1.0


@dataclass
class SamplingOutcome:
    """All records (previous shards + new), the problems that failed, and what was resumed."""

    records: list[dict]
    failed: dict[str, str] = field(default_factory=dict)
    resumed_problems: int = 0
    sampled_problems: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0


def graded(record: dict, grading: GradingSpec | None = None, max_tokens: int | None = None) -> dict:
    """``record`` with ``extracted``, ``correct``, ``truncated`` and ``grade_reason`` (re)computed
    from its text, gold answer and finish reason."""
    truncated = is_truncated(record.get("finish_reason"), record.get("length"), max_tokens)
    g = grade(record["text"], record["answer"], grading, truncated=truncated)
    return {**record, "extracted": g.extracted, "correct": bool(g.correct), "truncated": truncated,
            "grade_reason": g.reason}


def sample_record(
    problem: Problem, dataset: str, index: int, completion: Completion,
    grading: GradingSpec | None = None, max_tokens: int | None = None,
) -> dict:
    """One graded sample: the unit every later phase reads."""
    record = {
        "dataset": dataset,
        "problem_id": problem.id,
        "sample_index": index,
        "difficulty": problem.difficulty,
        "answer": problem.answer,
        "text": completion.text,
        "length": completion.tokens,
        "finish_reason": completion.finish_reason,
    }
    return graded(record, grading, max_tokens)


def read_shards(store: Storage, prefix: str) -> list[dict]:
    records: list[dict] = []
    for key in store.list(f"{prefix}/shards"):
        if key.endswith(".jsonl"):
            records.extend(store.read_jsonl(key))
    return records


def sample_problems(
    sampler: Sampler,
    problems: Sequence[Problem],
    prompt: PromptSpec,
    params: GenerationParams,
    *,
    store: Storage,
    prefix: str,
    dataset: str,
    fast_solving: bool = False,
    flush_every: int = 8,
    retry_rounds: int = 1,
    metrics=None,
    desc: str | None = None,
    grading: GradingSpec | None = None,
) -> SamplingOutcome:
    """Sample ``params.n`` solutions per problem, graded under ``grading``, resuming from shards
    under ``prefix``."""
    t0 = time.monotonic()
    previous = read_shards(store, prefix)
    known = {p.id for p in problems}
    done = {r["problem_id"] for r in previous if r["problem_id"] in known}
    by_id = {p.id: p for p in problems}
    todo = [p for p in problems if p.id not in done]
    outcome = SamplingOutcome(
        records=[graded(r, grading, params.max_tokens) for r in previous if r["problem_id"] in known],
        resumed_problems=len(done),
    )
    if done:
        log.info("%s: resuming, %d/%d problems already sampled", dataset, len(done), len(problems))

    buffer: list[dict] = []

    def flush() -> None:
        if buffer:
            store.write_jsonl(f"{prefix}/shards/part-{int(time.time() * 1000):015d}-{uuid.uuid4().hex[:8]}.jsonl", buffer)
            buffer.clear()

    bar = tqdm(total=len(problems), initial=len(done), desc=desc or f"sampling {dataset}", unit="problem")
    try:
        for round_ in range(retry_rounds + 1):
            if not todo:
                break
            if round_:
                log.warning("%s: retrying %d failed problems", dataset, len(todo))
            prompts = [(p.id, build_messages(p.problem, prompt, fast_solving)) for p in todo]
            failed: dict[str, str] = {}
            pending_in_buffer = 0
            for key, result in sampler.generate(prompts, params):
                if isinstance(result, Exception):
                    failed[key] = f"{type(result).__name__}: {result}"
                    continue
                problem = by_id[key]
                new = [sample_record(problem, dataset, i, c, grading, params.max_tokens) for i, c in enumerate(result)]
                buffer.extend(new)
                outcome.records.extend(new)
                outcome.sampled_problems += 1
                tokens = sum(r["length"] for r in new)
                outcome.generated_tokens += tokens
                bar.update(1)
                pending_in_buffer += 1
                if metrics is not None:
                    metrics.samples_generated(dataset, len(new), tokens)
                    metrics.sampling_progress(dataset, len(done) + outcome.sampled_problems, len(problems))
                    metrics.push(min_interval=SAMPLING_PUSH_SECONDS)
                if pending_in_buffer >= flush_every:
                    flush()
                    pending_in_buffer = 0
            flush()
            todo = [by_id[k] for k in failed]
            outcome.failed = failed
    finally:
        flush()
        bar.close()
    order = {p.id: i for i, p in enumerate(problems)}
    outcome.records.sort(key=lambda r: (order[r["problem_id"]], r["sample_index"]))
    outcome.seconds = time.monotonic() - t0
    if outcome.failed:
        log.error("%s: %d problems failed after retries: %s", dataset, len(outcome.failed), outcome.failed)
    return outcome
