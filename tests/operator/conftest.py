"""Fixtures: the kmock Kubernetes emulator, the real kopf operator in process, helpers that
play the part of the kubelet, the Deployment controller, the Job controller and the Kubeflow
training-operator (they mark children ready/complete/failed)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import jsonpointer
import kmock
import kopf
import pytest
import yaml

from o1pruner_operator import metrics
from o1pruner_operator.handlers import build_registry
from o1pruner_operator.settings import OperatorConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "tests"))  # appended: tests/reliability imports its own conftest first
import training_fakes  # noqa: E402  (tests/training_fakes.py)
NS = "research"

RESOURCES: dict[str, dict[str, Any]] = {
    "apiextensions.k8s.io/v1/customresourcedefinitions": dict(kind="CustomResourceDefinition", namespaced=False),
    "v1/namespaces": dict(kind="Namespace", namespaced=False),
    "v1/events": dict(kind="Event", namespaced=True),
    "v1/configmaps": dict(kind="ConfigMap", namespaced=True),
    "v1/services": dict(kind="Service", namespaced=True),
    "v1/pods": dict(kind="Pod", namespaced=True),
    "apps/v1/deployments": dict(kind="Deployment", namespaced=True),
    "batch/v1/jobs": dict(kind="Job", namespaced=True),
    "kubeflow.org/v1/pytorchjobs": dict(kind="PyTorchJob", namespaced=True),
    "trainer.kubeflow.org/v1alpha1/trainjobs": dict(kind="TrainJob", namespaced=True),
    "networking.k8s.io/v1/networkpolicies": dict(kind="NetworkPolicy", namespaced=True),
    "o1pruner.dev/v1alpha1/pruningjobs": dict(kind="PruningJob", namespaced=True, subresources={"status"}),
}
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}

PATHS = {
    "pruningjobs": "/apis/o1pruner.dev/v1alpha1/namespaces/{ns}/pruningjobs",
    "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
    "services": "/api/v1/namespaces/{ns}/services",
    "configmaps": "/api/v1/namespaces/{ns}/configmaps",
    "pods": "/api/v1/namespaces/{ns}/pods",
    "jobs": "/apis/batch/v1/namespaces/{ns}/jobs",
    "pytorchjobs": "/apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs",
    "trainjobs": "/apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs",
    "networkpolicies": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
}
RES_KEYS = {
    "pruningjobs": "o1pruner.dev/v1alpha1/pruningjobs",
    "deployments": "apps/v1/deployments",
    "services": "v1/services",
    "configmaps": "v1/configmaps",
    "pods": "v1/pods",
    "jobs": "batch/v1/jobs",
    "pytorchjobs": "kubeflow.org/v1/pytorchjobs",
    "trainjobs": "trainer.kubeflow.org/v1alpha1/trainjobs",
    "networkpolicies": "networking.k8s.io/v1/networkpolicies",
    "events": "v1/events",
}


class Emulator(kmock.KubernetesEmulator):
    """kmock 0.8's emulator plus ``metadata.generateName`` (kopf names its events that way), and
    a JSON patch that does not apply answered 422 as the API server does (kmock: 500). kopf
    JSON-patches finalizers from the body it last saw; kmock replays every object as ``ADDED``
    on a new watch and never bumps ``resourceVersion``, so a stale body's patch passes the
    ``test`` op and fails; on 422 kopf retries on the next event instead of 9 times in a row."""

    async def _handle(self, request):  # type: ignore[override]
        if (request.resource is not None and request.action == kmock.action.CREATE
                and isinstance(request.data, dict)):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        try:
            return await super()._handle(request)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc


def example_job(name: str = "marco-o1-pruned", **spec_overrides: Any) -> dict[str, Any]:
    """examples/pruningjob.yaml with server-side metadata, in the test namespace."""
    job = yaml.safe_load((ROOT / "examples" / "pruningjob.yaml").read_text())
    job["metadata"] = {
        "name": name, "namespace": NS, "uid": str(uuid.uuid4()), "generation": 1,
        "resourceVersion": "1", "creationTimestamp": "2026-11-28T12:00:00Z",
    }
    for key, value in spec_overrides.items():
        job["spec"][key] = value
    return job


#: The kind each training backend's main object is stored under (the ``kind`` keys above).
TRAINING_KINDS = training_fakes.TRAINING_KINDS


class Cluster:
    """Test-side API: apply objects and play the controllers the emulator does not have."""

    #: The training backend the operator under test uses (the ``training_backend`` fixture).
    backend = "pytorchjob"

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession):
        self.emu = emu
        # Our own session: kmock's bundled client hangs once a kopf run against it has stopped.
        self.session = session

    @property
    def url(self) -> str:
        return str(self.emu.servers[0].url).rstrip("/")

    def obj(self, kind: str, name: str, ns: str = NS) -> dict[str, Any] | None:
        res = kmock.resource(RES_KEYS[kind])
        for (r, n_s, n), o in list(self.emu.objects.items()):
            if r == res and n_s == ns and n == name and not o.deleted:
                return copy.deepcopy(dict(o.raw))
        return None

    def names(self, kind: str, ns: str = NS) -> list[str]:
        res = kmock.resource(RES_KEYS[kind])
        return sorted(n for (r, n_s, n), o in self.emu.objects.items()
                      if r == res and n_s == ns and not o.deleted)

    async def _check(self, resp: Any) -> Any:
        async with resp as r:
            body = await r.json(content_type=None)
            assert r.status < 400, body
            return body

    async def create(self, kind: str, body: dict[str, Any], ns: str = NS) -> Any:
        return await self._check(self.session.post(PATHS[kind].format(ns=ns), json=body))

    async def patch(self, kind: str, name: str, patch: dict[str, Any], ns: str = NS, sub: str = "") -> Any:
        path = PATHS[kind].format(ns=ns) + f"/{name}" + (f"/{sub}" if sub else "")
        return await self._check(self.session.patch(
            path, json=patch, headers={"Content-Type": "application/merge-patch+json"}))

    async def delete(self, kind: str, name: str, ns: str = NS) -> Any:
        return await self._check(self.session.delete(PATHS[kind].format(ns=ns) + f"/{name}"))

    async def create_foreign_job(self, name: str, owner: str, owner_uid: str = "an-earlier-job") -> Any:
        """A Job ``name`` controlled by another PruningJob named ``owner`` (another uid): a
        leftover of an earlier job of the same name."""
        return await self.create("jobs", {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS, "ownerReferences": [{
                "apiVersion": "o1pruner.dev/v1alpha1", "kind": "PruningJob", "name": owner,
                "uid": owner_uid, "controller": True}]},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
        })

    # -- controllers the emulator lacks --------------------------------------------------
    async def deployment_ready(self, name: str) -> None:
        await self.patch("deployments", name, {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}})

    async def job_done(self, name: str, *, failed: bool = False, reason: str = "BackoffLimitExceeded",
                       message: str = "Job has reached the specified backoff limit") -> None:
        cond = ({"type": "Failed", "status": "True", "reason": reason, "message": message} if failed
                else {"type": "Complete", "status": "True"})
        status = {"conditions": [cond], ("failed" if failed else "succeeded"): 1}
        await self.patch("jobs", name, {"status": status})

    async def pytorchjob(self, name: str, state: str, reason: str = "", message: str = "") -> None:
        cond = {"type": state, "status": "True", "reason": reason or f"PyTorchJob{state}", "message": message}
        await self.patch("pytorchjobs", name, {"status": {"conditions": [cond]}})

    @property
    def train_kind(self) -> str:
        return TRAINING_KINDS[self.backend]

    def train_obj(self, job: str, backend: str | None = None) -> dict[str, Any] | None:
        """The training backend's main object of PruningJob ``job``."""
        return self.obj(TRAINING_KINDS[backend or self.backend], f"{job}-train")

    def train_suspended(self, job: str, backend: str | None = None) -> bool:
        return training_fakes.suspended(backend or self.backend, self.train_obj(job, backend))

    async def training(self, job: str, state: str, reason: str = "", message: str = "",
                       backend: str | None = None) -> None:
        """Play the training controller of ``backend`` (default: the operator's): ``state`` is
        Running, Restarting (a node was preempted and is coming back), Succeeded or Failed."""
        backend = backend or self.backend
        nodes = int(((self.train_obj(job, backend) or {}).get("spec") or {}).get("completions") or 1)
        patch = training_fakes.status_patch(backend, state, nodes=nodes, reason=reason, message=message)
        await self.patch(TRAINING_KINDS[backend], f"{job}-train", patch)

    async def evaluation_done(self, stem: str, results: dict[str, Any]) -> None:
        """The eval Job ``<stem>-evaluate`` succeeds, its pod's termination message ``results``."""
        labels = self.obj("jobs", f"{stem}-evaluate")["spec"]["template"]["metadata"]["labels"]
        await self.pod(f"{stem}-evaluate-abcde", labels, {"phase": "Succeeded", "containerStatuses": [
            {"name": "evaluate", "restartCount": 0, "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "message": json.dumps(results),
                "finishedAt": "2026-11-28T13:00:00Z"}}}]})
        await self.job_done(f"{stem}-evaluate")

    async def pod(self, name: str, labels: dict[str, str], status: dict[str, Any]) -> None:
        await self.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "namespace": NS, "labels": labels},
                                   "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": status})


