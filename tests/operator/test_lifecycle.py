"""The real kopf operator against the kmock emulator: a PruningJob through every phase."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import aiohttp
import pytest
import training_fakes  # tests/training_fakes.py (tests/operator/conftest.py puts tests/ on the path)
from prometheus_client import generate_latest

from o1pruner_operator import metrics

NS = "research"
NAME = "marco-o1-pruned"
#: Tests of the training phase run once per training backend (the operator's default backend).
all_backends = pytest.mark.parametrize("training_backend", ["trainjob", "pytorchjob", "job"])
RUNNING_REASON = training_fakes.RUNNING_REASON  # the Trained condition's reason while it runs

RESULTS = {
    "datasets": {
        "math500": {"baseAccuracy": 0.72, "prunedAccuracy": 0.75, "baseLength": 2100.0,
                    "prunedLength": 1350.0, "lengthReduction": 0.357, "aes": 1.9},
        "gsm8k": {"base_accuracy": 0.9, "pruned_accuracy": 0.91, "base_length": 800, "pruned_length": 500},
    },
}


def phase(cluster, name=NAME):
    return ((cluster.obj("pruningjobs", name) or {}).get("status") or {}).get("phase")


def condition(cluster, type_, name=NAME):
    conds = ((cluster.obj("pruningjobs", name) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_), None)


async def drive_to_training(cluster, wait, name=NAME):
    await wait(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), what="reference sampler")
    await wait(lambda: cluster.obj("services", f"{name}-sampler-reference"), what="sampler service")
    await wait(lambda: phase(cluster, name) == "Sampling", what="Sampling")
    assert cluster.obj("jobs", f"{name}-sample") is None, "sampling must wait for a ready sampler"
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait(lambda: cluster.obj("jobs", f"{name}-sample"), what="sampling job")
    await cluster.job_done(f"{name}-sample")
    await wait(lambda: cluster.train_obj(name), what=f"the {cluster.backend} training object")


async def finish_evaluation(cluster, wait, results: dict, name=NAME) -> None:
    """The eval Job (of a ready pruned sampler) succeeds with ``results`` as its
    container's termination message."""
    await wait(lambda: cluster.obj("jobs", f"{name}-evaluate"), what="eval job")
    await cluster.evaluation_done(name, results)


