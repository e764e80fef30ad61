"""Training backends behind one small interface.

The reconciler only asks a backend for a manifest, how to find it, what state it is in, and
how to (un)suspend it. ``PyTorchJobBackend`` drives Kubeflow training-operator v1; a Trainer v2
``TrainJob`` backend (trainer.kubeflow.org/v1alpha1) would implement the same four members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from o1pruner_operator.kube import PYTORCHJOBS, Resource
from o1pruner_operator.manifests.common import JobContext
from o1pruner_operator.manifests.pytorchjob import pytorch_job


@dataclass(frozen=True)
class TrainState:
    state: str  # Pending | Running | Succeeded | Failed | Suspended
    reason: str = ""
    message: str = ""


class TrainingBackend(Protocol):
    resource: Resource

    def manifest(self, ctx: JobContext, *, suspend: bool) -> dict[str, Any]: ...

    def state(self, obj: dict[str, Any]) -> TrainState: ...

    def suspend_patch(self, obj: dict[str, Any], suspend: bool) -> dict[str, Any] | None:
        """A merge patch that (un)suspends ``obj``, or None when it already is."""
        ...


class PyTorchJobBackend:
    resource = PYTORCHJOBS

    def manifest(self, ctx: JobContext, *, suspend: bool) -> dict[str, Any]:
        return pytorch_job(ctx, suspend=suspend)

    def state(self, obj: dict[str, Any]) -> TrainState:
        conds = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
        by_type = {c.get("type"): c for c in conds}
        for kind in ("Failed", "Succeeded"):
            if kind in by_type:
                c = by_type[kind]
                return TrainState(kind, str(c.get("reason", kind)), str(c.get("message", "")))
        if "Suspended" in by_type:
            return TrainState("Suspended", "Suspended", str(by_type["Suspended"].get("message", "")))
        if "Running" in by_type or "Restarting" in by_type:
            c = by_type.get("Restarting") or by_type["Running"]
            return TrainState("Running", str(c.get("reason", "")), str(c.get("message", "")))
        return TrainState("Pending")

    def suspend_patch(self, obj: dict[str, Any], suspend: bool) -> dict[str, Any] | None:
        current = bool(((obj.get("spec") or {}).get("runPolicy") or {}).get("suspend", False))
        if current == suspend:
            return None
        return {"spec": {"runPolicy": {"suspend": suspend}}}


def backend_for(name: str) -> TrainingBackend:
    if name in ("pytorchjob", "pytorch", "kubeflow-v1"):
        return PyTorchJobBackend()
    raise ValueError(f"unknown training backend {name!r} (known: pytorchjob)")
