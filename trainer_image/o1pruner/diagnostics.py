"""Diagnostics of the reference samples, before any training (pure Python).

What makes a length reward meaningless, measured on the K reference samples of each problem:

- **truncation**: a sample that stopped at ``maxTokens`` has a censored length (its true length
  is unknown) and is graded wrong; above :data:`TRUNCATION_WARNING` (1 %) the job warns, above
  ``spec.sampling.maxTruncationRate`` (off by default) the sample phase fails;
- **zero reward variance**: a problem whose K samples all get the same reward gives the
  surrogate nothing to prefer (its advantages carry no signal within the problem);
- **zero accuracy variance**: all K correct or all K wrong (the accuracy term of Eq. 4 is then
  0 for every sample);
- **mean length of correct vs incorrect samples**: if wrong samples are the long ones, a length
  reward alone already rewards correctness (and vice versa).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

#: Share of truncated reference samples above which the job warns (condition ReferenceTruncated).
TRUNCATION_WARNING = 0.01


def truncation_rate(records: Sequence[dict]) -> float:
    """Share of samples that stopped at the token cap (their ``truncated`` flag)."""
    return sum(bool(r.get("truncated")) for r in records) / len(records) if records else 0.0


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def reference_diagnostics(records: Iterable[dict], rewards_by_problem: Mapping[str, Sequence[float]]) -> dict:
    """The diagnostics above over reference ``records`` (``problem_id``, ``length``, ``correct``,
    ``truncated``), with ``rewards_by_problem`` the reward of each problem's K samples."""
    rs = list(records)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rs:
        groups[r["problem_id"]].append(r)
    problems = len(groups)
    same_correctness = sum(1 for g in groups.values() if len({bool(r["correct"]) for r in g}) == 1)
    flat = sum(1 for pid in groups if len(set(rewards_by_problem.get(pid, ()))) <= 1)
    rate = truncation_rate(rs)
    return {
        "samples": len(rs),
        "problems": problems,
        "truncatedSamples": sum(bool(r.get("truncated")) for r in rs),
        "truncationRate": rate,
        "truncationWarning": rate > TRUNCATION_WARNING,
        "zeroRewardVarianceShare": flat / problems if problems else 0.0,
        "zeroAccuracyVarianceShare": same_correctness / problems if problems else 0.0,
        "meanLengthCorrect": _mean([r["length"] for r in rs if r["correct"]]),
        "meanLengthIncorrect": _mean([r["length"] for r in rs if not r["correct"]]),
    }


def truncation_message(diag: Mapping) -> str:
    """One line on the reference samples' truncation (condition message, log, report)."""
    return (f"{100 * diag['truncationRate']:.1f} % of the reference samples ({diag['truncatedSamples']} of "
            f"{diag['samples']}) stopped at maxTokens: their lengths are censored and they are graded wrong"
            + ("; raise sampling.maxTokens" if diag["truncationRate"] > TRUNCATION_WARNING else ""))
