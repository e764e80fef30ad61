"""The batch/v1 Jobs that talk to a sampler: reference sampling (+ base eval) and pruned eval."""

from __future__ import annotations

from typing import Any

from o1pruner_operator.manifests.common import (
    JOB_FILE, JobContext, common_env, config_mount, config_volume, container_security_context, metrics_ports,
    metadata, pod_spec_base, queued, round_args, scratch_mounts, scratch_volumes,
)


def _job(ctx: JobContext, name: str, component: str, command: list[str]) -> dict[str, Any]:
    meta = metadata(ctx, name, component)
    pod_labels = dict(meta["labels"])  # no queue label on the pods: Kueue admits the Job, not its pods
    pod = pod_spec_base(ctx)
    pod.update({
        "restartPolicy": "Never",
        "containers": [{
            "name": component,
            "image": ctx.spec.training.trainer.image,
            "command": command,
            "env": common_env(ctx),
            "resources": ctx.client_resources,
            "ports": metrics_ports(ctx),
            "volumeMounts": [config_mount(), *scratch_mounts()],
            # The evaluate CLI writes its compact result JSON here; the operator reads it from
            # the pod status. On a crash the log tail is the message instead.
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": container_security_context(),
        }],
        "volumes": [config_volume(ctx), *scratch_volumes()],
    })
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": queued(ctx, meta),
        "spec": {
            "backoffLimit": ctx.job_backoff_limit,
            # queued (Kueue): created suspended, Kueue unsuspends it when admitted
            "suspend": bool(ctx.spec.suspend) or bool(ctx.queue_name),
            "template": {"metadata": {"labels": pod_labels}, "spec": pod},
        },
    }


def sample_job(ctx: JobContext) -> dict[str, Any]:
    """Reference sampling; round 1 also evaluates the base model (every round is compared with it)."""
    cmd = ["o1pruner", "sample", JOB_FILE, "--endpoint", ctx.service_url("reference"),
           *(["--eval-base"] if ctx.round == 1 else round_args(ctx))]
    return _job(ctx, ctx.names.sample_job, "sample", cmd)


def eval_job(ctx: JobContext) -> dict[str, Any]:
    cmd = ["o1pruner", "evaluate", JOB_FILE, "--model", "pruned", "--endpoint", ctx.service_url("pruned"),
           *round_args(ctx)]
    return _job(ctx, ctx.names.eval_job, "evaluate", cmd)
