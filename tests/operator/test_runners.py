"""``runners.JobRunners``: one task per PruningJob object, started once per operator run."""

from __future__ import annotations

import asyncio

from o1pruner_operator.runners import JobRunners

KEY = ("ns", "job")


def loop(log: list[str], *, returns: bool = False, ignores_stop: bool = False):
    def factory(stopping: asyncio.Event):
        async def run() -> None:
            log.append("started")
            try:
                while not returns:
                    if stopping.is_set() and not ignores_stop:
                        log.append("stopped")
                        return
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                log.append("cancelled")
                raise
        return run()
    return factory


async def test_a_job_runs_once_per_object_and_a_new_uid_replaces_it():
    runners, log = JobRunners(), []
    assert await runners.start(KEY, "uid-1", loop(log))
    assert not await runners.start(KEY, "uid-1", loop(log))  # already running: every event asks
    await asyncio.sleep(0.05)
    assert runners.running(KEY) and len(runners) == 1 and log == ["started"]
    assert await runners.start(KEY, "uid-2", loop(log))  # deleted and created again under the name
    await asyncio.sleep(0.05)
    assert log == ["started", "cancelled", "started"] and len(runners) == 1  # the old one is gone
    await runners.stop_all(grace=1.0)
    assert log[-1] == "stopped"  # the operator's shutdown lets a pass finish
    assert len(runners) == 0 and not await runners.start(KEY, "uid-3", loop(log))  # shut down


async def test_a_returned_task_is_not_started_again_until_stopped():
    runners, log = JobRunners(), []
    await runners.start(KEY, "uid-1", loop(log, returns=True))
    await asyncio.sleep(0.05)
    assert not runners.running(KEY)
    assert not await runners.start(KEY, "uid-1", loop(log))  # a terminal job: later events start nothing
    assert await runners.stop(KEY, "uid-1", grace=1.0)
    assert await runners.start(KEY, "uid-1", loop(log))  # a restart re-checks it once
    await runners.stop_all(grace=1.0)


async def test_stop_waits_for_the_grace_then_cancels_and_only_for_its_uid():
    runners, log = JobRunners(), []
    await runners.start(KEY, "uid-1", loop(log, ignores_stop=True))
    await asyncio.sleep(0.02)
    assert not await runners.stop(KEY, "other-uid", grace=1.0)  # another object's deletion
    assert runners.running(KEY)
    loop_time = asyncio.get_running_loop().time
    t0 = loop_time()
    assert await runners.stop(KEY, "uid-1", grace=0.2)
    assert 0.15 < loop_time() - t0 < 2 and log == ["started", "cancelled"] and not runners.running(KEY)
