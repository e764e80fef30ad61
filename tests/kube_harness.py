"""The kmock test harness both operator suites build on (tests/operator's fixtures and the
reliability tier's ``rel_cluster``): the resources the emulator serves, ``generateName``, the
test-side API client that plays the controllers the emulator lacks, a poller and the real kopf
operator run in the test's event loop.

Built on the documented workarounds of /work/shared/notes/test-tooling.md: the emulator lists
CRDs, namespaces and events; kopf runs cluster-wide and standalone. What differs between the
suites stays in their own emulator subclass (the operator tests answer an unappliable JSON patch
with 422; the reliability tier logs every request and drops kmock's request history).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock
import kopf
import yaml

import training_fakes
from o1pruner_operator import metrics
from o1pruner_operator.handlers import build_registry
from o1pruner_operator.settings import OperatorConfig

ROOT = Path(__file__).resolve().parents[1]
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
#: plural -> the emulator's resource key
KEYS = {key.rsplit("/", 1)[-1]: key for key in RESOURCES}


def register_resources(emu: kmock.KubernetesEmulator) -> None:
    for key, info in RESOURCES.items():
        emu.resources[key] = kmock.ResourceInfo(verbs=VERBS, **info)


def api_path(kind: str, ns: str = NS) -> str:
    """The collection path of plural ``kind`` in namespace ``ns``."""
    group_version, plural = KEYS[kind].rsplit("/", 1)
    base = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    return f"{base}/namespaces/{ns}/{plural}"


def generate_name(request: Any) -> None:
    """Give a created object without a name one from ``metadata.generateName``, as the API server
    does (kmock does not; kopf names its events that way)."""
    if request.resource is not None and request.action == kmock.action.CREATE and isinstance(request.data, dict):
        meta = request.data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]


def example_job(name: str = "marco-o1-pruned", namespace: str = NS, *, storage_uri: str | None = None,
                **spec_overrides: Any) -> dict[str, Any]:
    """examples/pruningjob.yaml named ``name`` with server-side metadata (and its own storage URI
    when given); ``spec_overrides`` replace top-level spec fields."""
    job = yaml.safe_load((ROOT / "examples" / "pruningjob.yaml").read_text())
    job["metadata"] = {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()), "generation": 1,
                       "resourceVersion": "1", "creationTimestamp": "2026-11-28T12:00:00Z"}
    if storage_uri:
        job["spec"]["storage"]["uri"] = storage_uri
    job["spec"].update(spec_overrides)
    return job


async def wait_for(pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition", poll: float = 0.05) -> Any:
    """``pred()``'s first truthy value, polled every ``poll`` seconds for up to ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(poll)


