"""Fixtures: the kmock Kubernetes emulator, the real kopf operator in process, helpers that
play the part of the kubelet, the Deployment controller, the Job controller and the Kubeflow
training-operator (they mark children ready/complete/failed)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import jsonpointer
import kmock
import kopf
import pytest

from o1pruner_operator.settings import OperatorConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "tests"))  # appended: tests/reliability imports its own conftest first
import kube_harness  # noqa: E402  (tests/kube_harness.py)
import training_fakes  # noqa: E402  (tests/training_fakes.py)
from kube_harness import NS, example_job, wait_for  # noqa: E402


class Emulator(kmock.KubernetesEmulator):
    """kmock 0.8's emulator plus ``metadata.generateName`` (kopf names its events that way), and
    a JSON patch that does not apply answered 422 as the API server does (kmock: 500). kopf
    JSON-patches finalizers from the body it last saw; kmock replays every object as ``ADDED``
    on a new watch and never bumps ``resourceVersion``, so a stale body's patch passes the
    ``test`` op and fails; on 422 kopf retries on the next event instead of 9 times in a row."""

    async def _handle(self, request):  # type: ignore[override]
        kube_harness.generate_name(request)
        try:
            return await super()._handle(request)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc


#: The kind each training backend's main object is stored under (the ``kind`` keys above).
TRAINING_KINDS = training_fakes.TRAINING_KINDS


class Cluster(kube_harness.Cluster):
    """The harness's cluster, plus the training backend the operator under test uses and the
    objects these tests need."""

    #: The training backend the operator under test uses (the ``training_backend`` fixture).
    backend = "pytorchjob"

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

    @property
    def train_kind(self) -> str:
        return TRAINING_KINDS[self.backend]

    def train_obj(self, job: str, backend: str | None = None) -> dict[str, Any] | None:
        """The training backend's main object of PruningJob ``job``."""
        return self.obj(TRAINING_KINDS[backend or self.backend], f"{job}-train")

    def train_suspended(self, job: str, backend: str | None = None) -> bool:
        return training_fakes.suspended(backend or self.backend, self.train_obj(job, backend))

    async def training(self, job: str, state: str, backend: str | None = None, **kw: Any) -> None:  # type: ignore[override]
        """The harness's training controller, for the operator's backend unless ``backend``."""
        await super().training(job, state, backend or self.backend, **kw)


@pytest.fixture()
def kmock_options() -> dict[str, Any]:
    return {"cls": Emulator}


@pytest.fixture()
async def cluster(kmock: Emulator) -> AsyncIterator[Cluster]:
    kube_harness.register_resources(kmock)
    connector = aiohttp.TCPConnector(force_close=True)  # a fresh connection per request
    async with aiohttp.ClientSession(str(kmock.servers[0].url), connector=connector) as session:
        yield Cluster(kmock, session)  # our own session: kmock's bundled client hangs once a kopf run against it has stopped


@pytest.fixture()
def training_backend() -> str:
    """The operator's default training backend; tests parametrize it over all three."""
    return "pytorchjob"


@pytest.fixture()
def operator_config(cluster: Cluster, training_backend: str) -> OperatorConfig:
    cluster.backend = training_backend
    return kube_harness.operator_config(cluster.url, training_backend=training_backend)


@pytest.fixture()
def run_operator(operator_config: OperatorConfig) -> Callable[[], contextlib.AbstractAsyncContextManager[Any]]:
    """``async with run_operator():`` the real kopf operator, in this event loop."""

    def _run(liveness_endpoint: str | None = None,
             config: OperatorConfig | None = None) -> contextlib.AbstractAsyncContextManager[kopf.OperatorRegistry]:
        return kube_harness.running_operator(config or operator_config, liveness_endpoint=liveness_endpoint)

    return _run


Waiter = Callable[..., Awaitable[Any]]


@pytest.fixture()
def wait() -> Callable[..., Awaitable[Any]]:
    return wait_for


@pytest.fixture()
def make_job() -> Callable[..., dict[str, Any]]:
    return example_job
