"""Children are watched, not polled: with an hour-long resync every transition still happens at
once, woken by the child's own event (a Job, a Deployment, the training object, a failing pod).

The lifecycle tests of ``test_lifecycle.py`` run here a second time under that configuration
(imported below, so pytest collects them in this module, with this module's ``operator_config``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import pytest

from o1pruner_operator.kube import DEPLOYMENTS, JOBS, PODS, PYTORCHJOBS
from o1pruner_operator.settings import OperatorConfig
from o1pruner_operator.watches import Changes, Wakers, label_selectors, owner, pod_failing, watched_kinds

from .test_lifecycle import (  # noqa: F401  (collected again here, with an hour-long resync)
    test_failed_training_fails_the_job,
    test_failure_mid_training_stops_the_training_job,
    test_full_lifecycle,
    test_operator_restart_during_training_creates_no_duplicates,
    test_sampler_crashloop_fails_the_job,
    test_sampling_job_backoff_exhausted_fails_the_job,
    test_suspend_pauses_and_resume_continues,
)

NAME = "watched"
HOUR = 3600.0


@pytest.fixture()
def operator_config(operator_config: OperatorConfig) -> OperatorConfig:
    """No polling to speak of: only events can move a job within a test's timeouts."""
    return dataclasses.replace(operator_config, resync_seconds=HOUR)


def _phase(cluster, name=NAME):
    return ((cluster.obj("pruningjobs", name) or {}).get("status") or {}).get("phase")


async def _seconds_until(pred, timeout=10.0) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


async def test_a_child_status_change_moves_the_phase_within_a_second(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="sampler")
        await cluster.deployment_ready(f"{NAME}-sampler-reference")
        await wait(lambda: cluster.obj("jobs", f"{NAME}-sample"), what="sampling Job")
        await asyncio.sleep(0.5)  # let the job's reconciler settle into its (hour-long) sleep
        await cluster.job_done(f"{NAME}-sample")
        to_training = await _seconds_until(lambda: _phase(cluster) == "Training")
        await wait(lambda: cluster.obj("pytorchjobs", f"{NAME}-train"), what="PyTorchJob")
        await asyncio.sleep(0.5)
        await cluster.pytorchjob(f"{NAME}-train", "Succeeded")
        to_evaluating = await _seconds_until(lambda: _phase(cluster) == "Evaluating")
    assert to_training < 1.0 and to_evaluating < 1.0, (to_training, to_evaluating)
    # The children's watches select our objects server-side (the emulator ignores it; an API
    # server streams only labelled objects).
    watches = {(r.resource.plural, r.params.get("labelSelector")) for r in list(cluster.emu)
               if r.resource is not None and r.action is not None and r.action.name == "WATCH"}
    for plural in ("jobs", "deployments", "pytorchjobs", "trainjobs", "pods"):  # every backend's kind
        assert (plural, "o1pruner.dev/job") in watches, watches


@pytest.mark.parametrize("training_backend", ["job"])  # the backend for clusters without Kubeflow
async def test_a_missing_optional_crd_does_not_stop_the_operator(cluster, run_operator, wait, make_job, caplog):
    """No Kubeflow installed: kopf reports the PyTorchJob and TrainJob watches as unresolved;
    the other watches (and the operator) work."""
    del cluster.emu.resources["kubeflow.org/v1/pytorchjobs"]
    del cluster.emu.resources["trainer.kubeflow.org/v1alpha1/trainjobs"]
    caplog.set_level(logging.WARNING, logger="kopf")
    async with run_operator() as registry:
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="sampler")
        await cluster.deployment_ready(f"{NAME}-sampler-reference")
        await wait(lambda: cluster.obj("jobs", f"{NAME}-sample"), what="sampling Job (woken by the Deployment)")
        assert registry.o1pruner_runtime.reconciler is not None
    unresolved = [r.getMessage() for r in caplog.records if "Unresolved resources" in r.getMessage()]
    assert unresolved and "pytorchjobs" in unresolved[0], unresolved


# --------------------------------------------------------------------------- pure parts
def test_watched_kinds_follow_the_training_backend():
    assert watched_kinds(PYTORCHJOBS) == (JOBS, DEPLOYMENTS, PYTORCHJOBS)
    assert watched_kinds(JOBS) == (JOBS, DEPLOYMENTS)  # a plain-Job backend adds no kind
    selectors = label_selectors((*watched_kinds(PYTORCHJOBS), PODS))
    assert selectors[("", "v1", "pods")] == "o1pruner.dev/job"
    assert set(selectors) == {("batch", "v1", "jobs"), ("apps", "v1", "deployments"),
                              ("kubeflow.org", "v1", "pytorchjobs"), ("", "v1", "pods")}


@pytest.mark.parametrize("status, failing", [
    ({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}, False),
    ({"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"exitCode": 0}}}]}, False),
    ({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}, False),
    ({"phase": "Failed"}, True),
    ({"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}, True),
    ({"phase": "Running", "containerStatuses": [{"state": {"terminated": {"exitCode": 137}}}]}, True),
    ({"phase": "Pending", "initContainerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]}, True),
    (None, False),
])
def test_only_failing_pods_wake_the_reconciler(status, failing):
    assert pod_failing(status) is failing


async def test_wakers_wake_only_a_running_reconciler():
    wakers = Wakers()
    child = {"metadata": {"namespace": "ns", "name": "j-sample", "labels": {"o1pruner.dev/job": "j"}}}
    assert owner(child) == ("ns", "j")
    assert owner({"metadata": {"namespace": "ns", "name": "other"}}) is None
    assert not wakers.wake(owner(child))  # no reconciler yet: its first pass reads everything
    event = wakers.register("ns", "j")
    assert wakers.wake(owner(child)) and event.is_set()
    assert not wakers.wake(("other-ns", "j"))
    wakers.unregister("ns", "j")
    assert not wakers.wake(owner(child)) and len(wakers) == 0


def test_a_replayed_event_is_not_a_change():
    """A re-established watch re-lists every object (kmock on every reconnect, an API server
    after 410 Gone): only a real change, a new object or a deletion wakes a reconciler."""
    changes = Changes()
    job = {"metadata": {"namespace": "ns", "name": "j-sample", "uid": "u1", "resourceVersion": "5"},
           "status": {"active": 1}}
    assert changes.changed("jobs", job, None)  # first sight (the initial listing)
    assert not changes.changed("jobs", job, "ADDED")  # replayed as is
    assert not changes.changed("jobs", {**job, "metadata": {**job["metadata"], "resourceVersion": "6"}}, "MODIFIED")
    assert changes.changed("jobs", {**job, "status": {"succeeded": 1}}, "MODIFIED")
    assert changes.changed("deployments", job, None)  # another kind, another object
    assert changes.changed("jobs", job, "DELETED") and len(changes) == 1
    assert changes.changed("jobs", job, "ADDED")  # re-created under the same name
