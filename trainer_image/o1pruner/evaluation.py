"""Evaluation: accuracy and mean token length per eval set, base vs pruned, and AES.

Greedy decoding with one sample per problem by default (the paper's protocol), graded with each
dataset's :class:`~o1pruner.spec.GradingSpec`. AES is computed per dataset with
:func:`o1pruner.rewards.aes`; the average row is the mean of the per-dataset values (as the
paper's AVERAGE column).

Base and pruned are only compared on the same problems: a problem whose requests failed is
retried (by the sampler, once more at the end of the pass, and by a rerun of the phase, which
resamples only what is missing); an evaluation that still misses problems fails its phase
(:class:`IncompleteEvaluation`), and :func:`compare` refuses summaries whose problem sets differ
(:class:`IncomparableEvaluations`), naming the problems.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from o1pruner.data import Problem
from o1pruner.rewards import aes
from o1pruner.sampling.base import GenerationParams, Sampler
from o1pruner.sampling.collect import sample_problems
from o1pruner.spec import AESWeights, EvaluationSpec, GradingSpec, PromptSpec
from o1pruner.stats import summarize
from o1pruner.storage import Storage

#: How many missing problem ids an error message names (the summary keeps them all).
_NAMED = 10


class IncompleteEvaluation(RuntimeError):
    """Problems of an eval set are still missing after the retries; ``missing`` maps each
    dataset to their ids. What finished is kept; a rerun samples only the missing problems."""

    def __init__(self, label: str, missing: dict[str, list[str]]):
        self.label = label
        self.missing = missing
        parts = [f"{name}: {len(ids)} problems ({_names(ids)})" for name, ids in missing.items()]
        super().__init__(
            f"evaluation {label!r} is missing problems whose requests failed after retries, "
            f"so it cannot be compared: {'; '.join(parts)}; rerun the phase to sample only those"
        )


class IncomparableEvaluations(ValueError):
    """Two evaluations that were not scored on the same problems (named in the message)."""


def _names(ids: Sequence[str]) -> str:
    ids = sorted(ids)
    more = f", and {len(ids) - _NAMED} more" if len(ids) > _NAMED else ""
    return ", ".join(ids[:_NAMED]) + more


def problem_set_digest(ids: Iterable[str]) -> str:
    """A short fingerprint of a set of problem ids (equal sets, equal digests)."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode()).hexdigest()[:16]