class Cluster:
    """Test-side API of the emulator: read objects, apply them through its HTTP API (``client``:
    an aiohttp session bound to the emulator, default its bundled client) and play the
    controllers it lacks (Deployments, Jobs, pods, the training backends)."""

    def __init__(self, emu: kmock.KubernetesEmulator, client: Any = None):
        self.emu = emu
        self._own_client = client

    @property
    def client(self) -> Any:
        return self._own_client or self.emu.clients[0]

    @property
    def url(self) -> str:
        return str(self.emu.servers[0].url).rstrip("/")

    def _live(self, kind: str, ns: str | None):
        res = kmock.resource(KEYS[kind])
        return [(n, o) for (r, n_s, n), o in list(self.emu.objects.items())
                if r == res and (ns is None or n_s == ns) and not o.deleted]

    def obj(self, kind: str, name: str, ns: str = NS) -> dict[str, Any] | None:
        return next((copy.deepcopy(dict(o.raw)) for n, o in self._live(kind, ns) if n == name), None)

    def names(self, kind: str, ns: str = NS) -> list[str]:
        return sorted(n for n, _ in self._live(kind, ns))

    def all(self, kind: str, ns: str | None = NS) -> list[dict[str, Any]]:
        return [copy.deepcopy(dict(o.raw)) for _, o in self._live(kind, ns)]

    def index(self, kind: str, ns: str = NS) -> dict[str, Any]:
        """name -> raw object of one kind, without copies (cheap enough to poll many jobs)."""
        return {n: o.raw for n, o in self._live(kind, ns)}

    async def _check(self, resp: Any) -> Any:
        async with resp as r:
            body = await r.json(content_type=None)
            assert r.status < 400, body
            return body

    async def create(self, kind: str, body: dict[str, Any], ns: str = NS) -> Any:
        return await self._check(self.client.post(api_path(kind, ns), json=body))

    async def patch(self, kind: str, name: str, patch: dict[str, Any], ns: str = NS, sub: str = "") -> Any:
        path = api_path(kind, ns) + f"/{name}" + (f"/{sub}" if sub else "")
        return await self._check(self.client.patch(
            path, json=patch, headers={"Content-Type": "application/merge-patch+json"}))

    async def delete(self, kind: str, name: str, ns: str = NS) -> Any:
        return await self._check(self.client.delete(api_path(kind, ns) + f"/{name}"))

    # -- controllers the emulator lacks --------------------------------------------------
    async def deployment_ready(self, name: str, ns: str = NS) -> None:
        await self.patch("deployments", name, {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}, ns)

    async def job_done(self, name: str, ns: str = NS, *, failed: bool = False, reason: str = "BackoffLimitExceeded",
                       message: str = "Job has reached the specified backoff limit") -> None:
        cond = ({"type": "Failed", "status": "True", "reason": reason, "message": message} if failed
                else {"type": "Complete", "status": "True"})
        await self.patch("jobs", name, {"status": {"conditions": [cond], ("failed" if failed else "succeeded"): 1}}, ns)

    async def pytorchjob(self, name: str, state: str, *, reason: str = "", message: str = "", ns: str = NS) -> None:
        cond = {"type": state, "status": "True", "reason": reason or f"PyTorchJob{state}", "message": message}
        await self.patch("pytorchjobs", name, {"status": {"conditions": [cond]}}, ns)

    async def training(self, job: str, state: str, backend: str = "pytorchjob", *, reason: str = "",
                       message: str = "", ns: str = NS) -> None:
        """Play ``backend``'s training controller on ``<job>-train``: ``state`` is Running,
        Restarting (a preempted node coming back), Succeeded or Failed (tests/training_fakes.py)."""
        kind = training_fakes.TRAINING_KINDS[backend]
        nodes = int(((self.obj(kind, f"{job}-train", ns) or {}).get("spec") or {}).get("completions") or 1)
        patch = training_fakes.status_patch(backend, state, nodes=nodes, reason=reason, message=message)
        await self.patch(kind, f"{job}-train", patch, ns)

    async def evaluation_done(self, stem: str, results: dict[str, Any], ns: str = NS) -> None:
        """The eval Job ``<stem>-evaluate`` succeeds, its pod's termination message ``results``."""
        labels = self.obj("jobs", f"{stem}-evaluate", ns)["spec"]["template"]["metadata"]["labels"]
        await self.pod(f"{stem}-evaluate-abcde", labels, {"phase": "Succeeded", "containerStatuses": [
            {"name": "evaluate", "restartCount": 0, "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "message": json.dumps(results),
                "finishedAt": "2026-11-28T13:00:00Z"}}}]}, ns)
        await self.job_done(f"{stem}-evaluate", ns)

    async def pod(self, name: str, labels: dict[str, str], status: dict[str, Any], ns: str = NS) -> None:
        await self.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "namespace": ns, "labels": labels},
                                   "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": status}, ns)


def operator_config(kube_server: str, **overrides: Any) -> OperatorConfig:
    """The operator's settings for these tests: this emulator, fast resyncs, no metrics port or
    liveness endpoint, plain logs; ``overrides`` replace any of them."""
    base = dict(kube_server=kube_server, resync_seconds=0.1, metrics_port=0, liveness_endpoint="",
                log_format="plain", crashloop_restarts=3, training_backend="pytorchjob")
    return OperatorConfig(**(base | overrides))


@contextlib.asynccontextmanager
async def running_operator(config: OperatorConfig, *, kill: bool = False,
                           liveness_endpoint: str | None = None) -> AsyncIterator[kopf.OperatorRegistry]:
    """``async with running_operator(cfg):`` a fresh kopf operator (new registry, no memory) in
    this event loop. On exit it is stopped gracefully (stop flag), or with ``kill=True``
    cancelled at once, as a SIGKILL would."""
    metrics.reset()
    registry = build_registry(config)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(
        registry=registry, clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready,
        liveness_endpoint=liveness_endpoint,
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
