"""What each training backend builds, checked in strict mode against the schemas a real cluster
enforces: the TrainJob against Kubeflow Trainer v2.3.0's CRD (and its ``torch-distributed``
runtime), the PyTorchJob against training-operator v1.9.4's CRD, the ``job`` backend's Job and
Service with ``kubernetes-validate`` (unknown fields rejected)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from o1pruner.spec import load_job
from o1pruner_operator.backends import (
    BACKENDS, IndexedJobBackend, PyTorchJobBackend, TrainJobBackend, backend_for,
)
from o1pruner_operator.manifests import JobContext
from o1pruner_operator.manifests.torchrun_job import MASTER_PORT, torchrun_job, torchrun_service
from o1pruner_operator.manifests.trainjob import PATCH_MANAGER, train_job

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: tests/reliability imports its own conftest
import kubeflow_schemas as ks  # noqa: E402  (tests/kubeflow_schemas.py)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(ks.schema_dir() is None, reason="../shared/schemas not present")


def make_ctx(workers: int = 0, **training: Any) -> JobContext:
    job = load_job(ROOT / "examples" / "pruningjob.yaml")
    job.spec.training.trainer.workers = workers
    for key, value in training.items():
        setattr(job.spec.training, key, value)
    return JobContext(name="marco-o1-pruned", namespace="research", uid="uid-1", spec=job.spec)


@pytest.fixture(params=[0, 3], ids=["1-node", "4-nodes"])
def ctx(request) -> JobContext:
    return make_ctx(workers=request.param)


def runtime() -> dict[str, Any]:
    return ks.load_helm_yaml(ks.schema_file(ks.TORCH_DISTRIBUTED_RUNTIME))


# ----------------------------------------------------------------------------- strict schemas
@pytest.mark.parametrize("suspend", [False, True])
def test_trainjob_is_valid_against_the_v2_3_crd_in_strict_mode(ctx, suspend):
    ks.trainjob_validator().validate(train_job(ctx, suspend=suspend))


def test_pytorchjob_is_valid_against_the_v1_9_4_crd_in_strict_mode(ctx):
    ks.pytorchjob_validator().validate(PyTorchJobBackend().manifest(ctx, suspend=False))


def test_job_backend_job_and_service_are_valid_core_kinds_in_strict_mode(ctx):
    backend = IndexedJobBackend()
    ks.validate_core(backend.manifest(ctx, suspend=True))
    for _res, extra in backend.extras(ctx):
        ks.validate_core(extra)


def test_strict_validation_rejects_what_a_server_would_reject_or_drop():
    """The validators are strict: a misspelt field, a field v2.3 removed, a bad CEL-checked value."""
    ctx = make_ctx()
    tj = train_job(ctx)
    for mutate, expected in [
        (lambda o: o["spec"]["trainer"].update(numProcsPerNode=8), "numProcsPerNode"),
        # v2.0-v2.2's override list; v2.3 has runtimePatches instead.
        (lambda o: o["spec"].update(podTemplateOverrides=[{"targetJobs": [{"name": "node"}]}]),
         "podTemplateOverrides"),
        (lambda o: o["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
         ["template"]["spec"]["template"]["spec"]["containers"][0].update(ports=[{"containerPort": 1}]), "ports"),
        (lambda o: o["spec"].update(managedBy="someone-else"), "ManagedBy must be"),
        (lambda o: o["metadata"].update(name="Upper"), "RFC 1035"),
        (lambda o: o["metadata"].update(labelz={}), "labelz"),
    ]:
        bad = copy.deepcopy(tj)
        mutate(bad)
        errors = "\n".join(ks.trainjob_validator().errors(bad))
        assert expected in errors, (expected, errors)
    ptj = PyTorchJobBackend().manifest(ctx, suspend=False)
    ptj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "x"
    assert any("imagePullPolicyy" in e for e in ks.pytorchjob_validator().errors(ptj))
    job = torchrun_job(ctx)
    job["spec"]["completionsMode"] = "Indexed"
    with pytest.raises(ks.StrictValidationError, match="completionsMode"):
        ks.validate_core(job)


def test_the_shipped_runtimes_pass_the_same_validator():
    """The converter accepts what Kubeflow itself ships (no false positives from the conversion)."""
    assert ks.cluster_training_runtime_validator().errors(runtime()) == []


# ------------------------------------------------------------------- TrainJob vs the runtime
def test_trainjob_matches_what_torch_distributed_expects(ctx):
    rt = runtime()
    tj = TrainJobBackend().manifest(ctx, suspend=False)
    assert tj["spec"]["runtimeRef"] == {"apiGroup": rt["apiVersion"].split("/")[0], "kind": rt["kind"],
                                        "name": rt["metadata"]["name"]}
    assert "torch" in rt["spec"]["mlPolicy"]  # the torch plugin injects the PET_* env torchrun reads
    assert tj["spec"]["trainer"]["command"][0] == "torchrun"
    assert not [e for e in tj["spec"]["trainer"]["env"] if e["name"].startswith("PET_")]

    (patch,) = tj["spec"]["runtimePatches"]
    assert patch["manager"] == PATCH_MANAGER
    (rj_patch,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    replicated = {rj["name"]: rj for rj in rt["spec"]["template"]["spec"]["replicatedJobs"]}
    assert rj_patch["name"] in replicated, f"no replicated job {rj_patch['name']!r} in {list(replicated)}"
    target = replicated[rj_patch["name"]]
    # the Trainer applies spec.trainer (image, command, resources, numNodes) to this job only
    assert target["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    runtime_containers = {c["name"] for c in target["template"]["spec"]["template"]["spec"]["containers"]}
    pod_patch = rj_patch["template"]["spec"]["template"]["spec"]
    for c in pod_patch["containers"]:
        assert c["name"] in runtime_containers, f"patch targets container {c['name']!r}, runtime has {runtime_containers}"
        volumes = {v["name"] for v in pod_patch["volumes"]}
        assert {m["name"] for m in c["volumeMounts"]} <= volumes
        assert {"config", "dshm"} <= {m["name"] for m in c["volumeMounts"]}
    assert {"name": "config", "configMap": {"name": "marco-o1-pruned-config"}} in pod_patch["volumes"]


def test_trainjob_carries_the_spec(ctx):
    tj = train_job(ctx, runtime="my-torch", suspend=True)
    trainer = tj["spec"]["trainer"]
    assert tj["spec"]["runtimeRef"]["name"] == "my-torch" and tj["spec"]["suspend"] is True
    assert trainer["image"] == "ghcr.io/o1-pruner/trainer:0.1.0"
    assert trainer["numNodes"] == ctx.spec.training.trainer.workers + 1
    assert trainer["numProcPerNode"] == 8
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 8
    env = {e["name"]: e for e in trainer["env"]}
    assert env["O1PRUNER_DEEPSPEED_CONFIG"]["value"] == "/etc/o1pruner/deepspeed.json"
    assert "value" not in env["AWS_ACCESS_KEY_ID"] and env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]
    pod = tj["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["metadata"]["labels"]["o1pruner.dev/job"] == "marco-o1-pruned"
    assert tj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


# ----------------------------------------------------------------------------- job backend
def test_job_backend_static_rendezvous(ctx):
    nodes = ctx.spec.training.trainer.workers + 1
    job, svc = torchrun_job(ctx), torchrun_service(ctx)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == nodes
    pod = spec["template"]["spec"]
    # Indexed Job pods are named <job>-<index>; with subdomain = the headless Service, DNS resolves
    # <job>-0.<service> to the index-0 pod.
    assert pod["subdomain"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["PET_MASTER_ADDR"]["value"] == f"{job['metadata']['name']}-0.{svc['metadata']['name']}"
    assert env["PET_MASTER_PORT"]["value"] == str(MASTER_PORT)
    assert env["PET_NNODES"]["value"] == str(nodes) and env["PET_NPROC_PER_NODE"]["value"] == "8"
    assert env["PET_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert c["command"][:2] == ["torchrun", "--no-python"]
    # preemption is not a failure: evicted pods are replaced without spending the backoff limit
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in spec["podFailurePolicy"]["rules"]
    assert pod["restartPolicy"] == "Never"
    # one pod template for all nodes: the metrics port (no Pushgateway) only when the single node is rank 0
    ctx.spec.metrics.pushgateway_url = None
    ports = torchrun_job(ctx)["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert any(p.get("name") == "metrics" for p in ports) == (nodes == 1)


# ------------------------------------------------------------------------ status and suspend
def test_trainjob_state_from_its_conditions():
    backend = TrainJobBackend()
    meta = {"name": "j-train"}
    assert backend.state({"metadata": meta}).state == "Pending"
    running = {"metadata": meta, "spec": {"suspend": False}, "status": {
        "jobsStatus": [{"name": "node", "active": 2, "ready": 2, "succeeded": 0, "failed": 0, "suspended": 0}],
        "trainerStatus": {"progressPercentage": 40, "estimatedRemainingSeconds": 600,
                          "lastUpdatedTime": "2026-11-30T10:00:00Z", "metrics": [{"name": "loss", "value": "0.5"}]}}}
    st = backend.state(running)
    assert st.state == "Running" and "40% done" in st.message
    assert st.progress == {"progressPercentage": 40, "estimatedRemainingSeconds": 600,
                           "lastUpdatedTime": "2026-11-30T10:00:00Z", "metrics": {"loss": "0.5"}}
    failed = {"metadata": meta, "status": {"conditions": [
        {"type": "Suspended", "status": "False", "reason": "Resumed"},
        {"type": "Failed", "status": "True", "reason": "JobsFailed", "message": "node-0 failed: exit 1"}]}}
    assert (backend.state(failed).state, backend.state(failed).reason) == ("Failed", "JobsFailed")
    done = {"metadata": meta, "status": {"conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted"}]}}
    assert backend.state(done).state == "Succeeded"
    susp = {"metadata": meta, "spec": {"suspend": True},
            "status": {"conditions": [{"type": "Suspended", "status": "True", "reason": "Suspended"}]}}
    assert backend.state(susp).state == "Suspended"
    assert backend.suspend_patch(susp, True) is None
    assert backend.suspend_patch(susp, False) == {"spec": {"suspend": False}}


def test_indexed_job_state():
    backend = IndexedJobBackend()
    meta = {"name": "j-train"}
    assert backend.state({"metadata": meta, "spec": {"completions": 2}}).state == "Pending"
    st = backend.state({"metadata": meta, "spec": {"completions": 2}, "status": {"active": 2, "ready": 1}})
    assert st.state == "Running" and "2 of 2" in st.message
    failed = backend.state({"metadata": meta, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the limit"}]}})
    assert (failed.state, failed.reason) == ("Failed", "BackoffLimitExceeded")
    assert backend.state({"metadata": meta, "status": {"conditions": [
        {"type": "Complete", "status": "True"}], "succeeded": 2}}).state == "Succeeded"
    assert backend.state({"metadata": meta, "spec": {"suspend": True}}).state == "Suspended"
    assert backend.suspend_patch({"spec": {"suspend": False}}, True) == {"spec": {"suspend": True}}


def test_backend_registry():
    assert [backend_for(b).name for b in BACKENDS] == list(BACKENDS)
    assert backend_for("pytorch").name == "pytorchjob"
    assert backend_for("trainjob", trainjob_runtime="deepspeed-distributed").runtime == "deepspeed-distributed"
    with pytest.raises(ValueError, match="known: trainjob, pytorchjob, job"):
        backend_for("mpijob")
    names = make_ctx().names
    assert IndexedJobBackend().children(names) == [(IndexedJobBackend.resource, "marco-o1-pruned-train"),
                                                   (IndexedJobBackend().extras(make_ctx())[0][0], "marco-o1-pruned-train")]


def test_pruningjob_status_shows_backend_and_progress():
    from o1pruner.crd import build_crd

    version = build_crd()["spec"]["versions"][0]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Train %"]["jsonPath"] == ".status.training.progressPercentage"
    assert columns["Backend"]["jsonPath"] == ".status.trainingBackend"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert status["trainingBackend"]["enum"] == list(BACKENDS)
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["training"]["properties"]
    assert spec["backend"]["enum"] == list(BACKENDS) and "default" not in spec["backend"]


@pytest.mark.parametrize("pushgateway", [True, False])
def test_trainjob_carries_every_field_of_the_trainer_pod(pushgateway):
    """Nothing the other backends put on a training pod is dropped silently: each pod and
    container field goes to spec.trainer or the runtime patch, or is listed as not expressible
    in v2.3 (and documented). A new pod field (e.g. priorityClassName) fails here until it is
    mapped or documented."""
    from o1pruner_operator.manifests.trainer import trainer_pod
    from o1pruner_operator.manifests.trainjob import (
        CONTAINER_PATCH_FIELDS, NOT_EXPRESSIBLE, POD_PATCH_FIELDS, TRAINER_CONTAINER, TRAINER_FIELDS,
    )

    ctx = make_ctx(workers=1)
    if not pushgateway:
        ctx.spec.metrics.pushgateway_url = None
    pod = trainer_pod(ctx, TRAINER_CONTAINER, serves_metrics=True)
    (container,) = pod.pop("containers")
    assert set(pod) <= set(POD_PATCH_FIELDS), f"pod fields a v2.3 runtime patch cannot set: {set(pod) - set(POD_PATCH_FIELDS)}"
    carried = {"name", *CONTAINER_PATCH_FIELDS, *TRAINER_FIELDS}
    assert set(container) <= carried | NOT_EXPRESSIBLE, set(container) - carried - NOT_EXPRESSIBLE
    tj = train_job(ctx)
    patch_pod = tj["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["spec"]
    assert {k: patch_pod[k] for k in pod} == pod
    for src, dst in TRAINER_FIELDS.items():
        assert tj["spec"]["trainer"][dst] == container[src]
    ks.trainjob_validator().validate(tj)
