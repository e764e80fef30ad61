"""Every API call the operator makes in a full lifecycle is granted by REQUIRED_RULES, and every
rule there is used (kopf-only verbs a short run does not reach are listed in KOPF_ONLY)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from o1pruner_operator import rbac
from o1pruner_operator.settings import OperatorConfig

NAME = "rbac-job"
RESULTS = {"datasets": {"math500": {"baseAccuracy": 0.7, "prunedAccuracy": 0.7, "baseLength": 100,
                                    "prunedLength": 60}}}
VERB = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create", "DELETE": "delete"}


@pytest.fixture()
def operator_config(operator_config: OperatorConfig) -> OperatorConfig:
    """Every optional child on (the sampler NetworkPolicy), so every granted rule is exercised."""
    return dataclasses.replace(operator_config, sampler_network_policy=True)


def api_calls(emu) -> set[tuple[str, str, str]]:
    calls = set()
    for req in list(emu):
        agent = req.headers.get("User-Agent", "")
        if not agent.startswith(("kopf/", "o1pruner-operator")) or req.resource is None or not req.resource.plural:
            continue  # the test's own calls; discovery (non-resource URLs, allowed to everyone)
        action = req.action.name if req.action is not None else ""
        verb = VERB.get(action) or ("patch" if req.method.name == "PATCH" else "update")
        resource = req.resource.plural + (f"/{req.subresource}" if req.subresource else "")
        calls.add((req.resource.group or "", resource, verb))
    return calls


@pytest.mark.parametrize("training_backend", ["trainjob", "pytorchjob", "job"])
async def test_required_rules_cover_exactly_what_the_operator_does(cluster, run_operator, wait, make_job,
                                                                   training_backend):
    phase = lambda: ((cluster.obj("pruningjobs", NAME) or {}).get("status") or {}).get("phase")  # noqa: E731
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"))
        await cluster.deployment_ready(f"{NAME}-sampler-reference")
        await wait(lambda: cluster.obj("jobs", f"{NAME}-sample"))
        await cluster.patch("pruningjobs", NAME, {"spec": {"suspend": True}})
        await wait(lambda: cluster.obj("jobs", f"{NAME}-sample")["spec"]["suspend"])
        await cluster.patch("pruningjobs", NAME, {"spec": {"suspend": False}})
        await wait(lambda: not cluster.obj("jobs", f"{NAME}-sample")["spec"]["suspend"])
        await cluster.job_done(f"{NAME}-sample")
        await wait(lambda: cluster.train_obj(NAME))
        await cluster.patch("pruningjobs", NAME, {"spec": {"suspend": True}})
        await wait(lambda: cluster.train_suspended(NAME))
        await cluster.patch("pruningjobs", NAME, {"spec": {"suspend": False}})
        await wait(lambda: not cluster.train_suspended(NAME))
        await cluster.training(NAME, "Succeeded")
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-pruned"))
        await cluster.deployment_ready(f"{NAME}-sampler-pruned")
        await wait(lambda: cluster.obj("jobs", f"{NAME}-evaluate"))
        labels = cluster.obj("jobs", f"{NAME}-evaluate")["spec"]["template"]["metadata"]["labels"]
        await cluster.pod(f"{NAME}-evaluate-x", labels, {"containerStatuses": [{"name": "evaluate", "state": {
            "terminated": {"exitCode": 0, "message": json.dumps(RESULTS)}}}]})
        await cluster.job_done(f"{NAME}-evaluate")
        await wait(lambda: phase() == "Succeeded")
        await cluster.delete("pruningjobs", NAME)
        await wait(lambda: cluster.obj("pruningjobs", NAME) is None)
        await wait(lambda: cluster.names("networkpolicies") == [], what="children deleted (the last kind)")

    calls = api_calls(cluster.emu)
    assert ("o1pruner.dev", "pruningjobs/status", "patch") in calls
    assert ("networking.k8s.io", "networkpolicies", "delete") in calls
    if training_backend in rbac.BACKEND_ONLY:
        group, plural = rbac.BACKEND_ONLY[training_backend]
        assert {(group, plural, verb) for verb in ("get", "create", "patch", "delete")} <= calls
    else:  # the Indexed Job and its headless Service
        assert {("batch", "jobs", "create"), ("", "services", "create"), ("", "services", "delete")} <= calls
    missing = {c for c in calls if not rbac.covers(*c)}
    assert not missing, f"API calls not granted by REQUIRED_RULES: {sorted(missing)}"
    unused = rbac.expand() - calls - rbac.KOPF_ONLY - rbac.other_backends(training_backend)
    assert not unused, f"REQUIRED_RULES grants more than the operator uses: {sorted(unused)}"


def test_blocking_owner_deletion_is_granted():
    """Every child's ownerReference sets blockOwnerDeletion: true; under the
    OwnerReferencesPermissionEnforcement admission plugin (default on OpenShift) that needs
    update on pruningjobs/finalizers, or every child create is refused with 403."""
    from o1pruner.spec import parse_spec

    from o1pruner_operator.manifests.common import JobContext, owner_reference

    ctx = JobContext(name="j", namespace="ns", uid="u", spec=parse_spec({
        "model": {"source": "org/m"}, "storage": {"uri": "s3://bkt/run"},
        "datasets": {"train": {"name": "t", "source": "s3://bkt/t.jsonl"},
                     "eval": [{"name": "e", "source": "s3://bkt/e.jsonl"}]}}))
    assert owner_reference(ctx)["blockOwnerDeletion"] is True
    assert rbac.covers("o1pruner.dev", "pruningjobs/finalizers", "update")
