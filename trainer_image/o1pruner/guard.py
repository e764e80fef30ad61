"""The accuracy guard: refuse a pruned model that answers worse than its base.

Pruning must not buy length with accuracy, and a drop often hides in the hardest problems while
the overall figure looks flat (a later paper reports O1-Pruner losing 10 points on AIME24 at a
3.6-point loss on MATH-500). The guard compares pruned vs base on the same problems, overall and
per difficulty bucket, with the paired bootstrap of :mod:`o1pruner.paired`: per problem,
Δ = correct_pruned − correct_base (first answer of each problem); a bucket **fails** when the
lower bound of the 95 % interval of mean Δ lies below ``−max_drop``.

Rule for a small bucket: a bucket with fewer than ``min_problems`` paired problems is
**inconclusive**: its figures are reported but it cannot fail the guard by itself (its interval
is too wide to say anything); its problems still count in the overall bucket, which is always
judged. Pure function (numpy via :mod:`o1pruner.paired`), no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from o1pruner.paired import bootstrap_mean_ci, first_answers_paired

OVERALL = "all"


def _verdict(n: int, low: float, max_drop: float, min_problems: int, overall: bool) -> str:
    if n < min_problems and not overall:
        return "inconclusive"
    return "fail" if low < -max_drop else "pass"


def accuracy_guard(
    base_correct: Sequence[bool],
    pruned_correct: Sequence[bool],
    buckets: Sequence[object],
    *,
    max_drop: float = 0.01,
    min_problems: int = 20,
    seed: int = 0,
) -> dict:
    """Pass/fail of a pruned model against its base, overall and per bucket.

    ``base_correct[i]``, ``pruned_correct[i]`` and ``buckets[i]`` (e.g. the difficulty) describe
    paired problem ``i``. Returns ``{"passed", "maxAccuracyDrop", "minBucketProblems", "buckets":
    {name: {"n", "baseAccuracy", "prunedAccuracy", "deltaAccuracy": {mean, low, high, n},
    "verdict"}}, "failed": [names], "inconclusive": [names], "message"}``; the overall bucket is
    named ``"all"``. No paired problem at all fails (nothing shows the model is not worse)."""
    if not (len(base_correct) == len(pruned_correct) == len(buckets)):
        raise ValueError("base_correct, pruned_correct and buckets must be paired (same length)")
    if max_drop < 0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop}")
    out: dict = {"maxAccuracyDrop": max_drop, "minBucketProblems": min_problems, "buckets": {}}
    if not base_correct:
        return {**out, "passed": False, "failed": [OVERALL], "inconclusive": [],
                "message": "no problem was scored by both models; nothing shows the pruned model is not worse"}
    bc = np.asarray(base_correct, dtype=float)
    pc = np.asarray(pruned_correct, dtype=float)
    names = np.asarray([str(b) for b in buckets])
    groups = [(OVERALL, np.ones(bc.size, dtype=bool))] + [(d, names == d) for d in sorted(set(names.tolist()))]
    for name, mask in groups:
        ci = bootstrap_mean_ci(pc[mask] - bc[mask], seed=seed)
        out["buckets"][name] = {
            "n": ci.n,
            "baseAccuracy": round(float(bc[mask].mean()), 6),
            "prunedAccuracy": round(float(pc[mask].mean()), 6),
            "deltaAccuracy": ci.to_dict(),
            "verdict": _verdict(ci.n, ci.low, max_drop, min_problems, name == OVERALL),
        }
    failed = [n for n, b in out["buckets"].items() if b["verdict"] == "fail"]
    out["passed"] = not failed
    out["failed"] = failed
    out["inconclusive"] = [n for n, b in out["buckets"].items() if b["verdict"] == "inconclusive"]
    out["message"] = guard_message(out)
    return out


def _bucket_text(name: str, b: dict) -> str:
    d = b["deltaAccuracy"]
    label = "overall" if name == OVERALL else f"difficulty {name}"
    return (f"{label}: accuracy {b['baseAccuracy']:.3f} → {b['prunedAccuracy']:.3f}, Δ {100 * d['mean']:+.1f} points "
            f"(95 % CI {100 * d['low']:+.1f} to {100 * d['high']:+.1f}, n={b['n']})")


def guard_message(result: dict) -> str:
    """One line for a condition message or the report: the failing buckets and their figures,
    or the overall figures when the guard passes."""
    limit = f"−{100 * result['maxAccuracyDrop']:.1f} points"
    if result.get("passed"):
        text = f"accuracy guard passed (no CI lower bound below {limit}); " + _bucket_text(
            OVERALL, result["buckets"][OVERALL])
        if result.get("inconclusive"):
            text += (f"; too few problems to judge (< {result['minBucketProblems']}): difficulty "
                     + ", ".join(result["inconclusive"]))
        return text
    if not result["buckets"]:
        return "accuracy guard failed: no problem was scored by both models"
    parts = [_bucket_text(n, result["buckets"][n]) for n in result["failed"]]
    return f"accuracy guard failed (CI lower bound below {limit}): " + "; ".join(parts)


def guard_records(base: Sequence[dict], pruned: Sequence[dict], *, max_drop: float = 0.01,
                  min_problems: int = 20, seed: int = 0) -> dict:
    """:func:`accuracy_guard` over evaluation records (first answer per problem, buckets by the
    records' ``difficulty``)."""
    pairs = first_answers_paired(base, pruned)
    return accuracy_guard([bool(b["correct"]) for b, _ in pairs], [bool(p["correct"]) for _, p in pairs],
                          [b.get("difficulty") for b, _ in pairs], max_drop=max_drop,
                          min_problems=min_problems, seed=seed)
