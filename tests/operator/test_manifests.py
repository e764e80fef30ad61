"""Pure manifest builders: deterministic, secure, valid against the required fields of the
published schemas (Kubernetes apps/v1 Deployment, batch/v1 Job, kubeflow.org/v1 PyTorchJob)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from o1pruner.deepspeed_config import build_deepspeed_config
from o1pruner.spec import load_job
from o1pruner_operator.backends import PyTorchJobBackend
from o1pruner_operator.manifests import (
    JobContext, config_map, eval_job, pytorch_job, sample_job, sampler_deployment, sampler_service,
)

ROOT = Path(__file__).resolve().parents[2]

# Required fields, as in the published OpenAPI of Kubernetes 1.30 (io.k8s.api.*) and the
# training-operator's kubeflow.org_pytorchjobs CRD (v1.8). Only what these objects use.
CONTAINER = {
    "type": "object", "required": ["name"],
    "properties": {
        "name": {"type": "string"}, "image": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "ports": {"type": "array", "items": {"type": "object", "required": ["containerPort"]}},
        "env": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "valueFrom": {"properties": {"secretKeyRef": {"type": "object", "required": ["key"]}}}}}},
        "volumeMounts": {"type": "array", "items": {"type": "object", "required": ["name", "mountPath"]}},
    },
}
POD_SPEC = {
    "type": "object", "required": ["containers"],
    "properties": {
        "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
        "initContainers": {"type": "array", "items": CONTAINER},
        "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
        "tolerations": {"type": "array", "items": {"type": "object"}},
        "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
TEMPLATE = {"type": "object", "properties": {"metadata": {"type": "object"}, "spec": POD_SPEC}}
META = {"type": "object", "required": ["name"]}
DEPLOYMENT = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"enum": ["apps/v1"]}, "kind": {"enum": ["Deployment"]}, "metadata": META,
        "spec": {"type": "object", "required": ["selector", "template"], "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "selector": {"type": "object", "required": ["matchLabels"]},
            "template": TEMPLATE}},
    },
}
JOB = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"apiVersion": {"enum": ["batch/v1"]}, "kind": {"enum": ["Job"]}, "metadata": META,
                   "spec": {"type": "object", "required": ["template"], "properties": {"template": TEMPLATE}}},
}
PYTORCHJOB = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"enum": ["kubeflow.org/v1"]}, "kind": {"enum": ["PyTorchJob"]}, "metadata": META,
        "spec": {"type": "object", "required": ["pytorchReplicaSpecs"], "properties": {
            "nprocPerNode": {"type": "string"},
            "runPolicy": {"type": "object", "properties": {
                "cleanPodPolicy": {"type": "string"}, "backoffLimit": {"type": "integer"},
                "suspend": {"type": "boolean"}}},
            "pytorchReplicaSpecs": {
                "type": "object", "required": ["Master"],
                "additionalProperties": False,
                "patternProperties": {"^(Master|Worker)$": {"type": "object", "properties": {
                    "replicas": {"type": "integer"}, "restartPolicy": {"type": "string"},
                    "template": TEMPLATE}}}}}},
    },
}


@pytest.fixture()
def ctx() -> JobContext:
    job = load_job(ROOT / "examples" / "pruningjob.yaml")
    return JobContext(name="marco-o1-pruned", namespace="research", uid="uid-1", spec=job.spec)


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if obj["kind"] == "PyTorchJob":
        for replica in obj["spec"]["pytorchReplicaSpecs"].values():
            yield replica["template"]["spec"]
    else:
        yield obj["spec"]["template"]["spec"]


def all_children(ctx: JobContext) -> list[dict[str, Any]]:
    return [sampler_deployment(ctx, "reference"), sampler_deployment(ctx, "pruned"), sample_job(ctx),
            eval_job(ctx), pytorch_job(ctx)]


def test_builders_are_pure_and_deterministic(ctx):
    assert all_children(ctx) == all_children(ctx)
    assert json.dumps(all_children(ctx), sort_keys=True)  # plain JSON data


def test_published_schema_required_fields(ctx):
    jsonschema.validate(sampler_deployment(ctx, "reference"), DEPLOYMENT)
    jsonschema.validate(sampler_deployment(ctx, "pruned"), DEPLOYMENT)
    jsonschema.validate(sample_job(ctx), JOB)
    jsonschema.validate(eval_job(ctx), JOB)
    jsonschema.validate(pytorch_job(ctx), PYTORCHJOB)


def test_every_pod_is_restricted(ctx):
    for obj in all_children(ctx):
        for pod in pod_specs(obj):
            psc = pod["securityContext"]
            assert psc["runAsNonRoot"] is True and psc["seccompProfile"] == {"type": "RuntimeDefault"}
            for c in pod["containers"] + pod.get("initContainers", []):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
                assert sc.get("privileged") is False


def test_secrets_only_by_reference(ctx):
    for obj in all_children(ctx):
        for pod in pod_specs(obj):
            for c in pod["containers"] + pod.get("initContainers", []):
                env = {e["name"]: e for e in c.get("env", [])}
                if "AWS_ACCESS_KEY_ID" in env:
                    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
                        "name": "s3-credentials", "key": "AWS_ACCESS_KEY_ID"}
                    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    assert all("AWS_ACCESS_KEY_ID" in json.dumps(o) for o in [sample_job(ctx), pytorch_job(ctx)])


def test_sampler_deployment_from_the_spec(ctx):
    dep = sampler_deployment(ctx, "reference")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "vllm/vllm-openai:v0.11.0"
    assert c["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    args = dict(zip(c["args"][::2], c["args"][1::2]))
    assert args["--model"] == "AIDC-AI/Marco-o1" and args["--served-model-name"] == "marco-o1"
    assert args["--tensor-parallel-size"] == "8" and args["--max-model-len"] == "16384"
    assert args["--gpu-memory-utilization"] == "0.9" and args["--seed"] == "0" and args["--port"] == "8000"
    # ready only once the model is served (/v1/models lists it); /health only says the process runs
    for probe in ("startupProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/v1/models", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert "initContainers" not in pod  # HF id: vLLM downloads it itself
    svc = sampler_service(ctx, "reference")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["port"] == 8000


def test_s3_model_is_fetched_by_an_init_container(ctx):
    ctx.spec.model.source = "s3://models/marco-o1"
    pod = sampler_deployment(ctx, "reference")["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["command"] == ["o1pruner", "fetch-model", "s3://models/marco-o1", "/models/reference"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "/models/reference"
    assert "AWS_SECRET_ACCESS_KEY" in {e["name"] for e in init["env"]}
    assert "AWS_SECRET_ACCESS_KEY" not in {e["name"] for e in pod["containers"][0]["env"]}  # least privilege


def test_embedded_model_is_materialised_by_an_init_container(ctx):
    ctx.spec.model.source = "embedded:smollm2-135m-instruct"
    pod = sampler_deployment(ctx, "reference")["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"][:3] == ["o1pruner", "fetch-model", "embedded:smollm2-135m-instruct"]


def test_pytorchjob_master_and_workers(ctx):
    ctx.spec.training.trainer.workers = 3
    ptj = pytorch_job(ctx)
    specs = ptj["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 3
    assert ptj["spec"]["nprocPerNode"] == "8"
    c = specs["Master"]["template"]["spec"]["containers"][0]
    assert c["name"] == "pytorch"
    assert c["command"] == ["torchrun", "--no-python", "o1pruner", "train", "/etc/o1pruner/job.yaml"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["O1PRUNER_DEEPSPEED_CONFIG"] == "/etc/o1pruner/deepspeed.json"
    cm = config_map(ctx)
    ds = json.loads(cm["data"]["deepspeed.json"])
    assert ds == json.loads(json.dumps(build_deepspeed_config(ctx.spec.training, 4 * 8), sort_keys=True))
    assert yaml.safe_load(cm["data"]["job.yaml"])["spec"]["training"]["lambda"] == 2.0


def test_backend_interface():
    backend = PyTorchJobBackend()
    obj = {"spec": {"runPolicy": {"suspend": False}},
           "status": {"conditions": [{"type": "Created", "status": "True"},
                                     {"type": "Running", "status": "False"},
                                     {"type": "Failed", "status": "True", "reason": "OOM", "message": "boom"}]}}
    st = backend.state(obj)
    assert (st.state, st.reason, st.message) == ("Failed", "OOM", "boom")
    assert backend.suspend_patch(obj, True) == {"spec": {"runPolicy": {"suspend": True}}}
    assert backend.suspend_patch(obj, False) is None
    assert backend.state({}).state == "Pending"


def test_jobs_call_the_cli_contract(ctx):
    sample = sample_job(ctx)["spec"]["template"]["spec"]
    evaluate = eval_job(ctx)["spec"]["template"]["spec"]
    assert sample["restartPolicy"] == "Never"
    assert sample["containers"][0]["command"] == [
        "o1pruner", "sample", "/etc/o1pruner/job.yaml",
        "--endpoint", "http://marco-o1-pruned-sampler-reference.research.svc:8000/v1", "--eval-base"]
    assert evaluate["containers"][0]["command"] == [
        "o1pruner", "evaluate", "/etc/o1pruner/job.yaml", "--model", "pruned",
        "--endpoint", "http://marco-o1-pruned-sampler-pruned.research.svc:8000/v1"]
    assert evaluate["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert {"name": "config", "configMap": {"name": "marco-o1-pruned-config"}} in evaluate["volumes"]


def test_sampler_network_policy_admits_only_the_jobs_pods(ctx):
    from o1pruner_operator.manifests import sampler_network_policy

    policy = sampler_network_policy(ctx, "reference", ("monitoring",))
    dep = sampler_deployment(ctx, "reference")
    assert policy["metadata"]["ownerReferences"] == dep["metadata"]["ownerReferences"]
    assert policy["spec"]["podSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    job_pod_labels = sample_job(ctx)["spec"]["template"]["metadata"]["labels"]
    pod_peer, ns_peer = rule["from"]
    assert pod_peer["podSelector"]["matchLabels"].items() <= job_pod_labels.items()
    assert ns_peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def test_operator_settings_parse_the_network_policy_switch():
    from o1pruner_operator.settings import OperatorConfig

    cfg = OperatorConfig.from_env({"O1PRUNER_SAMPLER_NETWORK_POLICY": "true",
                                   "O1PRUNER_SAMPLER_NETWORK_POLICY_ALLOW_NAMESPACES": "monitoring, obs"})
    assert cfg.sampler_network_policy and cfg.sampler_network_policy_allow_namespaces == ("monitoring", "obs")
    assert not OperatorConfig.from_env({}).sampler_network_policy
    with pytest.raises(ValueError, match="O1PRUNER_SAMPLER_NETWORK_POLICY"):
        OperatorConfig.from_env({"O1PRUNER_SAMPLER_NETWORK_POLICY": "maybe"})
