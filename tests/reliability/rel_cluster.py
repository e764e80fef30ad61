"""The real kopf operator against kmock's Kubernetes emulator, for the reliability tests.

Own harness (``tests/operator``'s fixtures live in a conftest, not an importable module), built
on the same documented workarounds (see /work/shared/notes/test-tooling.md): the emulator lists
CRDs, namespaces and events; kopf runs cluster-wide and standalone. Additions here:

* every API request is recorded (verb, group, resource, namespace, name, outcome), for the
  duplicate-children, RBAC and secret-access checks;
* the operator can be stopped gracefully (stop flag) or killed (task cancelled mid-reconcile)
  and started again as a fresh instance (new registry, no memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import kopf
import yaml

from o1pruner_operator import metrics
from o1pruner_operator.handlers import build_registry
from o1pruner_operator.settings import OperatorConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "tests"))  # appended: this folder's conftest must stay the first found
import training_fakes  # noqa: E402  (tests/training_fakes.py)
NS = "research"

RESOURCES: dict[str, dict[str, Any]] = {
    "apiextensions.k8s.io/v1/customresourcedefinitions": dict(kind="CustomResourceDefinition", namespaced=False),
    "v1/namespaces": dict(kind="Namespace", namespaced=False),
    "v1/events": dict(kind="Event", namespaced=True),
    "v1/configmaps": dict(kind="ConfigMap", namespaced=True),
    "v1/services": dict(kind="Service", namespaced=True),
    "v1/pods": dict(kind="Pod", namespaced=True),
    "v1/secrets": dict(kind="Secret", namespaced=True),
    "apps/v1/deployments": dict(kind="Deployment", namespaced=True),
    "batch/v1/jobs": dict(kind="Job", namespaced=True),
    "kubeflow.org/v1/pytorchjobs": dict(kind="PyTorchJob", namespaced=True),
    "trainer.kubeflow.org/v1alpha1/trainjobs": dict(kind="TrainJob", namespaced=True),
    "networking.k8s.io/v1/networkpolicies": dict(kind="NetworkPolicy", namespaced=True),
    "o1pruner.dev/v1alpha1/pruningjobs": dict(kind="PruningJob", namespaced=True, subresources={"status"}),
}
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}
KEYS = {key.rsplit("/", 1)[-1]: key for key in RESOURCES}
#: the operator's children of one job, by kind
CHILD_KINDS = ("configmaps", "deployments", "services", "jobs", "pytorchjobs", "trainjobs", "networkpolicies")

_VERB = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create", "UPDATE": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Call:
    verb: str
    group: str
    resource: str  # plural, with "/status" for the subresource
    namespace: str | None
    name: str | None
    outcome: str  # "ok" or the exception class name
    agent: str = ""  # User-Agent: kopf, the operator's client, or kmock (the test itself)


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus ``metadata.generateName``, a log of every request, and no
    request history.

    kmock 0.8 matches every request against its reactions by scanning the whole history of
    requests served so far (``request in payload._source``), so each request costs O(requests
    so far): with 50 jobs the emulator itself slows to ~10 requests/s within a minute. A served
    request is therefore dropped from kmock's history (only in-flight ones stay); our own
    ``calls`` log keeps what the tests assert on.
    """

    calls: list[Call]

    async def _handle(self, request):  # type: ignore[override]
        if not hasattr(self, "calls"):
            self.calls = []
        if (request.resource is not None and request.action == kmock.action.CREATE
                and isinstance(request.data, dict)):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        outcome = "ok"
        try:
            return await super()._handle(request)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._requests.remove(request)
            if request.resource is not None and request.action is not None and request.resource.plural:
                res = request.resource
                name = request.name
                if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                    name = name or (request.data.get("metadata") or {}).get("name")
                plural = res.plural + (f"/{request.subresource}" if request.subresource else "")
                self.calls.append(Call(_VERB.get(request.action.name, request.action.name.lower()),
                                       res.group or "", plural, request.namespace, name, outcome,
                                       str((request.headers or {}).get("User-Agent", ""))))


def example_job(name: str, namespace: str = NS, **spec_overrides: Any) -> dict[str, Any]:
    """examples/pruningjob.yaml under another name, with server-side metadata."""
    job = yaml.safe_load((ROOT / "examples" / "pruningjob.yaml").read_text())
    job["metadata"] = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "generation": 1,
                       "resourceVersion": "1", "creationTimestamp": "2026-11-28T12:00:00Z"}
    job["spec"]["storage"]["uri"] = f"s3://o1pruner-runs/{name}"
    job["spec"].update(spec_overrides)
    return job


