"""Every core object the operator builds passes the published Kubernetes schemas in strict mode
(no unknown or misspelt field) for every Kubernetes version the chart supports; the training
pods (PyTorchJob replicas) are checked as ``v1/PodTemplate``s."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from o1pruner.spec import load_job
from o1pruner_operator.manifests import (
    JobContext, config_map, eval_job, sample_job, sampler_deployment, sampler_network_policy, sampler_service,
)
from o1pruner_operator.manifests.pytorchjob import pytorch_job

sys.path.append(str(Path(__file__).resolve().parents[1]))  # appended: tests/reliability imports its own conftest
import k8s_schemas  # noqa: E402  (tests/k8s_schemas.py)

ROOT = Path(__file__).resolve().parents[2]


def _ctx(**spec_changes: Any) -> JobContext:
    spec = load_job(ROOT / "examples" / "pruningjob.yaml").spec.model_copy(deep=True)
    for dotted, value in spec_changes.items():
        obj = spec
        *parents, leaf = dotted.split("__")
        for part in parents:
            obj = getattr(obj, part)
        setattr(obj, leaf, value)
    return JobContext(name="marco-o1-pruned", namespace="research", uid="uid-1", spec=spec)


VARIANTS = {
    "example": {},
    "served-metrics-s3-model-workers": {"metrics__pushgateway_url": None, "model__source": "s3://models/marco-o1",
                                        "training__trainer__workers": 3, "service_account_name": "trainer"},
}


def core_objects(ctx: JobContext) -> list[dict[str, Any]]:
    objs = [config_map(ctx), sample_job(ctx), eval_job(ctx)]
    for role in ("reference", "pruned"):
        objs += [sampler_deployment(ctx, role), sampler_service(ctx, role),
                 sampler_network_policy(ctx, role, ("monitoring",))]
    for role, replica in pytorch_job(ctx)["spec"]["pytorchReplicaSpecs"].items():
        objs.append({"apiVersion": "v1", "kind": "PodTemplate",
                     "metadata": {"name": f"{ctx.names.train}-{role.lower()}", "namespace": ctx.namespace},
                     "template": replica["template"]})
    return objs


def test_the_supported_versions_follow_the_chart():
    versions = k8s_schemas.supported_versions()
    assert versions[0] == k8s_schemas.chart_min_version() == "1.28"
    assert len(versions) >= 2


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_core_object_passes_the_strict_schemas(variant):
    objs = core_objects(_ctx(**VARIANTS[variant]))
    assert {o["kind"] for o in objs} == {"ConfigMap", "Job", "Deployment", "Service", "NetworkPolicy", "PodTemplate"}
    errors = [e for obj in objs for e in k8s_schemas.strict_errors(obj)]
    assert errors == []


def test_strict_mode_catches_a_misspelt_field():
    dep = sampler_deployment(_ctx(), "reference")
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/v1/models"}}
    errors = k8s_schemas.strict_errors(dep, k8s_schemas.supported_versions()[:1])
    assert errors and "readinesProbe" in errors[0]
