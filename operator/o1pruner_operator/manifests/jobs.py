"""The batch/v1 Jobs that talk to a sampler: reference sampling (+ base eval) and pruned eval."""

from __future__ import annotations

from typing import Any

from o1pruner_operator.manifests.common import (
    JOB_FILE, JobContext, common_env, config_mount, config_volume, container_security_context, metrics_ports,
    metadata, pod_spec_base, scratch_mounts, scratch_volumes,
)


def _job(ctx: JobContext, name: str, component: str, command: list[str]) -> dict[str, Any]:
    meta = metadata(ctx, name, component)
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
        "metadata": meta,
        "spec": {
            "backoffLimit": ctx.job_backoff_limit,
            "suspend": bool(ctx.spec.suspend),
            "template": {"metadata": {"labels": dict(meta["labels"])}, "spec": pod},
        },
    }


def sample_job(ctx: JobContext) -> dict[str, Any]:
    cmd = ["o1pruner", "sample", JOB_FILE, "--endpoint", ctx.service_url("reference"), "--eval-base"]
    return _job(ctx, ctx.names.sample_job, "sample", cmd)


def eval_job(ctx: JobContext) -> dict[str, Any]:
    cmd = ["o1pruner", "evaluate", JOB_FILE, "--model", "pruned", "--endpoint", ctx.service_url("pruned")]
    return _job(ctx, ctx.names.eval_job, "evaluate", cmd)
