"""The Kubeflow training-operator ``PyTorchJob`` (kubeflow.org/v1) that runs ``o1pruner train``.

1 Master + ``workers`` Workers, ``nprocPerNode`` processes each. The training-operator sets
``PET_*``/``MASTER_ADDR`` env; ``torchrun --no-python`` reads them and starts the CLI per GPU.
"""

from __future__ import annotations

from typing import Any

from o1pruner_operator.manifests.common import JobContext, metadata, queued
from o1pruner_operator.manifests.trainer import trainer_pod

CONTAINER_NAME = "pytorch"  # the training-operator looks for this container name


def _replica(ctx: JobContext, replicas: int, role: str) -> dict[str, Any]:
    pod = trainer_pod(ctx, CONTAINER_NAME, serves_metrics=role == "Master")
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
    run_policy: dict[str, Any] = {
        "cleanPodPolicy": "None",
        "backoffLimit": ctx.train_backoff_limit,
        # queued (Kueue): created suspended, Kueue unsuspends it when admitted
        "suspend": suspend or bool(ctx.queue_name),
    }
    if trainer.placement.scheduler_name:
        # gang scheduling (Volcano / scheduler-plugins, with the training-operator's
        # --gang-scheduler-name): all Master + Worker pods start together or not at all
        run_policy["schedulingPolicy"] = {"minAvailable": 1 + trainer.workers}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": queued(ctx, metadata(ctx, ctx.names.train, "train")),
        "spec": {
            "nprocPerNode": str(trainer.nproc_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": specs,
        },
    }
