"""Status helpers (pure): conditions, artifacts, results from the eval container's message."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from o1pruner.rounds import round_prefix, round_summary

TERMINAL = ("Succeeded", "Failed")
CONDITION_TYPES = ("SamplersReady", "ReferenceSampled", "ReferenceTruncated", "Trained", "Evaluated",
                   "AccuracyGuardFailed", "Ready", "Failed", "Suspended", "Blocked")
#: Conditions whose True status is a warning (their events are posted as Warning).
WARNING_CONDITIONS = ("Failed", "AccuracyGuardFailed", "ReferenceTruncated")
#: Share of truncated reference samples above which ReferenceTruncated is True (as
#: ``o1pruner.diagnostics.TRUNCATION_WARNING``; the operator image reads no trainer module).
TRUNCATION_WARNING = 0.01
SAVINGS_KEYS = ("baseTokensPerRequest", "prunedTokensPerRequest", "tokensSavedPerMillionRequests",
                "samplerTokensPerSecond", "samplerHoursSavedPerMillionRequests", "accelerators",
                "acceleratorHoursSavedPerMillionRequests")
DIAGNOSTIC_KEYS = ("samples", "problems", "truncatedSamples", "truncationRate", "zeroRewardVarianceShare",
                   "zeroAccuracyVarianceShare", "meanLengthCorrect", "meanLengthIncorrect")
RESULT_KEYS = ("baseAccuracy", "prunedAccuracy", "baseLength", "prunedLength", "lengthReduction",
               "accuracyChange", "aes")
_ALIASES = {
    "base_accuracy": "baseAccuracy", "pruned_accuracy": "prunedAccuracy", "base_length": "baseLength",
    "pruned_length": "prunedLength", "length_reduction": "lengthReduction", "AES": "aes",
    "accuracy_change": "accuracyChange",
}


def now_iso(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    return now.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def set_condition(conditions: list[dict[str, Any]], type_: str, status: bool | str, reason: str,
                  message: str, generation: int | None, now: str) -> list[dict[str, Any]]:
    """A new list with ``type_`` set; lastTransitionTime moves only when the status changes."""
    status_s = status if isinstance(status, str) else ("True" if status else "False")
    out = [dict(c) for c in conditions if c.get("type") != type_]
    old = next((c for c in conditions if c.get("type") == type_), None)
    cond = {
        "type": type_,
        "status": status_s,
        "reason": reason,
        "message": message,
        "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status_s
        and old.get("lastTransitionTime") else now,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    out.append(cond)
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    out.sort(key=lambda c: order.get(c["type"], len(order)))
    return out


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    return (get_condition(conditions, type_) or {}).get("status") == "True"


def artifacts(storage_uri: str, *, sampled: bool = False, trained: bool = False,
              evaluated: bool = False, round_: int = 1) -> dict[str, str]:
    """The URIs of what the phases of round ``round_`` produced (the base's evaluation is round 1's)."""
    root = storage_uri.rstrip("/")
    base = "/".join(p for p in (root, round_prefix(round_)) if p)
    out: dict[str, str] = {"storage": root}
    if sampled:
        out["referenceStats"] = f"{base}/reference/stats.jsonl"
        out["referenceSamples"] = f"{base}/reference/samples.jsonl"
        out["baseEval"] = f"{root}/eval/base/summary.json"
    if trained:
        out["checkpoints"] = f"{base}/train/checkpoints/"
        out["model"] = f"{base}/train/model/"
    if evaluated:
        out["prunedEval"] = f"{base}/eval/pruned/summary.json"
        out["report"] = f"{base}/report/report.json"
    return out


def round_entry(n: int, results: dict[str, Any] | None, reference_length: float | None) -> dict[str, Any]:
    """``status.rounds[]`` entry of round ``n`` from its evaluation's parsed results
    (:func:`o1pruner.rounds.round_summary`: lengths, accuracy, length gain, guard, accepted);
    ``results`` (the figures the job publishes if this round is its result) ride along."""
    results = results or {}
    avg = results.get("average") or {}
    if "prunedLength" not in avg or "prunedAccuracy" not in avg:
        return {"round": n, "accepted": False, "guardPassed": None, "lengthGain": 0.0,
                "message": "the evaluation reported no lengths or accuracy", "results": results}
    report = {"results": {"average": {"baseAccuracy": None, **avg}}, "accepted": results.get("accepted", True),
              "guard": results.get("guard")}
    ref = reference_length if reference_length is not None else avg.get("baseLength", 0.0)
    entry = {k: v for k, v in round_summary(n, report, ref).items() if v is not None}
    return {**entry, "results": results}


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _metrics(raw: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        key = _ALIASES.get(key, key)
        if key in RESULT_KEYS and (num := _number(value)) is not None:
            out[key] = round(num, 6)
    if "lengthReduction" not in out and out.get("baseLength") and "prunedLength" in out:
        out["lengthReduction"] = round(1.0 - out["prunedLength"] / out["baseLength"], 6)
    return out


def parse_results(message: str | None) -> dict[str, Any] | None:
    """Tolerant reading of the eval container's termination message.

    Accepts ``{"datasets": {name: {...}}, "average": {...}}``, a bare ``{name: {...}}`` map,
    snake_case keys, and text before the JSON (log fallback). Returns None when nothing usable.
    """
    if not message:
        return None
    text = message.strip()
    start = text.find("{")
    if start < 0:
        return None
    try:
        doc = json.loads(text[start:])
    except json.JSONDecodeError:
        try:  # log fallback: the last line may be the JSON
            doc = json.loads(text.splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return None
    if not isinstance(doc, dict):
        return None
    raw_sets = doc.get("datasets") if isinstance(doc.get("datasets"), dict) else {
        k: v for k, v in doc.items() if k not in ("average", "summary") and isinstance(v, dict)
    }
    datasets = {str(name): m for name, vals in raw_sets.items() if (m := _metrics(vals))}
    average = _metrics(doc.get("average") or doc.get("summary"))
    if not average and datasets:
        for key in RESULT_KEYS:
            vals = [m[key] for m in datasets.values() if key in m]
            if vals:
                average[key] = round(sum(vals) / len(vals), 6)
    if not datasets and not average:
        return None
    out: dict[str, Any] = {"datasets": datasets, "average": average}
    if isinstance(doc.get("accepted"), bool):
        out["accepted"] = doc["accepted"]
    if (guard := _guard(doc.get("guard"))) is not None:
        out["guard"] = guard
    if isinstance(doc.get("savings"), dict):
        savings = {k: n for k in SAVINGS_KEYS if (n := _number(doc["savings"].get(k))) is not None}
        if savings:
            out["savings"] = savings
    return out


def _guard(raw: Any) -> dict[str, Any] | None:
    """The accuracy guard's verdict from the termination message, or None when absent or unusable."""
    if not isinstance(raw, dict) or not isinstance(raw.get("passed"), bool):
        return None
    failed = raw.get("failed") if isinstance(raw.get("failed"), list) else []
    out: dict[str, Any] = {"passed": raw["passed"], "failed": [str(b) for b in failed][:16],
                           "message": str(raw.get("message") or "")[:1024]}
    if (drop := _number(raw.get("maxAccuracyDrop"))) is not None:
        out["maxAccuracyDrop"] = drop
    return out


