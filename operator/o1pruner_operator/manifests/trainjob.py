"""The Kubeflow Trainer v2 ``TrainJob`` (trainer.kubeflow.org/v1alpha1, schema of v2.3.0).

A TrainJob names a ClusterTrainingRuntime (``torch-distributed`` by default) and overrides only
what the v2 API lets a job override:

* ``spec.trainer``: image, command, env, ``numNodes``, ``numProcPerNode``, ``resourcesPerNode``
  (the Trainer's torch plugin adds the ``PET_*`` env that ``torchrun`` reads);
* ``spec.runtimePatches`` (v2.3; it replaced ``podTemplateOverrides``): one patch owned by
  this operator for the runtime's trainer replicated job ``node``: pod labels, volumes,
  security context, service account and placement, and the mounts and security context of
  its container ``node``. A patch may not set container ports, so the trainer's metrics reach
  Prometheus through a Pushgateway only.

Suspend is ``spec.suspend``; ``spec.trainer`` and the patches are immutable after creation.
"""

from __future__ import annotations

from typing import Any

from o1pruner_operator.manifests.common import JobContext, metadata, queued
from o1pruner_operator.manifests.trainer import num_nodes, trainer_pod

GROUP = "trainer.kubeflow.org"
API_VERSION = f"{GROUP}/v1alpha1"
DEFAULT_RUNTIME = "torch-distributed"
#: What ``torch-distributed`` (v2.3.0) calls its trainer replicated job and that job's container.
TRAINER_REPLICATED_JOB = "node"
TRAINER_CONTAINER = "node"
#: ``runtimePatches`` is a list map keyed by manager; this operator owns one entry.
PATCH_MANAGER = "o1pruner.dev/operator"
#: Pod spec fields a runtime patch may set (v2.3.0 ``RuntimePatch``), taken from the trainer pod.
POD_PATCH_FIELDS = ("securityContext", "serviceAccountName", "nodeSelector", "tolerations", "affinity",
                    "volumes", "imagePullSecrets", "schedulingGates", "terminationGracePeriodSeconds")
CONTAINER_PATCH_FIELDS = ("volumeMounts", "securityContext")
#: Trainer container fields that go to ``spec.trainer`` instead.
TRAINER_FIELDS = {"image": "image", "command": "command", "env": "env", "resources": "resourcesPerNode"}
#: Trainer pod/container fields the v2.3 API cannot carry (documented in docs/operator.md).
NOT_EXPRESSIBLE = {"ports"}


def runtime_patch(ctx: JobContext) -> dict[str, Any]:
    pod = trainer_pod(ctx, TRAINER_CONTAINER, serves_metrics=False)
    container = pod["containers"][0]
    pod_patch = {k: pod[k] for k in POD_PATCH_FIELDS if k in pod}
    pod_patch["containers"] = [{"name": TRAINER_CONTAINER, **{k: container[k] for k in CONTAINER_PATCH_FIELDS}}]
    labels = metadata(ctx, ctx.names.train, "train-node")["labels"]
    return {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
            "name": TRAINER_REPLICATED_JOB,
            "template": {"spec": {"template": {"metadata": {"labels": labels}, "spec": pod_patch}}},
        }]}}},
    }


#: Placement fields a v2.3 runtime patch cannot set: they belong in the ClusterTrainingRuntime.
RUNTIME_ONLY_POD_FIELDS = {"runtimeClassName": "runtimeClassName", "priorityClassName": "priorityClassName",
                           "schedulerName": "schedulerName"}


def train_job(ctx: JobContext, *, runtime: str = DEFAULT_RUNTIME, suspend: bool = False) -> dict[str, Any]:
    trainer = ctx.spec.training.trainer
    pod = trainer_pod(ctx, TRAINER_CONTAINER, serves_metrics=False)
    unsupported = sorted(field for field in RUNTIME_ONLY_POD_FIELDS if field in pod)
    if unsupported:
        raise ValueError(
            f"spec.training.trainer.placement.{unsupported[0]}: a TrainJob (Trainer v2.3) cannot set "
            f"{', '.join(unsupported)}; set it in the ClusterTrainingRuntime {runtime!r} or use "
            "spec.training.backend pytorchjob or job")
    container = trainer_pod(ctx, TRAINER_CONTAINER, serves_metrics=False)["containers"][0]
    from_container = {dst: container[src] for src, dst in TRAINER_FIELDS.items()}
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": queued(ctx, metadata(ctx, ctx.names.train, "train")),
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": runtime},
            "suspend": suspend or bool(ctx.queue_name),  # queued: Kueue unsuspends on admission
            "trainer": {**from_container, "numNodes": num_nodes(ctx), "numProcPerNode": trainer.nproc_per_node},
            "runtimePatches": [runtime_patch(ctx)],
        },
    }
