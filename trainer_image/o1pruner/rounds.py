"""Iterative pruning rounds: where each round lives, what it achieved, whether to go on.

Round 1 is the paper's pipeline on the base model, with today's storage keys. Round n ≥ 2 takes
round n−1's pruned model as its reference: it resamples K per problem from it, recomputes the
per-problem statistics and trains from it, under ``rounds/<n>/`` (same keys inside). Every round's
pruned model is evaluated against the ORIGINAL base (the accuracy guard never compares with a
previous round, so drops cannot accumulate unseen).

A round is **accepted** when the guard passes and (round ≥ 2) it is shorter than its reference.
The job stops after a rejected round, after a round whose length gain (relative mean eval length
reduction vs its reference) is below ``minLengthGain``, or after ``count`` rounds; its result is
the last accepted round. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

ROUNDS = "rounds"


def round_prefix(n: int) -> str:
    """The storage folder of round ``n`` (``""`` for round 1: today's keys, so existing runs
    and their resumes are untouched)."""
    if n < 1:
        raise ValueError(f"rounds count from 1, got {n}")
    return "" if n == 1 else f"{ROUNDS}/{n}"


def length_gain(reference_length: float, pruned_length: float) -> float:
    """Relative mean length reduction of a round's model vs its reference (0.2 = 20 % shorter;
    negative when it got longer)."""
    return (reference_length - pruned_length) / reference_length if reference_length > 0 else 0.0


def round_summary(n: int, report: dict, reference_length: float) -> dict:
    """One entry of the report's / status' ``rounds``: the round's reference and pruned mean
    eval lengths, its accuracy and paired Δ vs the original base (95 % CIs), the redundancy gap
    closed (where L_min is known), the guard's verdict and whether the round is accepted."""
    avg = report["results"]["average"]
    paired = report.get("paired", {})
    gain = length_gain(reference_length, avg["prunedLength"])
    guard = report.get("guard")
    passed = report.get("accepted", True)
    out = {
        "round": n,
        "referenceMeanLength": reference_length,
        "prunedMeanLength": avg["prunedLength"],
        "lengthGain": gain,
        "baseAccuracy": avg["baseAccuracy"],
        "accuracy": avg["prunedAccuracy"],
        "deltaAccuracy": paired.get("deltaAccuracy"),
        "lengthChange": paired.get("lengthChange"),
        "guardPassed": None if guard is None else guard["passed"],
        "accepted": bool(passed) and (n == 1 or gain > 0),
    }
    if "gapClosed" in paired:
        out["gapClosed"] = paired["gapClosed"]
    if guard is not None:
        out["guardMessage"] = guard["message"][:400]
    return out


def stop_reason(summary: dict, count: int, min_length_gain: float) -> str | None:
    """Why no round follows the one ``summary`` describes, or ``None`` to run the next."""
    n = summary["round"]
    if summary.get("guardPassed") is False:
        return f"round {n} failed the accuracy guard"
    if not summary["accepted"]:
        return f"round {n} is not shorter than its reference"
    if n >= count:
        return f"all {count} rounds ran"
    if summary["lengthGain"] < min_length_gain:
        return (f"round {n} shortened the mean length by {100 * summary['lengthGain']:.1f} %, "
                f"below minLengthGain {100 * min_length_gain:.1f} %")
    return None


def result_round(rounds: Sequence[dict]) -> int | None:
    """The round whose model is the job's result: the last accepted one (``None``: none was)."""
    accepted = [r["round"] for r in rounds if r["accepted"]]
    return accepted[-1] if accepted else None


def rounds_text(rounds: Sequence[dict], result: int | None) -> str:
    """One line per report/figure: each round's mean length and accuracy, which is the result."""
    parts = [f"round {r['round']}: length {r['referenceMeanLength']:.0f} → {r['prunedMeanLength']:.0f} "
             f"({-100 * r['lengthGain']:+.0f} %), accuracy {r['accuracy']:.2f}"
             f"{'' if r['accepted'] else ' (rejected)'}" for r in rounds]
    return "; ".join(parts) + (f" — result: round {result}" if result else " — no round accepted")