def guard_condition(results: dict[str, Any] | None) -> tuple[bool, str, str] | None:
    """``(status, reason, message)`` of the ``AccuracyGuardFailed`` condition from the parsed
    results: True (reason ``AccuracyDropped``) with the message naming the failing difficulty
    buckets and their figures; False (``AccuracyKept``) when the guard passed; None when the
    evaluation reported no verdict (guard disabled, or an older trainer image)."""
    guard = (results or {}).get("guard")
    if not guard:
        return None
    message = guard.get("message") or ("accuracy guard failed in " + ", ".join(guard.get("failed") or ["?"]))
    if guard["passed"]:
        return False, "AccuracyKept", message
    return True, "AccuracyDropped", message + "; the pruned model is not accepted"


def parse_diagnostics(message: str | None) -> dict[str, float] | None:
    """The reference samples' diagnostics from the sample container's termination message
    (``{"diagnostics": {...}}``, see ``o1pruner.diagnostics``): known numeric keys only."""
    text = (message or "").strip()
    try:
        doc = json.loads(text[text.find("{"):]) if "{" in text else None
    except json.JSONDecodeError:
        return None
    raw = doc.get("diagnostics") if isinstance(doc, dict) else None
    if not isinstance(raw, dict):
        return None
    out = {k: round(v, 6) for k in DIAGNOSTIC_KEYS if (v := _number(raw.get(k))) is not None}
    return out if "truncationRate" in out else None


def truncation_condition(diag: dict[str, float]) -> tuple[bool, str, str]:
    """``(status, reason, message)`` of the ``ReferenceTruncated`` condition: True above 1 % of
    the reference samples stopped at maxTokens (their lengths are censored)."""
    rate = diag["truncationRate"]
    counts = (f" ({int(diag['truncatedSamples'])} of {int(diag['samples'])})"
              if "truncatedSamples" in diag and "samples" in diag else "")
    text = f"{100 * rate:.1f} % of the reference samples{counts} stopped at maxTokens"
    if rate > TRUNCATION_WARNING:
        return True, "TruncationAbove1Percent", (text + ": their lengths are censored and they are graded wrong; "
                                                 "raise spec.sampling.maxTokens")
    return False, "TruncationBelow1Percent", text
