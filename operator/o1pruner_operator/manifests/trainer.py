"""The training node every backend runs: one pod per node, ``torchrun --no-python o1pruner train``.

Each backend wraps the same container and pod pieces in its own kind. ``torchrun`` takes the
node count, rank, processes per node and master address from the ``PET_*`` environment: the
Kubeflow operators (PyTorchJob, TrainJob) inject those, the plain ``job`` backend sets them
itself (see ``torchrun_job.py``).
"""

from __future__ import annotations

from typing import Any

from o1pruner_operator.manifests.common import (
    DEEPSPEED_FILE, JOB_FILE, JobContext, common_env, config_mount, config_volume, container_security_context,
    metrics_ports, model_pod_volumes, placement, pod_spec_base, round_args, scratch_mounts, shm_mount, shm_volume,
    with_ephemeral_storage,
)

TRAIN_COMMAND = ["torchrun", "--no-python", "o1pruner", "train", JOB_FILE]


def num_nodes(ctx: JobContext) -> int:
    return ctx.spec.training.trainer.workers + 1


def trainer_env(ctx: JobContext) -> list[dict[str, Any]]:
    env = common_env(ctx)
    if ctx.spec.training.deepspeed.enabled:
        env.append({"name": "O1PRUNER_DEEPSPEED_CONFIG", "value": DEEPSPEED_FILE})
    return env


def trainer_container(ctx: JobContext, name: str, *, serves_metrics: bool) -> dict[str, Any]:
    trainer = ctx.spec.training.trainer
    return {
        "name": name,
        "image": trainer.image,
        "command": [*TRAIN_COMMAND, *round_args(ctx)],
        "env": trainer_env(ctx),
        # the model cache and /tmp emptyDirs, requested as ephemeral-storage (see model_pod_volumes)
        "resources": with_ephemeral_storage(trainer.resources.to_wire(), model_pod_volumes(ctx)),
        # Global rank 0 publishes the trainer's metrics; other nodes serve none.
        "ports": metrics_ports(ctx) if serves_metrics else [],
        "volumeMounts": [config_mount(), shm_mount(), *scratch_mounts()],
        "securityContext": container_security_context(),
    }


def trainer_volumes(ctx: JobContext) -> list[dict[str, Any]]:
    return [config_volume(ctx), shm_volume(ctx.spec.training.trainer.shm_size), *model_pod_volumes(ctx)]


def trainer_pod(ctx: JobContext, container_name: str, *, serves_metrics: bool) -> dict[str, Any]:
    """The pod spec of one training node (security context, service account, placement)."""
    pod = pod_spec_base(ctx)
    pod.update({
        "containers": [trainer_container(ctx, container_name, serves_metrics=serves_metrics)],
        "volumes": trainer_volumes(ctx),
    })
    return placement(pod, ctx.spec.training.trainer.placement)
