"""kopf wiring: login, startup settings, one reconciling daemon per PruningJob, deletion.

Why a daemon: one coroutine per PruningJob serialises all work on that job (no two handlers
race on its children), wakes up on every change of the object (``on.event`` pokes it) and
re-reads the world every ``resync_seconds`` -- children are polled, not watched, so the
operator needs no cluster-wide watch on pods, Deployments or Jobs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

import kopf

from o1pruner.spec import GROUP, PLURAL, VERSION

from o1pruner_operator import metrics
from o1pruner_operator.backends import backend_for
from o1pruner_operator.kube import (
    CONFIGMAPS, DEPLOYMENTS, JOBS, NETWORKPOLICIES, SERVICES, Credentials, KubeClient,
)
from o1pruner_operator.manifests.common import Names
from o1pruner_operator.reconcile import Reconciler
from o1pruner_operator.settings import OperatorConfig, apply_kopf_settings
from o1pruner_operator.status import TERMINAL

log = logging.getLogger("o1pruner_operator")
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@dataclass
class Runtime:
    """State of one operator run (tests start several in one process)."""

    config: OperatorConfig
    client: KubeClient | None = None
    reconciler: Reconciler | None = None


def _post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message)


def build_registry(config: OperatorConfig | None = None) -> kopf.OperatorRegistry:
    """A fresh kopf registry with all handlers bound to one Runtime."""
    rt = Runtime(config=config or OperatorConfig.from_env())
    registry = kopf.OperatorRegistry()
    res = (GROUP, VERSION, PLURAL)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        apply_kopf_settings(settings, rt.config)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if rt.config.kube_server:
            info = kopf.ConnectionInfo(server=rt.config.kube_server, insecure=True)
        else:
            info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            creds = Credentials.from_connection_info(info)
            if not rt.config.kube_server and os.path.exists(SA_TOKEN):
                creds.token_path = SA_TOKEN
            rt.client = KubeClient(creds)
            rt.reconciler = Reconciler(rt.client, rt.config, backend_for(rt.config.training_backend), _post_event)
        return info

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if rt.client is not None:
            await rt.client.close()

    @kopf.on.probe(id="reconciler", registry=registry)
    def probe(**_: Any) -> bool:
        return rt.reconciler is not None

    @kopf.on.event(*res, registry=registry)
    def poke(memo: kopf.Memo, **_: Any) -> None:
        wake = memo.get("wake")
        if wake is not None:
            wake.set()

    @kopf.daemon(*res, registry=registry, cancellation_timeout=10.0)
    async def reconcile(name: str, namespace: str, memo: kopf.Memo, stopped: kopf.DaemonStopped,
                        logger: logging.Logger, **_: Any) -> None:
        wake = memo.setdefault("wake", asyncio.Event())
        failures = 0
        while not stopped:
            wake.clear()
            delay = rt.config.resync_seconds
            try:
                assert rt.reconciler is not None, "not logged in"
                phase = await rt.reconciler.reconcile(namespace, name)
                failures = 0
                if phase is None or phase in TERMINAL:
                    return  # nothing left to do; a restart re-checks it once
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # level-triggered: log, count, retry with backoff
                failures += 1
                metrics.RECONCILE_ERRORS.labels(handler="reconcile").inc()
                logger.error("reconcile failed (%d in a row): %s", failures, exc, exc_info=True)
                delay = min(rt.config.resync_seconds * 2 ** failures, 300.0)
            await _sleep(wake, stopped, delay)

    @kopf.on.delete(*res, registry=registry)
    async def delete(name: str, namespace: str, logger: logging.Logger, **_: Any) -> None:
        """Remove the children now (ownerReferences would let the GC do it eventually)."""
        metrics.forget_job(f"{namespace}/{name}")
        if rt.client is None:
            return
        names = Names(name)
        backend = backend_for(rt.config.training_backend)
        try:
            for res_, child in [
                (JOBS, names.eval_job), (JOBS, names.sample_job), (backend.resource, names.train),
                (DEPLOYMENTS, names.sampler("pruned")), (SERVICES, names.sampler("pruned")),
                (DEPLOYMENTS, names.sampler("reference")), (SERVICES, names.sampler("reference")),
                (CONFIGMAPS, names.config),
                *([(NETWORKPOLICIES, names.sampler(r)) for r in ("pruned", "reference")]
                  if rt.config.sampler_network_policy else []),
            ]:
                if await rt.client.delete(res_, namespace, child):
                    logger.info("deleted %s %s", res_.kind, child)
        except Exception:
            metrics.RECONCILE_ERRORS.labels(handler="delete").inc()
            raise

    registry.o1pruner_runtime = rt  # type: ignore[attr-defined]  # for tests
    return registry


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