def by_difficulty(records: Sequence[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[str(r.get("difficulty"))].append(r)
    return {k: summarize(v) for k, v in sorted(groups.items())}


def evaluate_model(
    sampler: Sampler,
    datasets: dict[str, Sequence[Problem]],
    prompt: PromptSpec,
    ev: EvaluationSpec,
    store: Storage,
    label: str,
    *,
    seed: int = 0,
    fast_solving: bool = False,
    metrics=None,
    grading: Mapping[str, GradingSpec] | None = None,
) -> dict[str, dict]:
    """Generate, grade and summarise every eval set; writes ``eval/<label>/<dataset>.jsonl``
    and ``eval/<label>/summary.json``. Resumes from shards like reference sampling.

    ``grading`` maps a dataset name to its rules (default rules for a name not in it). Raises
    :class:`IncompleteEvaluation` (after writing what finished) when problems are missing."""
    params = GenerationParams(n=ev.samples, temperature=ev.temperature, top_p=1.0, max_tokens=ev.max_tokens, seed=seed)
    summary: dict[str, dict] = {}
    missing: dict[str, list[str]] = {}
    for name, problems in datasets.items():
        rules = (grading or {}).get(name) or GradingSpec()
        outcome = sample_problems(
            sampler, problems, prompt, params, store=store, prefix=f"eval/{label}/{name}", dataset=name,
            fast_solving=fast_solving, metrics=metrics, desc=f"eval {label} {name}", grading=rules,
        )
        store.write_jsonl(f"eval/{label}/{name}.jsonl", outcome.records)
        scored = {r["problem_id"] for r in outcome.records}
        summary[name] = {
            **summarize(outcome.records),
            "by_difficulty": by_difficulty(outcome.records),
            "truncated_fraction": (sum(bool(r.get("truncated")) for r in outcome.records) / len(outcome.records)
                                   if outcome.records else 0.0),
            "problems": len(problems),
            "scored_problems": len(scored),
            "problem_set": problem_set_digest(scored),
            "failed_problems": len(outcome.failed),
            "missing_problems": sorted({p.id for p in problems} - scored),
            "grading": rules.to_wire(),
        }
        if summary[name]["missing_problems"]:
            missing[name] = summary[name]["missing_problems"]
        if metrics is not None:
            metrics.eval_result(label, name, summary[name]["accuracy"], summary[name]["mean_length"])
    store.write_json(f"eval/{label}/summary.json", summary)
    if missing:
        raise IncompleteEvaluation(label, missing)
    return summary


def check_same_problems(name: str, base: Mapping, model: Mapping, labels: tuple[str, str] = ("base", "pruned")) -> None:
    """Raise :class:`IncomparableEvaluations` unless two summaries of dataset ``name`` were scored
    on the same problems (summaries written before problem sets were recorded are trusted)."""
    gaps = [f"{label} is missing {len(s['missing_problems'])} problems ({_names(s['missing_problems'])})"
            for label, s in zip(labels, (base, model)) if s.get("missing_problems")]
    digests = {base.get("problem_set"), model.get("problem_set")}
    if not gaps and (None in digests or len(digests) == 1):
        return
    if not gaps:
        gaps = [f"{labels[0]} scored {base.get('scored_problems')} problems and {labels[1]} "
                f"{model.get('scored_problems')}, not the same ones"]
    raise IncomparableEvaluations(
        f"{name}: {labels[0]} and {labels[1]} were not scored on the same problems: {'; '.join(gaps)}. "
        "Refusing to compare; rerun the incomplete evaluation (it samples only the missing problems)."
    )


def compare(
    base: dict[str, dict], model: dict[str, dict], weights: AESWeights | None = None,
    labels: tuple[str, str] = ("base", "pruned"),
) -> dict:
    """Per-dataset base-vs-model results with AES, and their average.

    Both sides must cover the same datasets and, in each, the same problems
    (:class:`IncomparableEvaluations` otherwise). AES needs a non-zero base accuracy (ΔAcc is
    relative); where the base model solved nothing the AES is ``None`` and the dataset is left
    out of the AES average.
    """
    w = weights or AESWeights()
    absent = sorted(set(base) - set(model))
    if absent:
        raise IncomparableEvaluations(f"{labels[1]} has no evaluation of {', '.join(absent)}; refusing to compare")
    rows: dict[str, dict] = {}
    for name, b in base.items():
        m = model[name]
        check_same_problems(name, b, m, labels)
        row = {
            "baseAccuracy": b["accuracy"],
            "prunedAccuracy": m["accuracy"],
            "baseLength": b["mean_length"],
            "prunedLength": m["mean_length"],
            "lengthReduction": (b["mean_length"] - m["mean_length"]) / b["mean_length"] if b["mean_length"] else 0.0,
            "accuracyChange": m["accuracy"] - b["accuracy"],
            "aes": (
                aes(b["accuracy"], b["mean_length"], m["accuracy"], m["mean_length"], w.alpha, w.beta, w.gamma)
                if b["accuracy"] > 0 and b["mean_length"] > 0
                else None
            ),
        }
        rows[name] = row
    keys = ["baseAccuracy", "prunedAccuracy", "baseLength", "prunedLength", "lengthReduction", "accuracyChange"]
    average = {k: sum(r[k] for r in rows.values()) / len(rows) for k in keys} if rows else {}
    aes_values = [r["aes"] for r in rows.values() if r["aes"] is not None]
    if rows:
        average["aes"] = sum(aes_values) / len(aes_values) if aes_values else None
    return {"datasets": rows, "average": average}
