"""The real kopf operator against kmock's Kubernetes emulator, for the reliability tests.

Built on tests/kube_harness.py (resources, the test-side cluster client, the kopf runner),
which the operator tests share. Additions here:

* every API request is recorded (verb, group, resource, namespace, name, outcome), for the
  duplicate-children, RBAC and secret-access checks;
* the operator can be stopped gracefully (stop flag) or killed (task cancelled mid-reconcile)
  and started again as a fresh instance (new registry, no memory).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import kopf

from o1pruner_operator.settings import OperatorConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "tests"))  # appended: this folder's conftest must stay the first found
import kube_harness  # noqa: E402  (tests/kube_harness.py)
from kube_harness import NS, wait_for  # noqa: E402,F401  (wait_for: the reliability tests import it from here)

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
        kube_harness.generate_name(request)
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
    """examples/pruningjob.yaml under another name, with its own storage URI."""
    return kube_harness.example_job(name, namespace, storage_uri=f"s3://o1pruner-runs/{name}", **spec_overrides)


class Cluster(kube_harness.Cluster):
    """The harness's cluster (through the emulator's bundled client), plus the request log and
    views over many jobs."""

    def __init__(self, emu: Emulator):
        super().__init__(emu)
        emu.calls = []

    @property
    def calls(self) -> list[Call]:
        return self.emu.calls

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


def install(emu: Emulator) -> Cluster:
    kube_harness.register_resources(emu)
    return Cluster(emu)


def operator_config(cluster: Cluster, **kw: Any) -> OperatorConfig:
    return kube_harness.operator_config(cluster.url, **kw)


def operator(config: OperatorConfig, *, kill: bool = False) -> contextlib.AbstractAsyncContextManager[kopf.OperatorRegistry]:
    """``async with operator(cfg):`` a fresh kopf operator in this loop (kube_harness.running_operator)."""
    return kube_harness.running_operator(config, kill=kill)


class ErrorLogs(logging.Handler):
    """Collects ERROR records of the operator and kopf (reconcile errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def drive_lifecycle(cluster: Cluster, name: str, results: dict[str, Any] | None = None) -> None:
    """With an operator running: play the controllers until job ``name`` has Succeeded."""
    await wait_for(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), what="reference sampler")
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait_for(lambda: cluster.obj("jobs", f"{name}-sample"), what="sample Job")
    await cluster.job_done(f"{name}-sample")
    await wait_for(lambda: cluster.obj("pytorchjobs", f"{name}-train"), what="PyTorchJob")
    await cluster.pytorchjob(f"{name}-train", "Succeeded")
    await wait_for(lambda: cluster.obj("deployments", f"{name}-sampler-pruned"), what="pruned sampler")
    await cluster.deployment_ready(f"{name}-sampler-pruned")
    await wait_for(lambda: cluster.obj("jobs", f"{name}-evaluate"), what="eval Job")
    await cluster.evaluation_done(name, results or {"datasets": {"d": {
        "baseAccuracy": 0.5, "prunedAccuracy": 0.5, "baseLength": 10.0, "prunedLength": 8.0}}})
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
