"""The run's report: JSON (base vs pruned accuracy, length, AES, tokens saved, paired confidence
intervals, the redundancy gap closed where L_min is known) and a PNG (length distribution base
vs pruned with L_min marked; accuracy by difficulty with 95 % CIs)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from o1pruner.evaluation import IncomparableEvaluations, by_difficulty
from o1pruner.guard import guard_records
from o1pruner.rounds import rounds_text
from o1pruner.spec import GuardSpec


def check_same_problems(base: Sequence[dict], pruned: Sequence[dict]) -> None:
    """Raise :class:`IncomparableEvaluations` unless the base and pruned outputs answer the same
    problems of the same datasets (tokens saved are a difference of sums over them)."""
    b = {(r.get("dataset"), r["problem_id"]) for r in base}
    p = {(r.get("dataset"), r["problem_id"]) for r in pruned}
    if b == p:
        return
    parts = [f"{label} has no output for {len(ids)} problems ({', '.join(f'{d}/{i}' for d, i in sorted(ids)[:10])}"
             f"{', ...' if len(ids) > 10 else ''})" for label, ids in (("pruned", b - p), ("base", p - b)) if ids]
    raise IncomparableEvaluations(f"base and pruned outputs cover different problems: {'; '.join(parts)}; "
                                  "refusing to compare")


def paired_summary(base: Sequence[dict], pruned: Sequence[dict], l_min: Mapping[str, int] | None = None) -> dict:
    """Per-problem paired comparison of the first answer to each problem (base vs pruned):
    Δaccuracy and relative length change with 95 % paired-bootstrap CIs, McNemar's exact test,
    the same by difficulty, and the share of the redundancy gap closed when every problem's
    lower bound L_min is known (:mod:`o1pruner.paired`)."""
    import numpy as np

    from o1pruner.paired import (
        bootstrap_mean_ci, bootstrap_ratio_ci, first_answers_paired, gap_closed, mcnemar_exact,
    )

    pairs = first_answers_paired(base, pruned)
    if not pairs:
        return {"problems": 0}
    bc = np.array([float(bool(b["correct"])) for b, _ in pairs])
    pc = np.array([float(bool(p["correct"])) for _, p in pairs])
    bl = np.array([float(b["length"]) for b, _ in pairs])
    pl = np.array([float(p["length"]) for _, p in pairs])
    out: dict = {
        "problems": len(pairs),
        "deltaAccuracy": bootstrap_mean_ci(pc - bc).to_dict(),
        "lengthChange": bootstrap_ratio_ci(pl, bl).to_dict(),
        "mcnemar": mcnemar_exact(bc.astype(bool).tolist(), pc.astype(bool).tolist()),
        "byDifficulty": {},
    }
    difficulty = np.array([str(b.get("difficulty")) for b, _ in pairs])
    for d in sorted(set(difficulty.tolist())):
        m = difficulty == d
        out["byDifficulty"][d] = {"n": int(m.sum()), "baseAccuracy": float(bc[m].mean()),
                                  "prunedAccuracy": float(pc[m].mean()),
                                  "deltaAccuracy": bootstrap_mean_ci(pc[m] - bc[m]).to_dict(),
                                  "baseAccuracyCI": bootstrap_mean_ci(bc[m]).to_dict(),
                                  "prunedAccuracyCI": bootstrap_mean_ci(pc[m]).to_dict()}
    if l_min and all(b["problem_id"] in l_min for b, _ in pairs):
        lm = np.array([float(l_min[b["problem_id"]]) for b, _ in pairs])
        out["meanLMin"] = float(lm.mean())
        out["gapClosed"] = gap_closed(float(bl.mean()), float(pl.mean()), float(lm.mean()))
    return out


def build_report(job: str, results: dict, base: Sequence[dict], pruned: Sequence[dict], extra: dict | None = None,
                 l_min: Mapping[str, int] | None = None, guard: GuardSpec | None = None) -> dict:
    """Everything a person (or the operator's status) wants from a finished run.

    ``l_min`` maps problem ids to a known lower bound on a correct answer's length (the
    testbed's minimal traces); with it the report says how much of the redundancy gap closed.
    With an enabled ``guard`` the report carries the accuracy guard's verdict
    (:mod:`o1pruner.guard`) and ``accepted`` is false when it failed: the pruned model is then
    not published as accepted. Base and pruned must cover the same problems."""
    check_same_problems(base, pruned)
    base_tokens = sum(r["length"] for r in base)
    pruned_tokens = sum(r["length"] for r in pruned)
    verdict = (guard_records(base, pruned, max_drop=guard.max_accuracy_drop, min_problems=guard.min_bucket_problems)
               if guard is not None and guard.enabled else None)
    return {
        "accepted": verdict is None or verdict["passed"],
        **({"guard": verdict} if verdict is not None else {}),
        "job": job,
        "results": results,
        "tokens": {
            "base": base_tokens,
            "pruned": pruned_tokens,
            "saved": base_tokens - pruned_tokens,
            "savedFraction": (base_tokens - pruned_tokens) / base_tokens if base_tokens else 0.0,
        },
        "byDifficulty": {"base": by_difficulty(base), "pruned": by_difficulty(pruned)},
        "paired": paired_summary(base, pruned, l_min),
        **(extra or {}),
    }


def guard_summary(report: dict) -> dict | None:
    """The guard's verdict in a few fields (termination message, status): passed, the failing
    buckets and the one-line message naming them with their figures."""
    g = report.get("guard")
    if not g:
        return None
    return {"passed": g["passed"], "failed": g["failed"], "maxAccuracyDrop": g["maxAccuracyDrop"],
            "message": g["message"][:800]}


#: Kubernetes keeps at most this many bytes of a container's termination message.
TERMINATION_LIMIT = 4096
#: What :func:`fit_termination` drops, in this order, until the message fits.
_DROPPABLE = ("tokens", "savings", "datasets")


def fit_termination(doc: dict, limit: int = TERMINATION_LIMIT) -> str:
    """Compact JSON of ``doc`` in at most ``limit`` bytes, still valid JSON: the least needed
    fields go first (tokens, savings, the per-dataset rows; then the guard's message is
    shortened), so the verdict (``accepted``, ``guard.passed``) and the average always reach
    the operator; a cut in the middle of the JSON would lose all of it."""
    import json

    doc = dict(doc)

    def dumps() -> str:
        return json.dumps(doc, separators=(",", ":"))

    for key in _DROPPABLE:
        if len(dumps().encode()) <= limit:
            return dumps()
        doc.pop(key, None)
    if len(dumps().encode()) > limit and isinstance(doc.get("guard"), dict):
        doc["guard"] = {**doc["guard"], "message": str(doc["guard"].get("message", ""))[:200]}
    return dumps().encode()[:limit].decode(errors="ignore")


def termination_summary(report: dict) -> dict:
    """Compact results for the eval container's termination message (≤ 4 KiB, read by the operator)."""
    out = {"datasets": report["results"]["datasets"], "average": report["results"]["average"], "tokens": report["tokens"],
           "accepted": report.get("accepted", True)}
    guard = guard_summary(report)
    if guard is not None:
        out["guard"] = guard
    if report.get("savings"):
        out["savings"] = {k: round(v, 3) for k, v in report["savings"].items() if isinstance(v, (int, float))}
    return out


def render_png(report: dict, base: Sequence[dict], pruned: Sequence[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    bl = [r["length"] for r in base]
    pl = [r["length"] for r in pruned]
    top = max(bl + pl + [1])
    bins = list(range(0, top + top // 20 + 2, max(1, top // 20)))
    ax1.hist(bl, bins=bins, alpha=0.6, label=f"base (mean {sum(bl) / max(len(bl), 1):.0f})")
    ax1.hist(pl, bins=bins, alpha=0.6, label=f"pruned (mean {sum(pl) / max(len(pl), 1):.0f})")
    lmin = report.get("paired", {}).get("meanLMin")
    if lmin is not None:
        ax1.axvline(lmin, color="#c44e52", linestyle="--", label=f"mean L_min {lmin:.0f} (lower bound)")
    ax1.set_xlabel("solution length (tokens)")
    ax1.set_ylabel("samples")
    ax1.set_title("Length distribution")
    ax1.legend()
    bd, pd = report["byDifficulty"]["base"], report["byDifficulty"]["pruned"]
    levels = sorted(set(bd) | set(pd))
    xs = range(len(levels))
    cis = report.get("paired", {}).get("byDifficulty", {})

    def err(k: str, which: str) -> list[float]:
        ci = cis.get(k, {}).get(which)
        return [ci["mean"] - ci["low"], ci["high"] - ci["mean"]] if ci else [0.0, 0.0]

    ax2.bar([x - 0.2 for x in xs], [bd.get(k, {}).get("accuracy", 0) for k in levels], 0.4, label="base",
            yerr=list(zip(*[err(k, "baseAccuracyCI") for k in levels])), capsize=3)
    ax2.bar([x + 0.2 for x in xs], [pd.get(k, {}).get("accuracy", 0) for k in levels], 0.4, label="pruned",
            yerr=list(zip(*[err(k, "prunedAccuracyCI") for k in levels])), capsize=3)
    ax2.set_xticks(list(xs), [f"{k} step(s)" if k != "None" else "n/a" for k in levels])
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("accuracy")
    ax2.set_title("Accuracy by difficulty (95 % CI)")
    ax2.legend()
    avg = report["results"].get("average", {})
    aes_v = avg.get("aes")
    gap = report.get("paired", {}).get("gapClosed")
    job = report["job"] + (f" round {report['round']}" if report.get("round") else "")
    fig.suptitle(
        (f"{job}: length {avg.get('baseLength', 0):.0f} → {avg.get('prunedLength', 0):.0f} tokens, "
         f"accuracy {avg.get('baseAccuracy', 0):.2f} → {avg.get('prunedAccuracy', 0):.2f}, "
         f"AES {aes_v:.3f}" if aes_v is not None else f"{job}: AES n/a (base accuracy 0)")
        + (f", {100 * gap:.0f} % of the redundancy gap closed" if gap is not None else "")
        + f"; {report['tokens']['saved']} tokens saved"
        + (f"\n{report['guard']['message']}" + ("" if report["accepted"] else " — pruned model NOT accepted")
           if report.get("guard") else "")
        + (f"\n{rounds_text(report['rounds'], report.get('resultRound'))}" if report.get("rounds") else "")
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
