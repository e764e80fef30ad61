"""The run's report: JSON (base vs pruned accuracy, length, AES, tokens saved) and a PNG
(length distribution base vs pruned; accuracy by difficulty)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from o1pruner.evaluation import IncomparableEvaluations, by_difficulty


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


def build_report(job: str, results: dict, base: Sequence[dict], pruned: Sequence[dict], extra: dict | None = None) -> dict:
    """Everything a person (or the operator's status) wants from a finished run; base and pruned
    must cover the same problems."""
    check_same_problems(base, pruned)
    base_tokens = sum(r["length"] for r in base)
    pruned_tokens = sum(r["length"] for r in pruned)
    return {
        "job": job,
        "results": results,
        "tokens": {
            "base": base_tokens,
            "pruned": pruned_tokens,
            "saved": base_tokens - pruned_tokens,
            "savedFraction": (base_tokens - pruned_tokens) / base_tokens if base_tokens else 0.0,
        },
        "byDifficulty": {"base": by_difficulty(base), "pruned": by_difficulty(pruned)},
        **(extra or {}),
    }


def termination_summary(report: dict) -> dict:
    """Compact results for the eval container's termination message (≤ 4 KiB, read by the operator)."""
    return {"datasets": report["results"]["datasets"], "average": report["results"]["average"], "tokens": report["tokens"]}


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
    ax1.set_xlabel("solution length (tokens)")
    ax1.set_ylabel("samples")
    ax1.set_title("Length distribution")
    ax1.legend()
    bd, pd = report["byDifficulty"]["base"], report["byDifficulty"]["pruned"]
    levels = sorted(set(bd) | set(pd))
    xs = range(len(levels))
    ax2.bar([x - 0.2 for x in xs], [bd.get(k, {}).get("accuracy", 0) for k in levels], 0.4, label="base")
    ax2.bar([x + 0.2 for x in xs], [pd.get(k, {}).get("accuracy", 0) for k in levels], 0.4, label="pruned")
    ax2.set_xticks(list(xs), [f"{k} step(s)" if k != "None" else "n/a" for k in levels])
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("accuracy")
    ax2.set_title("Accuracy by difficulty")
    ax2.legend()
    avg = report["results"].get("average", {})
    aes_v = avg.get("aes")
    fig.suptitle(
        f"{report['job']}: length {avg.get('baseLength', 0):.0f} → {avg.get('prunedLength', 0):.0f} tokens, "
        f"accuracy {avg.get('baseAccuracy', 0):.2f} → {avg.get('prunedAccuracy', 0):.2f}, "
        f"AES {aes_v:.3f}" if aes_v is not None else f"{report['job']}: AES n/a (base accuracy 0)"
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
