"""Per-problem reference statistics (paper Sec. 3.1): over the K samples of the reference
model for problem x, the mean token length L̄_ref(x) and the mean accuracy Ā_ref(x)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def reference_stats(records: Iterable[dict]) -> dict[str, dict]:
    """``{problem_id: {"mean_length", "mean_accuracy", "k", "min_length", "max_length"}}``."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["problem_id"]].append(r)
    out = {}
    for pid, rs in groups.items():
        lengths = [r["length"] for r in rs]
        out[pid] = {
            "problem_id": pid,
            "k": len(rs),
            "mean_length": sum(lengths) / len(lengths),
            "mean_accuracy": sum(bool(r["correct"]) for r in rs) / len(rs),
            "min_length": min(lengths),
            "max_length": max(lengths),
        }
    return out


def summarize(records: Iterable[dict]) -> dict[str, float]:
    """Accuracy and mean length over all samples (an eval set's headline numbers)."""
    rs = list(records)
    if not rs:
        return {"accuracy": 0.0, "mean_length": 0.0, "n": 0}
    return {
        "accuracy": sum(bool(r["correct"]) for r in rs) / len(rs),
        "mean_length": sum(r["length"] for r in rs) / len(rs),
        "n": len(rs),
    }
