"""Prometheus metrics of the operator (names are a contract with the Grafana dashboard)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PHASES = ("Pending", "Sampling", "Training", "Evaluating", "Succeeded", "Failed")

REGISTRY = CollectorRegistry(auto_describe=True)
JOBS = Gauge("o1pruner_operator_jobs", "PruningJobs by phase.", ["phase"], registry=REGISTRY)
RECONCILE_ERRORS = Counter(
    "o1pruner_operator_reconcile_errors_total", "Unexpected errors in operator handlers.", ["handler"],
    registry=REGISTRY,
)
PHASE_DURATION = Histogram(
    "o1pruner_operator_phase_duration_seconds", "Time a PruningJob spent in a phase.", ["phase"],
    buckets=(10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800),
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "o1pruner_operator_transitions_total", "Phase transitions.", ["from_phase", "to_phase"], registry=REGISTRY,
)

for _phase in PHASES:
    JOBS.labels(phase=_phase).set(0)

_lock = threading.Lock()
_phase_of: dict[str, str] = {}


def _refresh() -> None:
    counts = {p: 0 for p in PHASES}
    for phase in _phase_of.values():
        counts[phase] = counts.get(phase, 0) + 1
    for phase, n in counts.items():
        JOBS.labels(phase=phase).set(n)


def observe_job(key: str, phase: str) -> None:
    with _lock:
        _phase_of[key] = phase
        _refresh()


def forget_job(key: str) -> None:
    with _lock:
        _phase_of.pop(key, None)
        _refresh()


def reset() -> None:
    """Tests: forget all jobs."""
    with _lock:
        _phase_of.clear()
        _refresh()


def serve(port: int) -> None:
    if port:
        start_http_server(port, registry=REGISTRY)