class Cluster:
    """Test-side API client of the emulator, playing the controllers it lacks."""

    def __init__(self, emu: Emulator):
        self.emu = emu
        emu.calls = []

    @property
    def url(self) -> str:
        return str(self.emu.servers[0].url).rstrip("/")

    @property
    def calls(self) -> list[Call]:
        return self.emu.calls

    def obj(self, kind: str, name: str, ns: str = NS) -> dict[str, Any] | None:
        res = kmock.resource(KEYS[kind])
        for (r, n_s, n), o in list(self.emu.objects.items()):
            if r == res and n_s == ns and n == name and not o.deleted:
                return copy.deepcopy(dict(o.raw))
        return None

    def all(self, kind: str, ns: str | None = NS) -> list[dict[str, Any]]:
        res = kmock.resource(KEYS[kind])
        return [copy.deepcopy(dict(o.raw)) for (r, n_s, _), o in list(self.emu.objects.items())
                if r == res and (ns is None or n_s == ns) and not o.deleted]

    def index(self, kind: str, ns: str = NS) -> dict[str, Any]:
        """name -> raw object of one kind, without copies (cheap enough to poll many jobs)."""
        res = kmock.resource(KEYS[kind])
        return {n: o.raw for (r, n_s, n), o in list(self.emu.objects.items())
                if r == res and n_s == ns and not o.deleted}

    def status(self, name: str, ns: str = NS) -> dict[str, Any]:
        return dict((self.obj("pruningjobs", name, ns) or {}).get("status") or {})

    def phase(self, name: str, ns: str = NS) -> str | None:
        return self.status(name, ns).get("phase")

    def children(self, name: str, ns: str = NS) -> dict[str, list[str]]:
        """Children of job ``name`` by kind (objects labelled with its instance)."""
        out = {}
        for kind in CHILD_KINDS:
            out[kind] = sorted(o["metadata"]["name"] for o in self.all(kind, ns)
                               if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == name)
        return out

    def creates(self, ns: str = NS) -> dict[tuple[str, str], int]:
        """Successful creates per (resource, name): more than 1 would be a duplicate child."""
        out: dict[tuple[str, str], int] = {}
        for c in self.calls:
            if c.verb == "create" and c.outcome == "ok" and c.namespace in (ns, None) and c.resource != "events":
                out[(c.resource, c.name)] = out.get((c.resource, c.name), 0) + 1
        return out

    async def _check(self, resp: Any) -> Any:
        async with resp as r:
            body = await r.json(content_type=None)
            assert r.status < 400, body
            return body

    def _path(self, kind: str, ns: str) -> str:
        key = KEYS[kind]
        group_version, plural = key.rsplit("/", 1)
        base = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        return f"{base}/namespaces/{ns}/{plural}"

    async def create(self, kind: str, body: dict[str, Any], ns: str = NS) -> Any:
        return await self._check(self.emu.clients[0].post(self._path(kind, ns), json=body))

    async def patch(self, kind: str, name: str, patch: dict[str, Any], ns: str = NS, sub: str = "") -> Any:
        path = self._path(kind, ns) + f"/{name}" + (f"/{sub}" if sub else "")
        return await self._check(self.emu.clients[0].patch(
            path, json=patch, headers={"Content-Type": "application/merge-patch+json"}))

    async def delete(self, kind: str, name: str, ns: str = NS) -> Any:
        return await self._check(self.emu.clients[0].delete(self._path(kind, ns) + f"/{name}"))

    # -- controllers the emulator lacks
    async def deployment_ready(self, name: str, ns: str = NS) -> None:
        await self.patch("deployments", name, {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}, ns)

    async def job_done(self, name: str, ns: str = NS, *, failed: bool = False, reason: str = "BackoffLimitExceeded",
                       message: str = "Job has reached the specified backoff limit") -> None:
        cond = ({"type": "Failed", "status": "True", "reason": reason, "message": message} if failed
                else {"type": "Complete", "status": "True"})
        await self.patch("jobs", name, {"status": {"conditions": [cond], ("failed" if failed else "succeeded"): 1}}, ns)

    async def pytorchjob(self, name: str, state: str, ns: str = NS) -> None:
        cond = {"type": state, "status": "True", "reason": f"PyTorchJob{state}", "message": ""}
        await self.patch("pytorchjobs", name, {"status": {"conditions": [cond]}}, ns)

    async def training(self, job: str, state: str, backend: str, ns: str = NS) -> None:
        """Play ``backend``'s training controller on ``<job>-train`` (see tests/training_fakes.py)."""
        kind = training_fakes.TRAINING_KINDS[backend]
        nodes = int(((self.obj(kind, f"{job}-train", ns) or {}).get("spec") or {}).get("completions") or 1)
        await self.patch(kind, f"{job}-train", training_fakes.status_patch(backend, state, nodes=nodes), ns)

    async def pod(self, name: str, labels: dict[str, str], status: dict[str, Any], ns: str = NS) -> None:
        await self.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "namespace": ns, "labels": labels},
                                   "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": status}, ns)