@all_backends
async def test_full_lifecycle(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)

        # Sampler Deployment and Service, from the spec.
        dep = cluster.obj("deployments", f"{NAME}-sampler-reference")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert c["image"] == "vllm/vllm-openai:v0.11.0"
        args = c["args"]
        assert args[args.index("--model") + 1] == "AIDC-AI/Marco-o1"
        assert args[args.index("--tensor-parallel-size") + 1] == "8"
        assert args[args.index("--served-model-name") + 1] == "marco-o1"
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 8
        assert c["startupProbe"]["httpGet"]["path"] == c["readinessProbe"]["httpGet"]["path"] == "/v1/models"
        pod = dep["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}} in pod["volumes"]
        svc = cluster.obj("services", f"{NAME}-sampler-reference")
        assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        job = cluster.obj("jobs", f"{NAME}-sample")
        cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
        assert cmd[:3] == ["o1pruner", "sample", "/etc/o1pruner/job.yaml"]
        assert cmd[cmd.index("--endpoint") + 1] == f"http://{NAME}-sampler-reference.{NS}.svc:8000/v1"
        assert "--eval-base" in cmd
        cm = cluster.obj("configmaps", f"{NAME}-config")
        assert "job.yaml" in cm["data"] and "deepspeed.json" in cm["data"]

        # Training: sampler scaled to zero, the training object running.
        await wait(lambda: phase(cluster) == "Training", what="Training")
        assert cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["replicas"] == 0
        assert condition(cluster, "ReferenceSampled")["status"] == "True"
        train = cluster.train_obj(NAME)
        if cluster.backend == "pytorchjob":
            assert train["spec"]["nprocPerNode"] == "8"
            assert train["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
        elif cluster.backend == "trainjob":
            assert train["spec"]["trainer"]["numNodes"] == 1 and train["spec"]["trainer"]["numProcPerNode"] == 8
            assert train["spec"]["runtimeRef"]["name"] == "torch-distributed"
        else:
            assert train["spec"]["completionMode"] == "Indexed" and train["spec"]["completions"] == 1
            svc = cluster.obj("services", f"{NAME}-train")
            assert svc["spec"]["clusterIP"] == "None"
            assert svc["metadata"]["ownerReferences"][0]["name"] == NAME
        assert cluster.obj("pruningjobs", NAME)["status"]["trainingBackend"] == cluster.backend
        await cluster.training(NAME, "Running")
        await wait(lambda: (condition(cluster, "Trained") or {}).get("reason") == RUNNING_REASON[cluster.backend],
                   what="Trained=False while running")
        if cluster.backend == "trainjob":  # the Trainer's progress (status.trainerStatus) is surfaced
            await wait(lambda: cluster.obj("pruningjobs", NAME)["status"].get("training"), what="progress")
            assert cluster.obj("pruningjobs", NAME)["status"]["training"]["progressPercentage"] == 40
            assert "40% done" in condition(cluster, "Trained")["message"]
        await cluster.training(NAME, "Succeeded")

        # Evaluating: a sampler for the pruned checkpoint (fetched from S3), then the eval Job.
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-pruned"), what="pruned sampler")
        await wait(lambda: phase(cluster) == "Evaluating", what="Evaluating")
        pruned = cluster.obj("deployments", f"{NAME}-sampler-pruned")["spec"]["template"]["spec"]
        assert pruned["initContainers"][0]["command"] == [
            "o1pruner", "fetch-model", "s3://o1pruner-runs/marco-o1-pruned/train/model", "/models/pruned"]
        await cluster.deployment_ready(f"{NAME}-sampler-pruned")
        await finish_evaluation(cluster, wait, RESULTS)
        await wait(lambda: phase(cluster) == "Succeeded", what="Succeeded")

        status = cluster.obj("pruningjobs", NAME)["status"]
        assert status["results"]["datasets"]["math500"]["prunedAccuracy"] == 0.75
        assert status["results"]["datasets"]["gsm8k"]["lengthReduction"] == 0.375
        assert abs(status["summary"]["prunedAccuracy"] - 0.83) < 1e-9
        for t in ("ReferenceSampled", "Trained", "Evaluated", "Ready"):
            assert condition(cluster, t)["status"] == "True", t
            assert condition(cluster, t)["observedGeneration"] == 1
            assert condition(cluster, t)["lastTransitionTime"]
        assert status["artifacts"]["referenceStats"] == "s3://o1pruner-runs/marco-o1-pruned/reference/stats.jsonl"
        assert status["artifacts"]["report"] == "s3://o1pruner-runs/marco-o1-pruned/report/report.json"
        assert status["artifacts"]["model"].startswith("s3://o1pruner-runs/marco-o1-pruned/train/")
        assert status["observedGeneration"] == 1
        assert cluster.obj("deployments", f"{NAME}-sampler-pruned")["spec"]["replicas"] == 0

        # Every child is owned by the job and labelled.
        uid = cluster.obj("pruningjobs", NAME)["metadata"]["uid"]
        for kind, child in [("deployments", f"{NAME}-sampler-reference"), ("services", f"{NAME}-sampler-pruned"),
                            ("jobs", f"{NAME}-sample"), ("jobs", f"{NAME}-evaluate"),
                            (cluster.train_kind, f"{NAME}-train"), ("configmaps", f"{NAME}-config")]:
            meta = cluster.obj(kind, child)["metadata"]
            assert meta["ownerReferences"][0]["uid"] == uid and meta["ownerReferences"][0]["controller"]
            assert meta["labels"]["app.kubernetes.io/instance"] == NAME
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "o1pruner-operator"

        # Metrics (names are a contract with the dashboards). The gauge is set when the operator's
        # status write returns, which can be after the test sees the stored phase: it is awaited.
        await wait(lambda: 'o1pruner_operator_jobs{phase="Succeeded"} 1.0' in generate_latest(metrics.REGISTRY).decode(),
                   what="the jobs gauge at Succeeded")
        text = generate_latest(metrics.REGISTRY).decode()
        assert 'o1pruner_operator_jobs{phase="Training"} 0.0' in text
        for ph in ("Sampling", "Training", "Evaluating"):
            assert f'o1pruner_operator_phase_duration_seconds_count{{phase="{ph}"}}' in text
        assert 'o1pruner_operator_transitions_total{from_phase="Training",to_phase="Evaluating"}' in text
        assert "o1pruner_operator_reconcile_errors_total" in text

        # Events for the transitions.
        def reasons():
            return {(cluster.obj("events", n) or {}).get("reason") for n in cluster.names("events")}
        await wait(lambda: {"Sampling", "Training", "Evaluating", "Succeeded", "ReferenceSampled",
                            "Trained", "Evaluated", "Ready"} <= reasons(), what=f"events, got {reasons()}")


async def test_diagnostics_warn_and_a_guard_failure_rejects_the_model(cluster, run_operator, wait, make_job):
    """The sample container reports 5 % truncated samples: ReferenceTruncated is True; the eval
    container reports a failed accuracy guard: the job ends with AccuracyGuardFailed naming the
    bucket, Ready False, results.accepted false and no published model."""
    verdict = {**RESULTS, "accepted": False, "guard": {
        "passed": False, "failed": ["3"], "maxAccuracyDrop": 0.01,
        "message": "accuracy guard failed (CI lower bound below −1.0 points): difficulty 3: accuracy 0.900 → "
                   "0.800, Δ -10.0 points (95 % CI -16.0 to -4.0, n=100)"}}
    truncated = {"diagnostics": {"samples": 800, "truncatedSamples": 40, "truncationRate": 0.05,
                                 "zeroRewardVarianceShare": 0.1}}
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        # the sample container reports its diagnostics: 5 % truncated → ReferenceTruncated (a warning)
        await cluster.pod(f"{NAME}-sample-abcde", {"o1pruner.dev/job": NAME, "app.kubernetes.io/component": "sample"},
                          {"phase": "Succeeded", "containerStatuses": [{"name": "sample", "restartCount": 0, "state": {
                              "terminated": {"exitCode": 0, "reason": "Completed", "message": json.dumps(truncated),
                                             "finishedAt": "2026-11-28T12:00:00Z"}}}]})
        await drive_to_training(cluster, wait)
        await wait(lambda: condition(cluster, "ReferenceTruncated"), what="ReferenceTruncated")
        assert condition(cluster, "ReferenceTruncated")["status"] == "True"
        assert "(40 of 800)" in condition(cluster, "ReferenceTruncated")["message"]
        assert cluster.obj("pruningjobs", NAME)["status"]["diagnostics"]["truncationRate"] == 0.05
        await cluster.training(NAME, "Succeeded")
        await wait(lambda: phase(cluster) == "Evaluating", what="Evaluating")
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-pruned"), what="pruned sampler")
        await cluster.deployment_ready(f"{NAME}-sampler-pruned")
        await finish_evaluation(cluster, wait, verdict)
        await wait(lambda: phase(cluster) == "Succeeded", what="Succeeded")
        status = cluster.obj("pruningjobs", NAME)["status"]
        guard = condition(cluster, "AccuracyGuardFailed")
        assert guard["status"] == "True" and guard["reason"] == "AccuracyDropped"
        assert "difficulty 3" in guard["message"] and "-10.0 points" in guard["message"]
        assert guard["observedGeneration"] == 1
        assert condition(cluster, "Ready")["status"] == "False"
        assert condition(cluster, "Ready")["reason"] == "AccuracyGuardFailed"
        assert status["results"]["accepted"] is False
        assert "model" not in status["artifacts"] and status["artifacts"]["rejectedModel"].endswith("/train/model/")


@all_backends
async def test_operator_restart_during_training_creates_no_duplicates(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await wait(lambda: phase(cluster) == "Training", what="Training")
    seen = len(list(cluster.emu))
    async with run_operator():
        await cluster.training(NAME, "Running")
        # The new operator reconciles (re-reads children, writes the Trained condition) ...
        await wait(lambda: (condition(cluster, "Trained") or {}).get("reason") == RUNNING_REASON[cluster.backend],
                   what="the restarted operator to observe the training object")
        creates = [r for r in list(cluster.emu)[seen:] if r.method == "POST" and "events" not in r.url.path]
        # ... and creates nothing: every child is found under its deterministic name.
        assert creates == []
        for kind in ("pytorchjobs", "trainjobs", "deployments", "jobs", "configmaps"):
            assert len(cluster.names(kind)) == len(set(cluster.names(kind)))
        train_jobs = [f"{NAME}-train"] if cluster.backend == "job" else []
        assert cluster.names("jobs") == sorted([f"{NAME}-sample", *train_jobs])
        assert f"{NAME}-train" in cluster.names(cluster.train_kind)
        assert phase(cluster) == "Training"


@all_backends
async def test_delete_mid_run_removes_children(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        job = cluster.obj("pruningjobs", NAME)
        assert not job["metadata"].get("finalizers")  # deletion never waits for the operator
        await cluster.delete("pruningjobs", NAME)
        await wait(lambda: cluster.obj("pruningjobs", NAME) is None, what="the job deleted")
        kinds = ("deployments", "services", "jobs", "pytorchjobs", "trainjobs", "configmaps")
        # The operator deletes them at once (the emulator has no garbage collector).
        await wait(lambda: all(cluster.names(kind) == [] for kind in kinds),
                   what=f"children deleted, left: { {k: cluster.names(k) for k in kinds} }")


@all_backends
async def test_failed_training_fails_the_job(cluster, run_operator, wait, make_job):
    reason, message = {
        "pytorchjob": ("PyTorchJobFailed", "PyTorchJob marco-o1-pruned-train is failed because 1 Master replica(s) failed."),
        "trainjob": ("JobsFailed", "JobSet marco-o1-pruned-train failed: replicated job node reached its failure limit"),
        "job": ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    }[cluster.backend]
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await cluster.training(NAME, "Failed", reason=reason, message=message)
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
        failed = condition(cluster, "Failed")
        assert failed["status"] == "True" and failed["reason"] == "TrainingFailed"
        assert reason in failed["message"] and message in failed["message"]
        assert condition(cluster, "Ready")["status"] == "False"
        assert "TrainingFailed" in cluster.obj("pruningjobs", NAME)["status"]["message"]


async def test_invalid_spec_fails_naming_the_field(cluster, run_operator, wait, make_job):
    job = make_job("bad-job")
    job["spec"]["sampling"]["samplesPerProblem"] = 32  # > k = 16: a cross-field rule
    job["spec"]["training"]["lambda"] = -1
    async with run_operator():
        await cluster.create("pruningjobs", job)
        await wait(lambda: phase(cluster, "bad-job") == "Failed", what="Failed")
        failed = condition(cluster, "Failed", "bad-job")
        assert failed["reason"] == "InvalidSpec"
        assert "spec.training.lambda" in failed["message"]
        assert "spec.sampling" in failed["message"] and "samplesPerProblem" in failed["message"]
        assert cluster.names("deployments") == [] and cluster.names("jobs") == []


async def test_sampler_crashloop_fails_the_job(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="sampler")
        labels = cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["template"]["metadata"]["labels"]
        await cluster.pod(f"{NAME}-sampler-reference-7d9f-x2", labels, {"phase": "Running", "containerStatuses": [
            {"name": "vllm", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]})
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
        failed = condition(cluster, "Failed")
        assert failed["reason"] == "SamplerFailed" and "CrashLoopBackOff" in failed["message"]
        assert cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["replicas"] == 0


async def test_sampling_job_backoff_exhausted_fails_the_job(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="sampler")
        await cluster.deployment_ready(f"{NAME}-sampler-reference")
        await wait(lambda: cluster.obj("jobs", f"{NAME}-sample"), what="sampling job")
        labels = cluster.obj("jobs", f"{NAME}-sample")["spec"]["template"]["metadata"]["labels"]
        for i in range(3):
            await cluster.pod(f"{NAME}-sample-{i}", labels, {"phase": "Failed", "containerStatuses": [
                {"name": "sample", "restartCount": 0, "state": {"terminated": {
                    "exitCode": 1, "reason": "Error", "finishedAt": f"2026-11-28T13:0{i}:00Z",
                    "message": f"Traceback (most recent call last):\n  ...\nStorageError: attempt {i}: "
                               "SlowDown on reference/samples.jsonl\n"}}}]})
        await cluster.job_done(f"{NAME}-sample", failed=True)
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
        failed = condition(cluster, "Failed")
        assert failed["reason"] == "SamplingFailed" and "BackoffLimitExceeded" in failed["message"]
        # The last failed pod's error, not only the Job's condition.
        assert "StorageError: attempt 2: SlowDown on reference/samples.jsonl" in failed["message"]


@all_backends
async def test_suspend_pauses_and_resume_continues(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await cluster.patch("pruningjobs", NAME, {"spec": {"suspend": True}, "metadata": {"generation": 2}})
        ptj = lambda: cluster.train_suspended(NAME)  # noqa: E731
        await wait(ptj, what="training suspended")
        await wait(lambda: (condition(cluster, "Suspended") or {}).get("status") == "True", what="Suspended")
        assert phase(cluster) == "Training"
        await cluster.patch("pruningjobs", NAME, {"spec": {"suspend": False}, "metadata": {"generation": 3}})
        await wait(lambda: not ptj(), what="training resumed")
        await wait(lambda: (condition(cluster, "Suspended") or {}).get("status") == "False", what="resumed")


async def test_spec_edit_mid_run_is_rejected(cluster, run_operator, wait, make_job):
    """The CRD's CEL rules reject it on a real API server; without them the operator fails the job."""
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: phase(cluster) == "Sampling", what="Sampling")
        await wait(lambda: (cluster.obj("pruningjobs", NAME).get("status") or {}).get("specHash"), what="hash")
        await cluster.patch("pruningjobs", NAME, {"spec": {"training": {"lambda": 5.0}},
                                                  "metadata": {"generation": 2}})
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
        assert condition(cluster, "Failed")["reason"] == "SpecChanged"


async def test_liveness_probe(cluster, run_operator):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with run_operator(liveness_endpoint=f"http://127.0.0.1:{port}/healthz"):
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # the endpoint starts shortly after the operator
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        assert resp.status == 200
                        assert (await resp.json())["reconciler"] is True
                        return
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.05)
            raise AssertionError("no /healthz")


def test_operator_never_imports_torch():
    code = "import sys, o1pruner_operator.main; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@all_backends
async def test_failure_mid_training_stops_the_training_job(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await cluster.patch("pruningjobs", NAME, {"spec": {"model": {"servedName": "other"}},
                                                  "metadata": {"generation": 2}})
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
        assert cluster.train_suspended(NAME) is True