async def wait_for(pred: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture()
def kmock_options() -> dict[str, Any]:
    return {"cls": Emulator}


@pytest.fixture()
async def cluster(kmock: Emulator) -> AsyncIterator[Cluster]:
    for key, info in RESOURCES.items():
        kmock.resources[key] = kmock.ResourceInfo(verbs=VERBS, **info)
    connector = aiohttp.TCPConnector(force_close=True)  # a fresh connection per request
    async with aiohttp.ClientSession(str(kmock.servers[0].url), connector=connector) as session:
        yield Cluster(kmock, session)


@pytest.fixture()
def training_backend() -> str:
    """The operator's default training backend; tests parametrize it over all three."""
    return "pytorchjob"


@pytest.fixture()
def operator_config(cluster: Cluster, training_backend: str) -> OperatorConfig:
    cluster.backend = training_backend
    return OperatorConfig(kube_server=cluster.url, resync_seconds=0.1, metrics_port=0,
                          liveness_endpoint="", log_format="plain", crashloop_restarts=3,
                          training_backend=training_backend)


@pytest.fixture()
def run_operator(operator_config: OperatorConfig) -> Callable[[], contextlib.AbstractAsyncContextManager[Any]]:
    """``async with run_operator():`` the real kopf operator, in this event loop."""

    @contextlib.asynccontextmanager
    async def _run(liveness_endpoint: str | None = None,
                   config: OperatorConfig | None = None) -> AsyncIterator[kopf.OperatorRegistry]:
        metrics.reset()
        registry = build_registry(config or operator_config)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(kopf.operator(
            registry=registry, clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready,
            liveness_endpoint=liveness_endpoint,
        ))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield registry
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, 15)
            except asyncio.TimeoutError:
                task.cancel()

    return _run


Waiter = Callable[..., Awaitable[Any]]


@pytest.fixture()
def wait() -> Callable[..., Awaitable[Any]]:
    return wait_for


@pytest.fixture()
def make_job() -> Callable[..., dict[str, Any]]:
    return example_job
