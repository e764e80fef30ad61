"""The Kubeflow training-operator ``PyTorchJob`` (kubeflow.org/v1) that runs ``o1pruner train``.

1 Master + ``workers`` Workers, ``nprocPerNode`` processes each. The training-operator sets
``PET_*``/``MASTER_ADDR`` env; ``torchrun --no-python`` reads them and starts the CLI per GPU.
"""

from __future__ import annotations

from typing import Any

from o1pruner_operator.manifests.common import (
    DEEPSPEED_FILE, JOB_FILE, JobContext, common_env, config_mount, config_volume,
    container_security_context, metrics_ports, metadata, placement, pod_spec_base, scratch_mounts, scratch_volumes,
    shm_mount, shm_volume,
)

CONTAINER_NAME = "pytorch"  # the training-operator looks for this container name


def _replica(ctx: JobContext, replicas: int, role: str) -> dict[str, Any]:
    trainer = ctx.spec.training.trainer
    env = common_env(ctx)
    if ctx.spec.training.deepspeed.enabled:
        env.append({"name": "O1PRUNER_DEEPSPEED_CONFIG", "value": DEEPSPEED_FILE})
    pod = pod_spec_base(ctx)
    pod.update({
        "containers": [{
            "name": CONTAINER_NAME,
            "image": trainer.image,
            "command": ["torchrun", "--no-python", "o1pruner", "train", JOB_FILE],
            "env": env,
            "resources": trainer.resources.to_wire(),
            # Global rank 0 (on the Master) publishes the trainer's metrics; Workers serve none.
            "ports": metrics_ports(ctx) if role == "Master" else [],
            "volumeMounts": [config_mount(), shm_mount(), *scratch_mounts()],
            "securityContext": container_security_context(),
        }],
        "volumes": [config_volume(ctx), shm_volume(trainer.shm_size), *scratch_volumes()],
    })
    placement(pod, trainer.placement)
    labels = metadata(ctx, ctx.names.train, f"train-{role.lower()}")["labels"]
    return {
        "replicas": replicas,
        "restartPolicy": "OnFailure",
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }


def pytorch_job(ctx: JobContext, *, suspend: bool = False) -> dict[str, Any]:
    trainer = ctx.spec.training.trainer
    specs = {"Master": _replica(ctx, 1, "Master")}
    if trainer.workers:
        specs["Worker"] = _replica(ctx, trainer.workers, "Worker")
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": metadata(ctx, ctx.names.train, "train"),
        "spec": {
            "nprocPerNode": str(trainer.nproc_per_node),
            "runPolicy": {
                "cleanPodPolicy": "None",
                "backoffLimit": ctx.train_backoff_limit,
                "suspend": suspend,
            },
            "pytorchReplicaSpecs": specs,
        },
    }
