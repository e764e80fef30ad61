"""The training controllers the emulator lacks, as status patches: what Kubeflow Trainer (TrainJob),
the training-operator (PyTorchJob) and the Job controller (the ``job`` backend's Indexed Job)
write while a training object runs, restarts a preempted node, succeeds or fails. Shared by the
operator tests (tests/operator/conftest.py) and the reliability harness (tests/reliability)."""

from __future__ import annotations

from typing import Any

BACKENDS = ("trainjob", "pytorchjob", "job")
#: The emulator kind (plural) each backend's main object ``<job>-train`` is stored under.
TRAINING_KINDS = {"pytorchjob": "pytorchjobs", "trainjob": "trainjobs", "job": "jobs"}
#: The Trained condition's reason while each backend's object runs.
RUNNING_REASON = {"pytorchjob": "PyTorchJobRunning", "trainjob": "TrainJobRunning", "job": "JobRunning"}
STATES = ("Running", "Restarting", "Succeeded", "Failed")


def status_patch(backend: str, state: str, *, nodes: int = 1, reason: str = "", message: str = "") -> dict[str, Any]:
    """The merge patch that puts ``state`` (Running, Restarting: a preempted node coming back,
    Succeeded, Failed) on the backend's training object."""
    assert state in STATES, state
    if backend == "pytorchjob":
        return {"status": {"conditions": [{"type": state, "status": "True",
                                           "reason": reason or f"PyTorchJob{state}", "message": message}]}}
    if backend == "trainjob":
        active, ready, failed = {"Running": (1, 1, 0), "Restarting": (1, 0, 1),
                                 "Succeeded": (0, 0, 0), "Failed": (0, 0, 1)}[state]
        status: dict[str, Any] = {"jobsStatus": [{"name": "node", "active": active, "ready": ready,
                                                  "succeeded": 1 if state == "Succeeded" else 0,
                                                  "failed": failed, "suspended": 0}]}
        cond = {"Succeeded": "Complete", "Failed": "Failed"}.get(state)
        if cond:
            status["conditions"] = [{"type": cond, "status": "True", "reason": reason or f"Jobs{cond}",
                                     "message": message}]
        if state == "Running":  # the Trainer's progress (alpha, feature gate TrainJobStatus)
            status["trainerStatus"] = {"progressPercentage": 40, "estimatedRemainingSeconds": 900,
                                       "lastUpdatedTime": "2026-11-30T10:00:00Z"}
        return {"status": status}
    if backend == "job":
        if state == "Succeeded":
            return {"status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": nodes,
                               "active": 0, "ready": 0}}
        if state == "Failed":
            return {"status": {"conditions": [{"type": "Failed", "status": "True",
                                               "reason": reason or "BackoffLimitExceeded",
                                               "message": message or "Job has reached the specified backoff limit"}],
                               "failed": 1, "active": 0}}
        active = nodes if state == "Running" else max(nodes - 1, 0)
        return {"status": {"active": active, "ready": active, "failed": 1 if state == "Restarting" else 0}}
    raise ValueError(f"unknown backend {backend!r}")


def suspended(backend: str, obj: dict[str, Any] | None) -> bool:
    spec = (obj or {}).get("spec") or {}
    return bool((spec.get("runPolicy") or {}).get("suspend") if backend == "pytorchjob" else spec.get("suspend"))
