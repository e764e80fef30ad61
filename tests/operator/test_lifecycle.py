"""The real kopf operator against the kmock emulator: a PruningJob through every phase."""

from __future__ import annotations

import json

NS = "research"
NAME = "marco-o1-pruned"

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
    assert phase(cluster, name) == "Sampling"
    assert cluster.obj("jobs", f"{name}-sample") is None, "sampling must wait for a ready sampler"
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait(lambda: cluster.obj("jobs", f"{name}-sample"), what="sampling job")
    await cluster.job_done(f"{name}-sample")
    await wait(lambda: cluster.obj("pytorchjobs", f"{name}-train"), what="PyTorchJob")


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
        assert c["startupProbe"]["httpGet"]["path"] == "/health"
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

        # Training: sampler scaled to zero, PyTorchJob running.
        await wait(lambda: phase(cluster) == "Training", what="Training")
        assert cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["replicas"] == 0
        assert condition(cluster, "ReferenceSampled")["status"] == "True"
        ptj = cluster.obj("pytorchjobs", f"{NAME}-train")
        assert ptj["spec"]["nprocPerNode"] == "8"
        assert ptj["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
        await cluster.pytorchjob(f"{NAME}-train", "Running")
        await cluster.pytorchjob(f"{NAME}-train", "Succeeded")

        # Evaluating: a sampler for the pruned checkpoint (fetched from S3), then the eval Job.
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-pruned"), what="pruned sampler")
        await wait(lambda: phase(cluster) == "Evaluating", what="Evaluating")
        pruned = cluster.obj("deployments", f"{NAME}-sampler-pruned")["spec"]["template"]["spec"]
        assert pruned["initContainers"][0]["command"] == [
            "o1pruner", "fetch-model", "s3://o1pruner-runs/marco-o1-pruned/train/model", "/models/pruned"]
        await cluster.deployment_ready(f"{NAME}-sampler-pruned")
        await wait(lambda: cluster.obj("jobs", f"{NAME}-evaluate"), what="eval job")
        labels = cluster.obj("jobs", f"{NAME}-evaluate")["spec"]["template"]["metadata"]["labels"]
        await cluster.pod(f"{NAME}-evaluate-abcde", labels, {"phase": "Succeeded", "containerStatuses": [
            {"name": "evaluate", "restartCount": 0, "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "message": json.dumps(RESULTS),
                "finishedAt": "2026-11-28T13:00:00Z"}}}]})
        await cluster.job_done(f"{NAME}-evaluate")
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
                            ("pytorchjobs", f"{NAME}-train"), ("configmaps", f"{NAME}-config")]:
            meta = cluster.obj(kind, child)["metadata"]
            assert meta["ownerReferences"][0]["uid"] == uid and meta["ownerReferences"][0]["controller"]
            assert meta["labels"]["app.kubernetes.io/instance"] == NAME
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "o1pruner-operator"

        # Events for the transitions.
        def reasons():
            return {(cluster.obj("events", n) or {}).get("reason") for n in cluster.names("events")}
        await wait(lambda: {"Sampling", "Training", "Evaluating", "Succeeded", "ReferenceSampled",
                            "Trained", "Evaluated", "Ready"} <= reasons(), what=f"events, got {reasons()}")
