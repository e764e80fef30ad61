"""One reconciling asyncio task per PruningJob, owned by the operator (not by kopf).

Why not a kopf daemon: kopf puts its finalizer on every object that has a daemon (it must stop
the daemon before the object goes), so with the operator uninstalled or crash-looping a deleted
PruningJob (or its namespace) would hang in ``Terminating``. These tasks need no finalizer: the
PruningJob's ``on.event`` handler starts one when it sees a job (kopf's initial listing at
startup delivers every existing job, so a restart resumes them all) and stops it when the job
is deleted; the operator's cleanup stops the rest.

A task that returned (the job reached a terminal phase) stays registered, so later events of the
same object do not start it again; a restart re-checks such a job once. A new object under the
same name (another uid) replaces it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("o1pruner_operator")

Key = tuple[str, str]  # (namespace, PruningJob name)
#: Builds a job's coroutine; it should return soon after ``stopping`` is set.
Factory = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class _Run:
    uid: str
    task: asyncio.Task[None]
    stopping: asyncio.Event


class JobRunners:
    """The per-job tasks of one operator run, keyed by (namespace, name)."""

    def __init__(self) -> None:
        self._runs: dict[Key, _Run] = {}
        self._closed = False

    async def start(self, key: Key, uid: str, factory: Factory) -> bool:
        """Start ``factory``'s task for this object unless it already ran in this operator run
        (running or returned). True if started."""
        run = self._runs.get(key)
        if self._closed or (run is not None and run.uid == uid):
            return False
        if run is not None:  # the same name, another object: the old one is gone
            await self.stop(key, run.uid, grace=0.0)
        stopping = asyncio.Event()
        task = asyncio.create_task(factory(stopping), name=f"reconcile {key[0]}/{key[1]}")
        self._runs[key] = _Run(uid, task, stopping)
        return True

    async def stop(self, key: Key, uid: str | None = None, *, grace: float) -> bool:
        """Ask the task of ``key`` to stop, cancel it after ``grace`` seconds, and forget it (a later
        event may start it again). With ``uid``, only that object's task. True if one was known."""
        run = self._runs.get(key)
        if run is None or (uid is not None and run.uid != uid):
            return False
        del self._runs[key]
        await _finish(run, grace)
        return True

    async def stop_all(self, *, grace: float) -> None:
        """Operator shutdown: stop every task (within ``grace`` seconds) and start no new one."""
        self._closed = True
        runs, self._runs = list(self._runs.values()), {}
        await asyncio.gather(*(_finish(run, grace) for run in runs))

    def running(self, key: Key) -> bool:
        run = self._runs.get(key)
        return run is not None and not run.task.done()

    def __len__(self) -> int:
        return sum(not run.task.done() for run in self._runs.values())


async def _finish(run: _Run, grace: float) -> None:
    run.stopping.set()
    if not run.task.done() and grace > 0:
        await asyncio.wait([run.task], timeout=grace)
    if not run.task.done():
        run.task.cancel()
        await asyncio.wait([run.task])  # its cancellation, not ours: a cancelled caller still raises
    if not run.task.cancelled() and run.task.exception() is not None:  # the loop logs its own errors
        log.error("reconciler task %s failed", run.task.get_name(), exc_info=run.task.exception())
