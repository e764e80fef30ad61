"""Watches of the children the operator owns: a child's change wakes its PruningJob's
reconciler at once, instead of at the next resync.

Children carry the ``o1pruner.dev/job: <PruningJob name>`` label, so one label-selected watch
per kind (server side, ``settings.watching.label_selectors``) streams only our own objects.
Each event is mapped to its PruningJob (label value + namespace) and sets that job's wake-up
event; the reconciling daemon (one per PruningJob) re-reads the world and acts. Nothing is
written on an event, so a burst of child events costs one reconcile pass, and no API request.
An event that repeats an object's last seen state (a watch re-established after a 410 Gone
re-lists every object; kmock's emulator replays them on every reconnect) wakes nobody.

Watched: Jobs (sampling, evaluation, the ``job`` training backend), Deployments (samplers), the
training backends' kinds (TrainJob and PyTorchJob: a job may pick either), and pods only when they show a failure (the reconciler
reads failed and crash-looping pods; a healthy pod's churn does not wake it). A kind whose CRD
is not installed (no kubeflow.org) is reported by kopf as unresolved and watched once it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from o1pruner_operator.kube import DEPLOYMENTS, JOBS, PODS, Resource
from o1pruner_operator.manifests.common import LABEL_JOB

#: Children whose every change matters to the reconciler (besides the training backends' kinds).
CHILD_KINDS: tuple[Resource, ...] = (JOBS, DEPLOYMENTS)
#: Container waiting reasons that the reconciler turns into a failure (see reconcile.pod_problem).
_BAD_WAITING = {"CrashLoopBackOff", "InvalidImageName", "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff"}


def watched_kinds(*training: Resource) -> tuple[Resource, ...]:
    """The children watched whole: Jobs, Deployments and the training backends' kinds."""
    return tuple(dict.fromkeys((*CHILD_KINDS, *training)))


def pod_failing(status: dict[str, Any] | None) -> bool:
    """A pod worth waking the reconciler for: failed, or a container that exited non-zero,
    crash-loops or cannot pull its image. Healthy pods' churn stays quiet."""
    status = status or {}
    if status.get("phase") == "Failed":
        return True
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if ((state.get("waiting") or {}).get("reason") in _BAD_WAITING
                or (state.get("terminated") or {}).get("exitCode") not in (None, 0)):
            return True
    return False


def owner(body: dict[str, Any]) -> tuple[str, str] | None:
    """(namespace, PruningJob name) of a labelled child, or None for an unlabelled object."""
    meta = body.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_JOB)
    return (meta.get("namespace") or "", name) if name else None


class Wakers:
    """One wake-up event per running reconciler, keyed by (namespace, PruningJob name)."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def register(self, namespace: str, name: str) -> asyncio.Event:
        return self._events.setdefault((namespace, name), asyncio.Event())

    def unregister(self, namespace: str, name: str) -> None:
        self._events.pop((namespace, name), None)

    def wake(self, key: tuple[str, str] | None) -> bool:
        """Wake that job's reconciler; False when none runs (gone, finished, not started yet:
        its first pass reads everything anyway)."""
        event = self._events.get(key) if key else None
        if event is None:
            return False
        event.set()
        return True

    def __len__(self) -> int:
        return len(self._events)


class Changes:
    """Remembers the last seen state of each watched object, to tell a change from a replay."""

    #: Metadata that changes without the object changing (or is irrelevant to the reconciler).
    _VOLATILE = {"resourceVersion", "managedFields"}

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, str], str] = {}

    def changed(self, plural: str, obj: Mapping[str, Any], event_type: str | None) -> bool:
        """True for a new object, a deletion, or any change since this object's last event."""
        meta = obj.get("metadata") or {}
        key = (plural, meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "")
        if event_type == "DELETED":
            self._seen.pop(key, None)
            return True
        state = {**obj, "metadata": {k: v for k, v in meta.items() if k not in self._VOLATILE}}
        digest = hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()
        if self._seen.get(key) == digest:
            return False
        self._seen[key] = digest
        return True

    def __len__(self) -> int:
        return len(self._seen)


def label_selectors(kinds: Iterable[Resource]) -> dict[tuple[str, str, str], str]:
    """Server-side selectors (kopf's ``settings.watching.label_selectors``): only labelled objects."""
    return {(res.group, res.version, res.plural): LABEL_JOB for res in kinds}
