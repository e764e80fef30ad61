"""Training backends on the emulator: preemption and resume, per-job backend choice, and a
backend whose API the cluster does not serve (the full lifecycle, failure, restart, deletion
and suspend run per backend in test_lifecycle.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

NAME = "marco-o1-pruned"
TRAINJOBS = "trainer.kubeflow.org/v1alpha1/trainjobs"


def phase(cluster, name=NAME):
    return ((cluster.obj("pruningjobs", name) or {}).get("status") or {}).get("phase")


def condition(cluster, type_, name=NAME):
    conds = ((cluster.obj("pruningjobs", name) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_), None)


async def to_training(cluster, wait, name):
    await wait(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), what="reference sampler")
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait(lambda: cluster.obj("jobs", f"{name}-sample"), what="sampling job")
    await cluster.job_done(f"{name}-sample")
    await wait(lambda: phase(cluster, name) == "Training", what="Training")


@pytest.mark.parametrize("training_backend", ["trainjob", "pytorchjob", "job"])
async def test_preempted_training_resumes_in_place(cluster, run_operator, wait, make_job):
    """A node preempted mid-training: the backend's controller restarts it (the trainer resumes
    from its last S3 checkpoint, tests/reliability/test_preemption.py); the operator keeps the
    job in Training, neither fails it nor creates a second training object, then moves on."""
    job = make_job(NAME)
    job["spec"]["training"]["trainer"]["workers"] = 1
    async with run_operator():
        await cluster.create("pruningjobs", job)
        await to_training(cluster, wait, NAME)
        await wait(lambda: cluster.train_obj(NAME), what="training object")
        uid = cluster.train_obj(NAME)["metadata"].get("uid")
        seen = len(list(cluster.emu))
        await cluster.training(NAME, "Running")
        await cluster.training(NAME, "Restarting")
        await asyncio.sleep(0.5)  # several resyncs (0.1 s) while a node is down
        assert phase(cluster) == "Training" and condition(cluster, "Failed") is None
        await cluster.training(NAME, "Running")
        await asyncio.sleep(0.3)
        creates = [r for r in list(cluster.emu)[seen:] if r.method == "POST" and "events" not in r.url.path]
        assert creates == []
        assert cluster.train_obj(NAME)["metadata"].get("uid") == uid
        await cluster.training(NAME, "Succeeded")
        await wait(lambda: phase(cluster) == "Evaluating", what="Evaluating")
        assert condition(cluster, "Trained")["status"] == "True"


@pytest.mark.parametrize("training_backend", ["trainjob"])
async def test_spec_backend_overrides_the_operator_default(cluster, run_operator, wait, make_job):
    job = make_job("plain-k8s")
    job["spec"]["training"]["backend"] = "job"
    job["spec"]["storage"]["uri"] = "s3://o1pruner-runs/plain-k8s"
    async with run_operator():
        await cluster.create("pruningjobs", job)
        await to_training(cluster, wait, "plain-k8s")
        await wait(lambda: cluster.obj("jobs", "plain-k8s-train"), what="the Indexed Job")
        assert cluster.obj("services", "plain-k8s-train")["spec"]["clusterIP"] == "None"
        assert cluster.names("trainjobs") == []
        assert cluster.obj("pruningjobs", "plain-k8s")["status"]["trainingBackend"] == "job"
        await cluster.training("plain-k8s", "Succeeded", backend="job")
        await wait(lambda: phase(cluster, "plain-k8s") == "Evaluating", what="Evaluating")


@pytest.mark.parametrize("training_backend", ["trainjob"])
async def test_backend_api_missing_fails_the_job_before_sampling(cluster, run_operator, wait, make_job, caplog):
    """No Kubeflow Trainer in the cluster: the operator says so at start (discovery); the job
    fails at once with TrainingBackendMissing (no sampler started, no retry loop); a job that
    asks for the ``job`` backend still runs."""
    del cluster.emu.resources[TRAINJOBS]
    caplog.set_level(logging.INFO, logger="o1pruner_operator")
    plain = make_job("plain-k8s")
    plain["spec"]["training"]["backend"] = "job"
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await cluster.create("pruningjobs", plain)
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
        failed = condition(cluster, "Failed")
        assert failed["reason"] == "TrainingBackendMissing"
        assert "trainer.kubeflow.org/v1alpha1" in failed["message"] and "Kubeflow Trainer" in failed["message"]
        assert "O1PRUNER_TRAINING_BACKEND" in failed["message"]
        assert cluster.obj("deployments", f"{NAME}-sampler-reference") is None
        # the other job is unaffected
        await wait(lambda: cluster.obj("deployments", "plain-k8s-sampler-reference"), what="plain job's sampler")
        # no hot loop: the failed job is terminal, discovery is not asked again and again
        before = sum(1 for r in list(cluster.emu) if r.url.path.startswith("/apis/trainer.kubeflow.org"))
        await asyncio.sleep(1.0)
        after = sum(1 for r in list(cluster.emu) if r.url.path.startswith("/apis/trainer.kubeflow.org"))
        assert after - before <= 1, f"{after - before} discovery calls in 1 s"
        assert phase(cluster) == "Failed"
    started = [r.getMessage() for r in caplog.records if "training backends the cluster serves" in r.getMessage()]
    assert started and "'trainjob': False, 'pytorchjob': True, 'job': True" in started[0], started


@pytest.mark.parametrize("training_backend", ["pytorchjob"])
async def test_a_new_operator_default_does_not_switch_a_running_job(cluster, run_operator, operator_config,
                                                                     wait, make_job):
    """The backend a job started with is kept in status.trainingBackend: an operator restarted
    with another default keeps following the PyTorchJob and creates no TrainJob."""
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await to_training(cluster, wait, NAME)
        await wait(lambda: cluster.obj("pytorchjobs", f"{NAME}-train"), what="PyTorchJob")
    assert cluster.obj("pruningjobs", NAME)["status"]["trainingBackend"] == "pytorchjob"
    async with run_operator(config=dataclasses.replace(operator_config, training_backend="trainjob")):
        await cluster.training(NAME, "Succeeded")
        await wait(lambda: phase(cluster) == "Evaluating", what="Evaluating")
        assert cluster.names("trainjobs") == []
        assert cluster.obj("pruningjobs", NAME)["status"]["trainingBackend"] == "pytorchjob"
        await cluster.delete("pruningjobs", NAME)
        await wait(lambda: cluster.obj("pruningjobs", NAME) is None, what="deleted")
        # the deletion found the job's backend too (deleted by the operator: kmock has no GC)
        await wait(lambda: cluster.names("pytorchjobs") == [], what="the PyTorchJob deleted")
