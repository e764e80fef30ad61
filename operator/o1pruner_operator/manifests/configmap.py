"""The ConfigMap every child mounts at /etc/o1pruner: the job YAML and the DeepSpeed config."""

from __future__ import annotations

import json
from typing import Any

import yaml

from o1pruner.deepspeed_config import build_deepspeed_config
from o1pruner.spec import API_VERSION, KIND

from o1pruner_operator.manifests.common import JobContext, metadata


def world_size(ctx: JobContext) -> int:
    trainer = ctx.spec.training.trainer
    return (1 + trainer.workers) * trainer.nproc_per_node


def job_yaml(ctx: JobContext) -> str:
    """The validated job (defaults filled in) as the CLI reads it: ``o1pruner <phase> job.yaml``."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": ctx.name, "namespace": ctx.namespace},
        "spec": ctx.spec.to_wire(),
    }
    return yaml.safe_dump(doc, sort_keys=False)


def config_map(ctx: JobContext) -> dict[str, Any]:
    """Raises ValueError when the DeepSpeed config cannot be built (the operator reports it)."""
    data = {"job.yaml": job_yaml(ctx)}
    if ctx.spec.training.deepspeed.enabled:
        ds = build_deepspeed_config(ctx.spec.training, world_size(ctx))
        data["deepspeed.json"] = json.dumps(ds, indent=2, sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ctx, ctx.names.config, "config"),
        "data": data,
    }
