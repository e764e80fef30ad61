"""The ``job`` backend: training on plain Kubernetes, no Kubeflow.

An Indexed ``batch/v1`` Job (one pod per node, ``completions = parallelism = numNodes``) and a
headless Service of the same name. Indexed Job pods get the hostname ``<job>-<index>``; with
``subdomain: <service>`` each resolves as ``<job>-<index>.<service>``, so ``torchrun`` uses a
static rendezvous: master = the pod of index 0, node rank = the completion index. The ``PET_*``
env is what the Kubeflow operators would set.

Preemption: a pod evicted or preempted (condition ``DisruptionTarget``) does not count towards
``backoffLimit`` (``podFailurePolicy``); its replacement (created once the old pod is gone) and
the other nodes' restarted trainers resume from the last complete S3 checkpoint.
"""

from __future__ import annotations

from typing import Any

from o1pruner_operator.manifests.common import JobContext, metadata, queued, selector_labels
from o1pruner_operator.manifests.trainer import num_nodes, trainer_pod

CONTAINER_NAME = "trainer"
COMPONENT = "train-node"
MASTER_PORT = 29400  # what Kubeflow Trainer uses for torchrun's c10d store
COMPLETION_INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def master_address(ctx: JobContext) -> str:
    """DNS name of the index-0 pod through the headless Service (same namespace)."""
    return f"{ctx.names.train}-0.{ctx.names.train}"


def torchrun_env(ctx: JobContext) -> list[dict[str, Any]]:
    return [
        {"name": "PET_NNODES", "value": str(num_nodes(ctx))},
        {"name": "PET_NPROC_PER_NODE", "value": str(ctx.spec.training.trainer.nproc_per_node)},
        {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}}},
        {"name": "PET_MASTER_ADDR", "value": master_address(ctx)},
        {"name": "PET_MASTER_PORT", "value": str(MASTER_PORT)},
    ]


def torchrun_service(ctx: JobContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, ctx.names.train, "train"),
        "spec": {
            "clusterIP": "None",
            # Rank 0 must resolve before any pod is Ready (no readiness probe gates training).
            "publishNotReadyAddresses": True,
            "selector": selector_labels(ctx, COMPONENT),
            "ports": [{"name": "c10d", "port": MASTER_PORT, "targetPort": MASTER_PORT, "protocol": "TCP"}],
        },
    }


def torchrun_job(ctx: JobContext, *, suspend: bool = False) -> dict[str, Any]:
    nodes = num_nodes(ctx)
    # One template for every node: only a single-node job declares the metrics port (the other
    # ranks serve no /metrics, and the PodMonitor would report them down).
    pod = trainer_pod(ctx, CONTAINER_NAME, serves_metrics=nodes == 1)
    container = pod["containers"][0]
    container["env"] = torchrun_env(ctx) + container["env"]
    container["ports"] = container["ports"] + [{"name": "c10d", "containerPort": MASTER_PORT, "protocol": "TCP"}]
    pod["subdomain"] = ctx.names.train
    pod["restartPolicy"] = "Never"  # podFailurePolicy needs it; a failed node restarts as a new pod
    labels = metadata(ctx, ctx.names.train, COMPONENT)["labels"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": queued(ctx, metadata(ctx, ctx.names.train, "train")),
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            # A node failing makes every node's torchrun fail: one incident costs up to `nodes`.
            "backoffLimit": ctx.train_backoff_limit * nodes,
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "suspend": suspend or bool(ctx.queue_name),  # queued: Kueue unsuspends on admission
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
