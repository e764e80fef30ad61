"""The vLLM sampler: a Deployment of the official ``vllm/vllm-openai`` image and its Service.

``role`` is ``reference`` (the model to prune, for sampling and base evaluation) or ``pruned``
(the fine-tuned checkpoint, for the final evaluation).
"""

from __future__ import annotations

from typing import Any

from o1pruner.spec import EMBEDDED_PREFIX
from o1pruner.vllm_args import LIVENESS_PATH, READINESS_PATH, VLLM_SERVER_MODULE, vllm_server_args

from o1pruner_operator.manifests.common import (
    LABEL_JOB, SAMPLER_PORT, JobContext, common_env, config_mount, config_volume, container_security_context,
    hf_token_env, metadata, model_pod_volumes, placement, pod_spec_base, scratch_mounts, selector_labels,
    shm_mount, shm_volume, with_ephemeral_storage,
)

MODEL_DIR = "/models"


def component(role: str) -> str:
    return f"sampler-{role}"


def model_source(ctx: JobContext, role: str) -> str:
    """Where the served model comes from: the reference is the spec's model in round 1, the
    previous round's pruned model after; the pruned model is this round's checkpoint."""
    if role == "reference":
        return ctx.spec.model.source if ctx.round == 1 else ctx.round_artifact("train/model", ctx.round - 1)
    return ctx.round_artifact("train/model")


def _probe(path: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def sampler_deployment(ctx: JobContext, role: str, *, replicas: int | None = None) -> dict[str, Any]:
    sampler = ctx.spec.sampling.sampler
    source = model_source(ctx, role)
    served_name = ctx.spec.model.served_name if role == "reference" else f"{ctx.spec.model.served_name}-pruned"
    init: list[dict[str, Any]] = []
    volumes = [shm_volume(sampler.shm_size), *model_pod_volumes(ctx), config_volume(ctx)]
    mounts = [shm_mount(), *scratch_mounts()]
    if source.startswith(("s3://", EMBEDDED_PREFIX)):
        # vLLM reads neither s3:// nor embedded: models; an init container (trainer image,
        # `o1pruner fetch-model`) materialises them as a model directory.
        local = f"{MODEL_DIR}/{role}"
        volumes.append({"name": "models", "emptyDir": {"sizeLimit": str(ctx.spec.model.cache.size)}})
        init.append({
            "name": "fetch-model",
            "image": ctx.spec.training.trainer.image,
            "command": ["o1pruner", "fetch-model", source, local],
            "env": common_env(ctx),
            "volumeMounts": [{"name": "models", "mountPath": MODEL_DIR}, *scratch_mounts(), config_mount()],
            "resources": with_ephemeral_storage(ctx.client_resources, volumes),
            "securityContext": container_security_context(),
        })
        mounts.append({"name": "models", "mountPath": MODEL_DIR, "readOnly": True})
        model_arg = local
    else:
        model_arg = source
    args = vllm_server_args(ctx.spec, model_arg, port=SAMPLER_PORT, served_name=served_name)
    env = [
        {"name": "HOME", "value": "/tmp"},
        # uid 1000 has no passwd entry in the images: getpass.getuser() (torch inductor, triton
        # cache paths) falls back to these.
        {"name": "USER", "value": "o1pruner"},
        {"name": "LOGNAME", "value": "o1pruner"},
        {"name": "HF_HOME", "value": "/cache/hf"},
        {"name": "VLLM_CACHE_ROOT", "value": "/cache/vllm"},
        {"name": "XDG_CACHE_HOME", "value": "/cache"},
        *hf_token_env(ctx),
    ]  # no S3 credentials: only the fetch-model init container reads S3
    startup_failures = max(1, ctx.startup_probe_seconds // 10)
    container = {
        "name": "vllm",
        "image": sampler.image,
        "command": ["python3", "-m", VLLM_SERVER_MODULE],
        "args": args,
        "ports": [{"name": "http", "containerPort": SAMPLER_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": with_ephemeral_storage(sampler.resources.to_wire(), volumes),
        "volumeMounts": mounts,
        # Model loading (and the download) can take long: the startup probe allows it, then
        # liveness (/health) restarts a hung server and readiness gates the Service on
        # /v1/models, which answers only once the model is loaded and served (as llm-d does).
        "startupProbe": _probe(READINESS_PATH, 10, startup_failures),
        "readinessProbe": _probe(READINESS_PATH, 10, 3),
        "livenessProbe": _probe(LIVENESS_PATH, 30, 3, timeout=10),
        "securityContext": container_security_context(),
    }
    pod = pod_spec_base(ctx)
    pod.update({
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": 30,
    })
    if init:
        pod["initContainers"] = init
    placement(pod, sampler.placement)
    labels = metadata(ctx, ctx.names.sampler(role), component(role))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": labels,
        "spec": {
            "replicas": sampler.replicas if replicas is None else replicas,
            # GPUs: never run old and new pods side by side.
            "strategy": {"type": "Recreate"},
            "progressDeadlineSeconds": ctx.progress_deadline_seconds,
            "selector": {"matchLabels": selector_labels(ctx, component(role))},
            "template": {"metadata": {"labels": dict(labels["labels"])}, "spec": pod},
        },
    }


def sampler_service(ctx: JobContext, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, ctx.names.sampler(role), component(role)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ctx, component(role)),
            "ports": [{"name": "http", "port": SAMPLER_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def sampler_network_policy(ctx: JobContext, role: str, allow_namespaces: tuple[str, ...] = ()) -> dict[str, Any]:
    """Ingress to the sampler's vLLM port only from this PruningJob's own pods (the sampling and
    evaluation Jobs carry ``o1pruner.dev/job``) and, for scrapes of ``/metrics``, from the
    namespaces in ``allow_namespaces``. Nothing else in the cluster can reach the model."""
    peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": {LABEL_JOB: ctx.name}}}]
    peers += [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}} for ns in allow_namespaces]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, ctx.names.sampler(role), component(role)),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(ctx, component(role))},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": SAMPLER_PORT}]}],
        },
    }
