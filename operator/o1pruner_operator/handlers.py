"""kopf wiring: login, startup settings, one reconciling task per PruningJob, deletion, and
watches of the children.

Why one task per job (:mod:`o1pruner_operator.runners`): one coroutine per PruningJob
serialises all work on that job (no two handlers race on its children). It wakes up at once on
every change of the PruningJob and of its children (label-selected watches on Jobs,
Deployments, the training backends' kinds and failing pods; see :mod:`o1pruner_operator.watches`),
and re-reads the world every ``resync_seconds`` (minutes) as a safety net for a missed event.

No handler here needs a finalizer (a kopf daemon or a mandatory ``on.delete`` would make kopf
add one to every job, and a deleted job would hang in ``Terminating`` whenever the operator is
down): every child has a controller ownerReference, so the garbage collector removes them with
the job; with the operator up, the job's deletion event stops its task and deletes the children
at once. kopf removes the finalizer of jobs an older operator created, as no handler requires it.
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
    CONFIGMAPS, DEPLOYMENTS, JOBS, NETWORKPOLICIES, PODS, PRUNINGJOBS, SERVICES, Credentials, KubeClient,
)
from o1pruner_operator.manifests.common import LABEL_JOB, Names
from o1pruner_operator.reconcile import Blocked, Reconciler, check_owner
from o1pruner_operator.runners import JobRunners
from o1pruner_operator.settings import OperatorConfig, apply_kopf_settings
from o1pruner_operator.status import TERMINAL
from o1pruner_operator.watches import Changes, Wakers, label_selectors, owner, pod_failing, watched_kinds

log = logging.getLogger("o1pruner_operator")
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: Backoff after a failed reconcile: min(resync, this) * 2**failures, at most MAX_BACKOFF.
RETRY_BASE_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 300.0
#: A job's task finishes its pass within this when the job is deleted or the operator stops.
STOP_GRACE_SECONDS = 10.0


@dataclass
class Runtime:
    """State of one operator run (tests start several in one process)."""

    config: OperatorConfig
    client: KubeClient | None = None
    reconciler: Reconciler | None = None
    wakers: Wakers = field(default_factory=Wakers)
    changes: Changes = field(default_factory=Changes)
    runners: JobRunners = field(default_factory=JobRunners)
    #: uids of deleting jobs whose children were already deleted (forgotten at DELETED).
    cleaned: set[str] = field(default_factory=set)


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
        await rt.runners.stop_all(grace=STOP_GRACE_SECONDS)
        if rt.client is not None:
            await rt.client.close()

    @kopf.on.probe(id="reconciler", registry=registry)
    def probe(**_: Any) -> bool:
        return rt.reconciler is not None

    @kopf.on.event(*res, registry=registry)
    async def pruningjob(name: str, namespace: str, body: kopf.Body, event: dict[str, Any],
                         type: str | None, **_: Any) -> None:
        """Seen (the initial listing included): make sure its task runs, wake it on a change.
        Deleted or being deleted: stop its task and delete its children."""
        key, uid = (namespace, name), str(body.get("metadata", {}).get("uid", ""))
        if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
            await rt.runners.stop(key, uid, grace=STOP_GRACE_SECONDS)
            if uid not in rt.cleaned:
                metrics.forget_job(f"{namespace}/{name}")
                await _delete_children(rt, name, namespace, body)
                rt.cleaned.add(uid)
            if type == "DELETED":
                rt.changes.changed(PLURAL, event["object"], type)
                rt.cleaned.discard(uid)
            return
        if rt.changes.changed(PLURAL, event["object"], type):
            rt.wakers.wake(key)
        ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": body.get("kind", "PruningJob"),
               "metadata": {"name": name, "namespace": namespace, "uid": uid}}
        await rt.runners.start(key, uid, lambda stopping: _reconcile_loop(rt, ref, stopping))

    # A child changed: wake its PruningJob's reconciler (no API request, no write).
    labelled = {LABEL_JOB: kopf.PRESENT}
    for child in children:
        kopf.on.event(child.group, child.version, child.plural, id=f"wake-on-{child.plural}",
                      labels=labelled, registry=registry)(_wake_owner(rt, child.plural))
    kopf.on.event(PODS.group, PODS.version, PODS.plural, id="wake-on-failing-pods", labels=labelled,
                  when=lambda status, **_: pod_failing(status), registry=registry)(_wake_owner(rt, PODS.plural))

    registry.o1pruner_runtime = rt  # type: ignore[attr-defined]  # for tests
    return registry


def _wake_owner(rt: Runtime, plural: str) -> Any:
    async def wake_owner(event: dict[str, Any], type: str | None, **_: Any) -> None:  # in the loop: Event.set
        if rt.changes.changed(plural, event["object"], type):
            rt.wakers.wake(owner(event["object"]))

    return wake_owner


async def _reconcile_loop(rt: Runtime, ref: dict[str, Any], stopping: asyncio.Event) -> None:
    """One PruningJob's reconciler, until its phase is terminal or ``stopping`` is set: a pass,
    then sleep until woken or ``resync_seconds``; after a failure, back off exponentially."""
    namespace, name = ref["metadata"]["namespace"], ref["metadata"]["name"]
    wake = rt.wakers.register(namespace, name)
    failures = 0
    try:
        while not stopping.is_set():
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
                if stopping.is_set() or await _gone(rt, namespace, name):
                    return  # deleted mid-pass: its deletion event deletes the children
                failures += 1
                metrics.RECONCILE_ERRORS.labels(handler="reconcile").inc()
                log.error("%s/%s: reconcile failed (%d in a row): %s", namespace, name, failures, exc,
                          exc_info=True)
                _post_event(ref, "Warning", "ReconcileFailed", f"reconcile failed ({failures} in a row): {exc}")
                delay = min(min(rt.config.resync_seconds, RETRY_BASE_SECONDS) * 2 ** failures,
                            MAX_BACKOFF_SECONDS)
            await _sleep(wake, stopping, delay)
    finally:
        rt.wakers.unregister(namespace, name)


async def _gone(rt: Runtime, namespace: str, name: str) -> bool:
    """Whether the PruningJob no longer exists (or is being deleted); False when unsure."""
    try:
        body = None if rt.client is None else await rt.client.get(PRUNINGJOBS, namespace, name)
    except Exception:  # noqa: BLE001 -- the API server is unreachable: not known to be gone
        return False
    return rt.client is not None and (body is None or bool(body["metadata"].get("deletionTimestamp")))


async def _delete_children(rt: Runtime, name: str, namespace: str, body: dict[str, Any]) -> None:
    """Delete a deleted PruningJob's children at once (the garbage collector would, later, through
    their ownerReferences). Only objects this job owns: an object under a child's name that
    another owner holds (a leftover of an earlier job, or of a new job of the same name) stays.
    Best effort: a failure is logged and counted, the rest still go."""
    if rt.client is None or rt.reconciler is None:
        return
    uid = str((body.get("metadata") or {}).get("uid") or "")
    backend = rt.reconciler.backends.get(chosen_backend(body))
    last_round = int((body.get("status") or {}).get("round") or 1)
    children = [(CONFIGMAPS, Names(name).config)]
    for names in (Names(name, n) for n in range(last_round, 0, -1)):  # every round's children
        children[:0] = [
            (JOBS, names.eval_job), (JOBS, names.sample_job), *backend.children(names),
            (DEPLOYMENTS, names.sampler("pruned")), (SERVICES, names.sampler("pruned")),
            (DEPLOYMENTS, names.sampler("reference")), (SERVICES, names.sampler("reference")),
            *([(NETWORKPOLICIES, names.sampler(r)) for r in ("pruned", "reference")]
              if rt.config.sampler_network_policy else []),
        ]
    for res_, child in children:
        try:
            obj = await rt.client.get(res_, namespace, child)
            if obj is None:
                continue
            try:
                check_owner(obj, uid, res_.kind)
            except Blocked as not_ours:
                log.info("%s/%s: not deleting %s", namespace, name, not_ours)
                continue
            if await rt.client.delete(res_, namespace, child):
                log.info("%s/%s: deleted %s %s", namespace, name, res_.kind, child)
        except Exception as exc:  # noqa: BLE001 -- best effort: the GC removes what is left
            metrics.RECONCILE_ERRORS.labels(handler="delete").inc()
            log.warning("%s/%s: could not delete %s %s (the garbage collector will): %s",
                        namespace, name, res_.kind, child, exc)


async def _sleep(wake: asyncio.Event, stopping: asyncio.Event, delay: float) -> None:
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
