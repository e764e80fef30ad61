"""What every GPU user needs on a real cluster: a Hugging Face token from a Secret, RuntimeClass,
PriorityClass, affinity, a scheduler (gang scheduling for multi-node training), a model cache
that is not downloaded again at every start (a PVC, or sized emptyDirs requested as
ephemeral-storage), and Kueue: queued Jobs are created suspended and their ``suspend`` is left
to Kueue."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from o1pruner.spec import load_job, parse_spec
from o1pruner_operator.manifests import JobContext, eval_job, sample_job, sampler_deployment
from o1pruner_operator.manifests.common import LABEL_KUEUE_QUEUE
from o1pruner_operator.manifests.pytorchjob import pytorch_job

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: tests/reliability imports its own conftest
import k8s_schemas  # noqa: E402  (tests/k8s_schemas.py)

ROOT = Path(__file__).resolve().parents[2]
NS = "research"
AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}]}]}}}
PLACEMENT = {"affinity": AFFINITY, "runtimeClassName": "nvidia", "priorityClassName": "research-high",
             "schedulerName": "volcano"}


def _spec(**model: Any) -> Any:
    wire = load_job(ROOT / "examples" / "pruningjob.yaml").spec.to_wire()
    wire["model"].update(model)
    wire["model"]["source"] = "s3://models/marco-o1"  # the sampler gets the fetch-model init container
    wire["sampling"]["sampler"]["placement"].update(PLACEMENT)
    wire["training"]["trainer"]["placement"] = {**wire["training"]["trainer"].get("placement", {}), **PLACEMENT}
    wire["training"]["trainer"]["workers"] = 3
    return parse_spec(wire)


def _ctx(spec: Any, queue: str | None = None) -> JobContext:
    return JobContext(name="marco-o1-pruned", namespace=NS, uid="uid-1", spec=spec, queue_name=queue)


def _pods(ctx: JobContext) -> dict[str, dict[str, Any]]:
    ptj = pytorch_job(ctx)["spec"]["pytorchReplicaSpecs"]
    return {"sampler": sampler_deployment(ctx, "reference")["spec"]["template"]["spec"],
            "master": ptj["Master"]["template"]["spec"], "worker": ptj["Worker"]["template"]["spec"]}


def test_hf_token_comes_from_the_secret_in_every_pod_that_downloads():
    ctx = _ctx(_spec(hfTokenSecret={"name": "hf", "key": "token"}))
    ref = {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    pods = _pods(ctx)
    containers = [pods["sampler"]["containers"][0], pods["sampler"]["initContainers"][0],
                  pods["master"]["containers"][0], pods["worker"]["containers"][0],
                  sample_job(ctx)["spec"]["template"]["spec"]["containers"][0]]
    for c in containers:
        assert ref in c["env"], c["name"]


def test_runtime_class_priority_affinity_and_gang_scheduling():
    ctx = _ctx(_spec())
    for name, pod in _pods(ctx).items():
        assert pod["affinity"] == AFFINITY, name
        assert (pod["runtimeClassName"], pod["priorityClassName"], pod["schedulerName"]) == (
            "nvidia", "research-high", "volcano"), name
    policy = pytorch_job(ctx)["spec"]["runPolicy"]
    assert policy["schedulingPolicy"] == {"minAvailable": 4}  # Master + 3 Workers, all or nothing


def test_model_cache_is_a_shared_claim_or_a_sized_requested_emptydir():
    shared = _pods(_ctx(_spec(cache={"claimName": "model-cache"})))
    for name, pod in shared.items():
        assert {"name": "cache", "persistentVolumeClaim": {"claimName": "model-cache"}} in pod["volumes"], name
    sized = _pods(_ctx(_spec(cache={"size": "300Gi"})))
    for name, pod in sized.items():
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["cache"]["emptyDir"] == {"sizeLimit": "300Gi"}, name
        assert vols["tmp"]["emptyDir"]["sizeLimit"], name
        requests = pod["containers"][0]["resources"]["requests"]
        assert requests["ephemeral-storage"] == ("608Gi" if name == "sampler" else "308Gi"), name  # + models, tmp
    assert sized["sampler"]["initContainers"][0]["resources"]["requests"]["ephemeral-storage"] == "608Gi"


def test_every_plumbing_field_passes_the_strict_schemas():
    ctx = _ctx(_spec(hfTokenSecret={"name": "hf"}, cache={"claimName": "model-cache"}), queue="team-a")
    ptj = pytorch_job(ctx)["spec"]["pytorchReplicaSpecs"]
    objs = [sampler_deployment(ctx, "reference"), sample_job(ctx), eval_job(ctx)] + [
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t-{r.lower()}"}, "template": t["template"]}
        for r, t in ptj.items()]
    assert [e for o in objs for e in k8s_schemas.strict_errors(o)] == []


def test_queued_children_carry_the_queue_label_and_start_suspended():
    ctx = _ctx(_spec(), queue="team-a")
    for obj in (sample_job(ctx), eval_job(ctx)):
        assert obj["metadata"]["labels"][LABEL_KUEUE_QUEUE] == "team-a"
        assert obj["spec"]["suspend"] is True
        assert LABEL_KUEUE_QUEUE not in obj["spec"]["template"]["metadata"]["labels"]  # Kueue admits the Job
    ptj = pytorch_job(ctx)
    assert ptj["metadata"]["labels"][LABEL_KUEUE_QUEUE] == "team-a" and ptj["spec"]["runPolicy"]["suspend"] is True
    plain = sample_job(_ctx(_spec()))
    assert plain["spec"]["suspend"] is False and LABEL_KUEUE_QUEUE not in plain["metadata"]["labels"]


async def test_the_operator_leaves_suspend_to_kueue(cluster, run_operator, wait, make_job):
    """Kueue admits a queued Job by unsuspending it and preempts by suspending it; the operator,
    which used to rewrite suspend every resync, must not fight it."""
    name = "queued-job"
    job = make_job(name)
    job["metadata"]["labels"] = {LABEL_KUEUE_QUEUE: "team-a"}
    async with run_operator():
        await cluster.create("pruningjobs", job)
        await wait(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), what="sampler")
        await cluster.deployment_ready(f"{name}-sampler-reference")
        sample = await wait(lambda: cluster.obj("jobs", f"{name}-sample"), what="sample Job")
        assert sample["spec"]["suspend"] is True and sample["metadata"]["labels"][LABEL_KUEUE_QUEUE] == "team-a"
        await cluster.patch("jobs", f"{name}-sample", {"spec": {"suspend": False}})  # Kueue admits it
        await asyncio.sleep(0.8)  # ~8 resyncs
        assert cluster.obj("jobs", f"{name}-sample")["spec"]["suspend"] is False
        await cluster.patch("jobs", f"{name}-sample", {"spec": {"suspend": True}})  # Kueue preempts it
        await asyncio.sleep(0.8)
        assert cluster.obj("jobs", f"{name}-sample")["spec"]["suspend"] is True


def test_a_trainjob_refuses_placement_its_api_cannot_carry():
    """Trainer v2.3 runtime patches cannot set runtimeClassName, priorityClassName or
    schedulerName: the job fails naming the field instead of silently dropping it."""
    import pytest

    from o1pruner_operator.manifests.trainjob import train_job

    with pytest.raises(ValueError, match="placement.priorityClassName"):
        train_job(_ctx(_spec()))