async def wait_for(pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition", poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(poll)


def install(emu: Emulator) -> Cluster:
    for key, info in RESOURCES.items():
        emu.resources[key] = kmock.ResourceInfo(verbs=VERBS, **info)
    return Cluster(emu)


def operator_config(cluster: Cluster, **kw: Any) -> OperatorConfig:
    base = dict(kube_server=cluster.url, resync_seconds=0.1, metrics_port=0, liveness_endpoint="",
                log_format="plain", crashloop_restarts=3, training_backend="pytorchjob")
    return OperatorConfig(**(base | kw))


@contextlib.asynccontextmanager
async def operator(config: OperatorConfig, *, kill: bool = False) -> AsyncIterator[kopf.OperatorRegistry]:
    """``async with operator(cfg):`` a fresh kopf operator in this loop. On exit it is stopped
    gracefully (stop flag), or with ``kill=True`` cancelled at once, as a SIGKILL would."""
    metrics.reset()
    registry = build_registry(config)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(
        registry=registry, clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready,
    ))
    await asyncio.wait_for(ready.wait(), 15)
    try:
        yield registry
    finally:
        if kill:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        else:
            stop.set()
            try:
                await asyncio.wait_for(task, 20)
            except asyncio.TimeoutError:
                task.cancel()


class ErrorLogs(logging.Handler):
    """Collects ERROR records of the operator and kopf (reconcile errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def drive_lifecycle(cluster: Cluster, name: str, results: dict[str, Any] | None = None) -> None:
    """With an operator running: play the controllers until job ``name`` has Succeeded."""
    import json

    await wait_for(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), what="reference sampler")
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait_for(lambda: cluster.obj("jobs", f"{name}-sample"), what="sample Job")
    await cluster.job_done(f"{name}-sample")
    await wait_for(lambda: cluster.obj("pytorchjobs", f"{name}-train"), what="PyTorchJob")
    await cluster.pytorchjob(f"{name}-train", "Succeeded")
    await wait_for(lambda: cluster.obj("deployments", f"{name}-sampler-pruned"), what="pruned sampler")
    await cluster.deployment_ready(f"{name}-sampler-pruned")
    await wait_for(lambda: cluster.obj("jobs", f"{name}-evaluate"), what="eval Job")
    labels = cluster.obj("jobs", f"{name}-evaluate")["spec"]["template"]["metadata"]["labels"]
    message = json.dumps(results or {"datasets": {"d": {"baseAccuracy": 0.5, "prunedAccuracy": 0.5,
                                                        "baseLength": 10.0, "prunedLength": 8.0}}})
    await cluster.pod(f"{name}-evaluate-p1", labels, {"phase": "Succeeded", "containerStatuses": [
        {"name": "evaluate", "restartCount": 0, "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "message": message, "finishedAt": "2026-11-28T13:00:00Z"}}}]})
    await cluster.job_done(f"{name}-evaluate")
    await wait_for(lambda: cluster.phase(name) == "Succeeded", what="Succeeded")


def pod_specs(obj: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every pod spec (a mapping with ``containers``) inside an object, with where it is."""
    found = []
    if isinstance(obj, dict):
        if isinstance(obj.get("containers"), list):
            found.append((where, obj))
        for key, val in obj.items():
            found += pod_specs(val, f"{where}.{key}" if where else key)
    elif isinstance(obj, list):
        for i, val in enumerate(obj):
            found += pod_specs(val, f"{where}[{i}]")
    return found
