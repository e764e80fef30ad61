"""What a real API server does that the emulator does not by default, injected with kmock
reactions: a training API that is not installed (404 on create), RBAC or an admission plugin
refusing a create (403), a webhook rejecting a manifest (422), a transient error mid-transition,
and a leftover child of another job under the expected name.

Each must leave a stored phase, a condition that says why, no replay of a finished phase (no
GPU sampler scaled up again) and no create retried on every pass."""

from __future__ import annotations

import asyncio

import pytest

from o1pruner_operator import reconcile

NS = "research"
NAME = "marco-o1-pruned"
STATUS = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}


def status(cluster, name=NAME):
    return (cluster.obj("pruningjobs", name) or {}).get("status") or {}


def condition(cluster, type_, name=NAME):
    return next((c for c in status(cluster, name).get("conditions") or [] if c["type"] == type_), None)


def requests(cluster, criteria: str) -> int:
    return len(list(cluster.emu[criteria]))


def refuse(cluster, criteria: str, code: int, reason: str, message: str, child: str | None = None) -> None:
    """Requests matching ``criteria`` get this error. The emulator still stores what a refused POST
    carried, so GETs of ``child`` are answered 404, as a real API server would (nothing created)."""
    cluster.emu[criteria] << code << {**STATUS, "code": code, "reason": reason, "message": message}
    if child is not None:
        path = criteria.split(" ", 1)[1]
        cluster.emu[f"get {path}/{child}"] << 404 << {**STATUS, "code": 404, "reason": "NotFound",
                                                       "message": f"{child} not found"}


def sampler_scale_ups(cluster) -> int:
    """PATCHes that scaled the reference sampler up (a replay of the sampling phase)."""
    return sum(1 for r in cluster.emu[SAMPLER_PATCHES] if ((r.data or {}).get("spec") or {}).get("replicas"))


async def finish_sampling(cluster, wait, name=NAME):
    await wait(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), what="reference sampler")
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait(lambda: cluster.obj("jobs", f"{name}-sample"), what="sampling job")
    await cluster.job_done(f"{name}-sample")


SAMPLER_PATCHES = f"patch /apis/apps/v1/namespaces/{NS}/deployments/{NAME}-sampler-reference"
TRAIN_CREATES = f"post /apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs"


async def test_a_missing_training_api_blocks_training_without_replaying_sampling(cluster, run_operator, wait,
                                                                                 make_job):
    refuse(cluster, TRAIN_CREATES, 404, "NotFound", "the server could not find the requested resource",
           child=f"{NAME}-train")
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await finish_sampling(cluster, wait)
        blocked = await wait(lambda: condition(cluster, "Blocked"), what="Blocked condition")
        assert status(cluster)["phase"] == "Training"  # stored before training was attempted
        assert blocked["status"] == "True" and blocked["reason"] == "TrainingBackendMissing"
        assert "PyTorchJob" in blocked["message"] and "kubeflow.org/v1" in blocked["message"]
        assert condition(cluster, "Ready")["reason"] == "TrainingBackendMissing"
        assert condition(cluster, "ReferenceSampled")["status"] == "True"
        patches, creates = requests(cluster, SAMPLER_PATCHES), requests(cluster, TRAIN_CREATES)
        await asyncio.sleep(1.5)  # ~15 resync passes (0.1 s)
        assert requests(cluster, TRAIN_CREATES) == creates == 1, "the refused create must not be retried every pass"
        assert requests(cluster, SAMPLER_PATCHES) == patches, "the finished sampling phase was replayed"
        assert sampler_scale_ups(cluster) == 0
        assert cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["replicas"] == 0
        assert status(cluster).get("retryAfter")


@pytest.mark.parametrize("criteria,code,reason,expected,child", [
    (f"post /apis/batch/v1/namespaces/{NS}/jobs", 403, "Forbidden", "Forbidden", f"{NAME}-sample"),
    (f"post /apis/apps/v1/namespaces/{NS}/deployments", 422, "Invalid", "Invalid", f"{NAME}-sampler-reference"),
    (f"post /api/v1/namespaces/{NS}/services", 400, "BadRequest", "Invalid", f"{NAME}-sampler-reference"),
])
async def test_a_refused_create_sets_a_condition_and_is_not_retried_in_a_loop(
        cluster, run_operator, wait, make_job, criteria, code, reason, expected, child):
    refuse(cluster, criteria, code, reason, "refused by the test", child=child)
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        if "jobs" in criteria:
            await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="reference sampler")
            await cluster.deployment_ready(f"{NAME}-sampler-reference")
        blocked = await wait(lambda: condition(cluster, "Blocked"), what="Blocked condition")
        assert (blocked["status"], blocked["reason"]) == ("True", expected)
        assert "refused by the test" in blocked["message"]
        assert status(cluster)["phase"] == "Sampling"
        attempts = requests(cluster, criteria)
        await asyncio.sleep(1.5)  # ~15 resync passes
        assert requests(cluster, criteria) == attempts == 1, "the refused create must not be retried every pass"
        assert condition(cluster, "Blocked")["status"] == "True"


async def test_a_transition_is_stored_before_the_next_phase_acts(cluster, run_operator, wait, make_job):
    """A transient error (500) creating the PyTorchJob: the phase is already Training, and the
    retries (with the daemon's backoff) never scale the reference sampler up again."""
    cluster.emu[TRAIN_CREATES] << 500 << {**STATUS, "code": 500, "reason": "InternalError",
                                          "message": "etcdserver: request timed out"}
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await finish_sampling(cluster, wait)
        await wait(lambda: cluster.obj("pytorchjobs", f"{NAME}-train"), what="the PyTorchJob, on a retry")
        assert status(cluster)["phase"] == "Training"
        assert sampler_scale_ups(cluster) == 0, "the retry replayed the sampling phase"
        assert cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["replicas"] == 0
        assert condition(cluster, "Blocked") is None  # a 500 is retried, not a refusal


async def test_a_leftover_child_of_another_job_is_not_adopted(cluster, run_operator, wait, make_job):
    """A completed ``<job>-sample`` Job owned by an earlier PruningJob of the same name must not
    mark sampling done."""
    await cluster.create_foreign_job(f"{NAME}-sample", NAME)
    await cluster.job_done(f"{NAME}-sample")
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        blocked = await wait(lambda: condition(cluster, "Blocked"), what="Blocked condition")
        assert blocked["reason"] == "ChildConflict" and "an-earlier-job" in blocked["message"]
        await asyncio.sleep(0.5)
        assert status(cluster)["phase"] == "Sampling"
        assert cluster.obj("pytorchjobs", f"{NAME}-train") is None
        assert cluster.obj("deployments", f"{NAME}-sampler-reference") is None  # no GPU pod for it


def test_blocked_reasons():
    assert reconcile.blocked_reason(403, False) == "Forbidden"
    assert reconcile.blocked_reason(404, True) == "TrainingBackendMissing"
    assert reconcile.blocked_reason(422, False) == reconcile.blocked_reason(400, False) == "Invalid"
    assert reconcile.blocked_reason(500, False) is None and reconcile.blocked_reason(409, False) is None
