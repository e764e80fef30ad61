"""kopf wiring: login, startup settings, one reconciling daemon per PruningJob, deletion,
and watches of the children.

Why a daemon: one coroutine per PruningJob serialises all work on that job (no two handlers
race on its children). It wakes up at once on every change of the PruningJob and of its
children (label-selected watches on Jobs, Deployments, the training backends' kinds and failing
pods; see :mod:`o1pruner_operator.watches`), and re-reads the world every ``resync_seconds``
(minutes) as a safety net for a missed event.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import kopf

from o1pruner.spec import GROUP, PLURAL, VERSION

from o1pruner_operator import metrics
from o1pruner_operator.backends import TRAINING_RESOURCES, Backends, chosen_backend
from o1pruner_operator.kube import (
    CONFIGMAPS, DEPLOYMENTS, JOBS, NETWORKPOLICIES, PODS, SERVICES, Credentials, KubeClient,
)
from o1pruner_operator.manifests.common import LABEL_JOB, Names
from o1pruner_operator.reconcile import Reconciler
from o1pruner_operator.settings import OperatorConfig, apply_kopf_settings
from o1pruner_operator.status import TERMINAL
from o1pruner_operator.watches import Changes, Wakers, label_selectors, owner, pod_failing, watched_kinds

log = logging.getLogger("o1pruner_operator")
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: Backoff after a failed reconcile: min(resync, this) * 2**failures, at most MAX_BACKOFF.
RETRY_BASE_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0


@dataclass
class Runtime:
    """State of one operator run (tests start several in one process)."""

    config: OperatorConfig
    client: KubeClient | None = None
    reconciler: Reconciler | None = None
    wakers: Wakers = field(default_factory=Wakers)
    changes: Changes = field(default_factory=Changes)


def _post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(body, type=type_, reason=reason, message=message)


def build_registry(config: OperatorConfig | None = None) -> kopf.OperatorRegistry:
    """A fresh kopf registry with all handlers bound to one Runtime."""
    rt = Runtime(config=config or OperatorConfig.from_env())
    registry = kopf.OperatorRegistry()
    res = (GROUP, VERSION, PLURAL)
    children = watched_kinds(*TRAINING_RESOURCES)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        apply_kopf_settings(settings, rt.config)
        for key, selector in label_selectors((*children, PODS)).items():
            settings.watching.label_selectors[key] = selector

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if rt.config.kube_server:
            info = kopf.ConnectionInfo(server=rt.config.kube_server, insecure=True)
        else:
            info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            creds = Credentials.from_connection_info(info)
            if not rt.config.kube_server and os.path.exists(SA_TOKEN):
                creds.token_path = SA_TOKEN
            rt.client = KubeClient(creds)
            backends = Backends(rt.client, rt.config.training_backend, trainjob_runtime=rt.config.trainjob_runtime)
            rt.reconciler = Reconciler(rt.client, rt.config, backends, _post_event)
            try:  # discovery at start: which training APIs the cluster serves (re-checked on a miss)
                log.info("training backends the cluster serves: %s (default: %s)",
                         await backends.available(), backends.default)
            except Exception as exc:  # noqa: BLE001 -- not fatal: each job asks again
                log.warning("training API discovery failed at start: %s", exc)
        return info

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if rt.client is not None:
            await rt.client.close()

    @kopf.on.probe(id="reconciler", registry=registry)
    def probe(**_: Any) -> bool:
        return rt.reconciler is not None

    @kopf.on.event(*res, registry=registry)
    def poke(name: str, namespace: str, event: dict[str, Any], type: str | None, **_: Any) -> None:
        if rt.changes.changed(PLURAL, event["object"], type):
            rt.wakers.wake((namespace, name))

    # A child changed: wake its PruningJob's reconciler (no API request, no write).
    labelled = {LABEL_JOB: kopf.PRESENT}
    for child in children:
        kopf.on.event(child.group, child.version, child.plural, id=f"wake-on-{child.plural}",
                      labels=labelled, registry=registry)(_wake_owner(rt, child.plural))
    kopf.on.event(PODS.group, PODS.version, PODS.plural, id="wake-on-failing-pods", labels=labelled,
                  when=lambda status, **_: pod_failing(status), registry=registry)(_wake_owner(rt, PODS.plural))

    @kopf.daemon(*res, registry=registry, cancellation_timeout=10.0)
    async def reconcile(name: str, namespace: str, stopped: kopf.DaemonStopped,
                        logger: logging.Logger, **_: Any) -> None:
        wake = rt.wakers.register(namespace, name)
        failures = 0
        try:
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
                    delay = min(min(rt.config.resync_seconds, RETRY_BASE_SECONDS) * 2 ** failures,
                                MAX_BACKOFF_SECONDS)
                await _sleep(wake, stopped, delay)
        finally:
            rt.wakers.unregister(namespace, name)

    @kopf.on.delete(*res, registry=registry)
    async def delete(name: str, namespace: str, body: kopf.Body, logger: logging.Logger, **_: Any) -> None:
        """Remove the children now (ownerReferences would let the GC do it eventually)."""
        metrics.forget_job(f"{namespace}/{name}")
        if rt.client is None or rt.reconciler is None:
            return
        names = Names(name)
        backend = rt.reconciler.backends.get(chosen_backend(body))
        try:
            for res_, child in [
                (JOBS, names.eval_job), (JOBS, names.sample_job), *backend.children(names),
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


def _wake_owner(rt: Runtime, plural: str) -> Any:
    def wake_owner(event: dict[str, Any], type: str | None, **_: Any) -> None:
        if rt.changes.changed(plural, event["object"], type):
            rt.wakers.wake(owner(event["object"]))

    return wake_owner


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
