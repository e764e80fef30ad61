"""Evaluation: accuracy and mean token length per eval set, base vs pruned, and AES.

Greedy decoding with one sample per problem by default (the paper's protocol). AES is computed
per dataset with :func:`o1pruner.rewards.aes`; the average row is the mean of the per-dataset
values (as the paper's AVERAGE column).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from o1pruner.data import Problem
from o1pruner.rewards import aes
from o1pruner.sampling.base import GenerationParams, Sampler
from o1pruner.sampling.collect import sample_problems
from o1pruner.spec import AESWeights, EvaluationSpec, PromptSpec
from o1pruner.stats import summarize
from o1pruner.storage import Storage


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
) -> dict[str, dict]:
    """Generate, grade and summarise every eval set; writes ``eval/<label>/<dataset>.jsonl``
    and ``eval/<label>/summary.json``. Resumes from shards like reference sampling."""
    params = GenerationParams(n=ev.samples, temperature=ev.temperature, top_p=1.0, max_tokens=ev.max_tokens, seed=seed)
    summary: dict[str, dict] = {}
    for name, problems in datasets.items():
        outcome = sample_problems(
            sampler, problems, prompt, params, store=store, prefix=f"eval/{label}/{name}", dataset=name,
            fast_solving=fast_solving, metrics=metrics, desc=f"eval {label} {name}",
        )
        store.write_jsonl(f"eval/{label}/{name}.jsonl", outcome.records)
        summary[name] = {
            **summarize(outcome.records),
            "by_difficulty": by_difficulty(outcome.records),
            "failed_problems": len(outcome.failed),
        }
        if metrics is not None:
            metrics.eval_result(label, name, summary[name]["accuracy"], summary[name]["mean_length"])
    store.write_json(f"eval/{label}/summary.json", summary)
    return summary


def compare(base: dict[str, dict], model: dict[str, dict], weights: AESWeights | None = None) -> dict:
    """Per-dataset base-vs-model results with AES, and their average.

    AES needs a non-zero base accuracy (ΔAcc is relative); where the base model solved nothing
    the AES is ``None`` and the dataset is left out of the AES average.
    """
    w = weights or AESWeights()
    rows: dict[str, dict] = {}
    for name, b in base.items():
        m = model.get(name)
        if m is None:
            continue
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
