"""Training backends behind one small interface.

The reconciler asks a backend for its manifests, how to find its main object, what state it is
in and how to (un)suspend it. Three implementations:

* ``trainjob`` -- Kubeflow Trainer v2 ``TrainJob`` (trainer.kubeflow.org/v1alpha1, v2.3);
* ``pytorchjob`` -- Kubeflow training-operator v1 ``PyTorchJob`` (kubeflow.org/v1, legacy);
* ``job`` -- an Indexed ``batch/v1`` Job + headless Service running ``torchrun`` (no Kubeflow).

A job picks one with ``spec.training.backend``; unset, the operator's default
(``O1PRUNER_TRAINING_BACKEND``) applies.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from o1pruner_operator.kube import JOBS, PYTORCHJOBS, SERVICES, TRAINJOBS, Resource
from o1pruner_operator.manifests.common import JobContext, Names
from o1pruner_operator.manifests.pytorchjob import pytorch_job
from o1pruner_operator.manifests.torchrun_job import torchrun_job, torchrun_service
from o1pruner_operator.manifests.trainjob import DEFAULT_RUNTIME, train_job

log = logging.getLogger("o1pruner_operator.backends")

BACKENDS = ("trainjob", "pytorchjob", "job")
DEFAULT_BACKEND = "trainjob"
#: The kinds the training backends create as their main object (watched by the operator).
TRAINING_RESOURCES = (TRAINJOBS, PYTORCHJOBS, JOBS)
ALIASES = {"pytorch": "pytorchjob", "kubeflow-v1": "pytorchjob", "trainer-v2": "trainjob", "indexed-job": "job"}


@dataclass(frozen=True)
class TrainState:
    state: str  # Pending | Running | Succeeded | Failed | Suspended
    reason: str = ""
    message: str = ""
    #: Progress the backend reports (TrainJob ``status.trainerStatus``), in PruningJob status form.
    progress: dict[str, Any] = field(default_factory=dict)


class TrainingBackend(Protocol):
    name: str
    #: The object whose status and suspend flag the reconciler follows (named ``<job>-train``).
    resource: Resource
    #: What a cluster must serve for this backend, and what to install when it does not.
    requires: str

    def manifest(self, ctx: JobContext, *, suspend: bool) -> dict[str, Any]: ...

    def extras(self, ctx: JobContext) -> list[tuple[Resource, dict[str, Any]]]:
        """Objects to create before the main one (e.g. the ``job`` backend's Service)."""
        ...

    def children(self, names: Names) -> list[tuple[Resource, str]]:
        """Every object this backend creates for a job (for deletion)."""
        ...

    def kinds(self) -> list[Resource]:
        """The kinds the cluster must serve for this backend (discovery)."""
        ...

    def state(self, obj: dict[str, Any]) -> TrainState: ...

    def suspend_patch(self, obj: dict[str, Any], suspend: bool) -> dict[str, Any] | None:
        """A merge patch that (un)suspends ``obj``, or None when it already is."""
        ...


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


class _Single:
    """Backends made of one object."""

    resource: Resource

    def extras(self, ctx: JobContext) -> list[tuple[Resource, dict[str, Any]]]:
        return []

    def children(self, names: Names) -> list[tuple[Resource, str]]:
        return [(self.resource, names.train)]

    def kinds(self) -> list[Resource]:
        return [self.resource]


class PyTorchJobBackend(_Single):
    name = "pytorchjob"
    resource = PYTORCHJOBS
    requires = "Kubeflow training-operator v1 (kubeflow.org/v1 PyTorchJob, tested against v1.9.4)"

    def manifest(self, ctx: JobContext, *, suspend: bool) -> dict[str, Any]:
        return pytorch_job(ctx, suspend=suspend)

    def state(self, obj: dict[str, Any]) -> TrainState:
        by_type = _true_conditions(obj)
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


def _spec_suspend_patch(obj: dict[str, Any], suspend: bool) -> dict[str, Any] | None:
    if bool((obj.get("spec") or {}).get("suspend", False)) == suspend:
        return None
    return {"spec": {"suspend": suspend}}


def trainer_progress(status: dict[str, Any]) -> dict[str, Any]:
    """``status.trainerStatus`` of a TrainJob (alpha, feature gate TrainJobStatus) as PruningJob
    ``status.training``: percent done, estimated seconds left, when observed, last metrics."""
    ts = status.get("trainerStatus") or {}
    out: dict[str, Any] = {}
    for src, dst in (("progressPercentage", "progressPercentage"),
                     ("estimatedRemainingSeconds", "estimatedRemainingSeconds"),
                     ("lastUpdatedTime", "lastUpdatedTime")):
        if ts.get(src) is not None:
            out[dst] = ts[src]
    metrics = {str(m.get("name")): str(m.get("value")) for m in ts.get("metrics") or [] if m.get("name")}
    if metrics:
        out["metrics"] = metrics
    return out


class TrainJobBackend(_Single):
    name = "trainjob"
    resource = TRAINJOBS
    requires = ("Kubeflow Trainer v2 (trainer.kubeflow.org/v1alpha1 TrainJob, tested against v2.3.0) "
                "and its ClusterTrainingRuntime")

    def __init__(self, runtime: str = DEFAULT_RUNTIME):
        self.runtime = runtime

    def manifest(self, ctx: JobContext, *, suspend: bool) -> dict[str, Any]:
        return train_job(ctx, runtime=self.runtime, suspend=suspend)

    def state(self, obj: dict[str, Any]) -> TrainState:
        status = obj.get("status") or {}
        progress = trainer_progress(status)
        by_type = _true_conditions(obj)
        if "Failed" in by_type:
            c = by_type["Failed"]
            return TrainState("Failed", str(c.get("reason") or "Failed"), str(c.get("message", "")), progress)
        if "Complete" in by_type:
            c = by_type["Complete"]
            return TrainState("Succeeded", str(c.get("reason") or "Complete"), str(c.get("message", "")), progress)
        if "Suspended" in by_type:
            c = by_type["Suspended"]
            return TrainState("Suspended", str(c.get("reason") or "Suspended"), str(c.get("message", "")), progress)
        jobs = status.get("jobsStatus") or []
        active = sum(int(j.get("active") or 0) for j in jobs)
        if active:
            ready = sum(int(j.get("ready") or 0) for j in jobs)
            msg = f"TrainJob {obj['metadata']['name']}: {active} child Job(s) active, {ready} ready"
            if "progressPercentage" in progress:
                msg += f", {progress['progressPercentage']}% done"
            return TrainState("Running", "TrainJobRunning", msg, progress)
        return TrainState("Pending", "TrainJobPending", "", progress)

    def suspend_patch(self, obj: dict[str, Any], suspend: bool) -> dict[str, Any] | None:
        return _spec_suspend_patch(obj, suspend)


class IndexedJobBackend:
    name = "job"
    resource = JOBS
    requires = "nothing beyond Kubernetes (batch/v1 Indexed Job, podFailurePolicy: Kubernetes >= 1.26)"

    def manifest(self, ctx: JobContext, *, suspend: bool) -> dict[str, Any]:
        return torchrun_job(ctx, suspend=suspend)

    def extras(self, ctx: JobContext) -> list[tuple[Resource, dict[str, Any]]]:
        return [(SERVICES, torchrun_service(ctx))]

    def children(self, names: Names) -> list[tuple[Resource, str]]:
        return [(JOBS, names.train), (SERVICES, names.train)]

    def kinds(self) -> list[Resource]:
        return [JOBS, SERVICES]

    def state(self, obj: dict[str, Any]) -> TrainState:
        by_type = _true_conditions(obj)
        status = obj.get("status") or {}
        if "Failed" in by_type:
            c = by_type["Failed"]
            return TrainState("Failed", str(c.get("reason") or "Failed"), str(c.get("message", "")))
        if "Complete" in by_type:
            return TrainState("Succeeded", "Complete", f"{status.get('succeeded', 0)} node(s) completed")
        if "Suspended" in by_type or (obj.get("spec") or {}).get("suspend"):
            c = by_type.get("Suspended") or {}
            return TrainState("Suspended", str(c.get("reason") or "Suspended"), str(c.get("message", "")))
        active, ready = int(status.get("active") or 0), int(status.get("ready") or 0)
        if active:
            nodes = (obj.get("spec") or {}).get("completions")
            return TrainState("Running", "JobRunning",
                              f"Job {obj['metadata']['name']}: {active} of {nodes} node pod(s) active, {ready} ready")
        return TrainState("Pending", "JobPending", "")

    def suspend_patch(self, obj: dict[str, Any], suspend: bool) -> dict[str, Any] | None:
        return _spec_suspend_patch(obj, suspend)


def normalise(name: str | None) -> str:
    name = (name or "").strip().lower()
    return ALIASES.get(name, name)


def chosen_backend(body: dict[str, Any]) -> str | None:
    """A PruningJob's backend: ``spec.training.backend``, else the one recorded in
    ``status.trainingBackend`` when it started (a changed operator default never switches a
    running job to another backend), else None (the operator's default)."""
    spec = ((body.get("spec") or {}).get("training") or {}).get("backend")
    return spec or (body.get("status") or {}).get("trainingBackend") or None


def backend_for(name: str | None, *, trainjob_runtime: str = DEFAULT_RUNTIME) -> TrainingBackend:
    key = normalise(name)
    if key == "trainjob":
        return TrainJobBackend(trainjob_runtime)
    if key == "pytorchjob":
        return PyTorchJobBackend()
    if key == "job":
        return IndexedJobBackend()
    raise ValueError(f"unknown training backend {name!r} (known: {', '.join(BACKENDS)})")


class BackendMissing(Exception):
    """The cluster does not serve the API a job's training backend needs."""

    reason = "TrainingBackendMissing"


class Backends:
    """Per-job backend choice (``spec.training.backend``, else the operator's default) and API
    discovery: which training APIs the cluster serves, asked once and cached. A miss is asked
    again after ``recheck_seconds`` (an operator started before Kubeflow was installed learns
    of it), never in a loop: the job that needs a missing API fails with
    ``TrainingBackendMissing``."""

    def __init__(self, client: Any, default: str = DEFAULT_BACKEND, *, trainjob_runtime: str = DEFAULT_RUNTIME,
                 recheck_seconds: float = 60.0):
        self.client = client
        self.default = normalise(default) or DEFAULT_BACKEND
        self.trainjob_runtime = trainjob_runtime
        self.recheck_seconds = recheck_seconds
        self._served: dict[str, tuple[float, set[str]]] = {}
        backend_for(self.default)  # an unknown default fails at start, not per job

    def get(self, requested: str | None) -> TrainingBackend:
        """The backend object for a job (no discovery); ``requested`` is spec.training.backend."""
        return backend_for(requested or self.default, trainjob_runtime=self.trainjob_runtime)

    async def served(self, res: Resource) -> bool:
        gv = res.api_version
        now = time.monotonic()
        cached = self._served.get(gv)
        if cached is None or (res.plural not in cached[1] and now - cached[0] >= self.recheck_seconds):
            plurals = await self.client.discover(gv)
            self._served[gv] = (now, plurals)
            log.info("discovery: %s serves %s", gv, sorted(plurals) or "nothing")
        return res.plural in self._served[gv][1]

    async def available(self) -> dict[str, bool]:
        """Backend name -> whether the cluster serves everything it creates."""
        out = {}
        for name in BACKENDS:
            backend = backend_for(name, trainjob_runtime=self.trainjob_runtime)
            out[name] = all([await self.served(res) for res in backend.kinds()])
        return out

    async def for_job(self, requested: str | None, origin: str = "spec.training.backend") -> TrainingBackend:
        """The backend for a job, after checking the cluster serves its API (BackendMissing)."""
        backend = self.get(requested)
        for res in backend.kinds():
            if not await self.served(res):
                origin = origin if requested else "the operator's default backend (O1PRUNER_TRAINING_BACKEND)"
                raise BackendMissing(
                    f"{origin} is {backend.name!r}, but the cluster does not serve {res.api_version} "
                    f"{res.plural}: install {backend.requires}, or choose another backend "
                    f"({', '.join(b for b in BACKENDS if b != backend.name)})")
        return backend
