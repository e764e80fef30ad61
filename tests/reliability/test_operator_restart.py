"""Item 3 — operator restart. The operator is stopped at every phase boundary (killed: its task
cancelled mid-reconcile, or stopped gracefully), the world moves on while it is down (a sampler
becomes ready, a Job finishes), and a fresh operator instance takes over. The job must finish
with exactly one of each child (no second create of anything) and no status lost. Run once per
training backend; a node of the training object is also preempted while no operator runs."""

from __future__ import annotations

import json

import pytest
from rel_cluster import example_job, operator, operator_config, wait_for
from training_fakes import TRAINING_KINDS

RESULTS = {"datasets": {"math500": {"baseAccuracy": 0.7, "prunedAccuracy": 0.72, "baseLength": 2000.0,
                                    "prunedLength": 1300.0, "lengthReduction": 0.35, "aes": 1.8}}}


def _conditions(status: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions") or []}


@pytest.mark.parametrize("backend", ["trainjob", "pytorchjob", "job"])
@pytest.mark.parametrize("kill", [True, False], ids=["killed", "stopped"])
async def test_restart_at_every_phase_boundary_finishes_without_duplicates_or_lost_status(cluster, kill, backend):
    name = "restart-" + ("kill" if kill else "stop")
    cfg = operator_config(cluster, training_backend=backend)
    train_kind = TRAINING_KINDS[backend]
    await cluster.create("pruningjobs", example_job(name))
    seen: list[dict] = []  # status after each operator instance
    restarts = 0

    async def run_until(pred, what):
        nonlocal restarts
        async with operator(cfg, kill=kill):
            await wait_for(pred, what=what)
        restarts += 1
        seen.append(cluster.status(name))

    # boundary 1: Pending -> Sampling (killed as soon as the sampler Deployment exists)
    await run_until(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), "reference sampler")
    await cluster.deployment_ready(f"{name}-sampler-reference")  # while no operator runs
    # boundary 2: sampler ready -> sample Job
    await run_until(lambda: cluster.obj("jobs", f"{name}-sample"), "sample Job")
    await cluster.job_done(f"{name}-sample")
    # boundary 3: Sampling -> Training
    await run_until(lambda: cluster.obj(train_kind, f"{name}-train"), f"the {backend} training object")
    await cluster.training(name, "Running", backend)
    await run_until(lambda: (cluster.status(name).get("conditions") and cluster.phase(name) == "Training"
                             and "Trained" in _conditions(cluster.status(name))), "Trained=False (running)")
    await cluster.training(name, "Restarting", backend)  # a node preempted while no operator runs
    await run_until(lambda: cluster.phase(name) == "Training" and cluster.status(name).get("trainingBackend"),
                    "Training (preempted node)")
    await cluster.training(name, "Succeeded", backend)
    # boundary 4: Training -> Evaluating
    await run_until(lambda: cluster.obj("deployments", f"{name}-sampler-pruned"), "pruned sampler")
    await cluster.deployment_ready(f"{name}-sampler-pruned")
    # boundary 5: pruned sampler ready -> eval Job
    await run_until(lambda: cluster.obj("jobs", f"{name}-evaluate"), "eval Job")
    labels = cluster.obj("jobs", f"{name}-evaluate")["spec"]["template"]["metadata"]["labels"]
    await cluster.pod(f"{name}-evaluate-x1", labels, {"phase": "Succeeded", "containerStatuses": [
        {"name": "evaluate", "restartCount": 0, "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "message": json.dumps(RESULTS),
            "finishedAt": "2026-11-28T13:00:00Z"}}}]})
    await cluster.job_done(f"{name}-evaluate")
    # boundary 6: Evaluating -> Succeeded
    await run_until(lambda: cluster.phase(name) == "Succeeded", "Succeeded")
    assert restarts == 8

    # exactly one of each child, each created once
    assert cluster.children(name) == {
        "configmaps": [f"{name}-config"],
        "deployments": [f"{name}-sampler-pruned", f"{name}-sampler-reference"],
        "services": [f"{name}-sampler-pruned", f"{name}-sampler-reference"],
        "jobs": sorted([f"{name}-evaluate", f"{name}-sample", *([f"{name}-train"] if backend == "job" else [])]),
        "pytorchjobs": [f"{name}-train"] if backend == "pytorchjob" else [],
        "trainjobs": [f"{name}-train"] if backend == "trainjob" else [],
        "networkpolicies": [],
    } | ({"services": [f"{name}-sampler-pruned", f"{name}-sampler-reference", f"{name}-train"]}
         if backend == "job" else {})
    creates = {k: n for k, n in cluster.creates().items() if k[0] not in ("pods", "pruningjobs")}
    assert creates and all(n == 1 for n in creates.values()), creates
    assert not [c for c in cluster.calls if c.verb == "delete"], "nothing is deleted and re-made"

    # status: never lost, only added to
    final = cluster.status(name)
    assert final["phase"] == "Succeeded"
    assert _conditions(final) | {"SamplersReady": "-"} == {
        "ReferenceSampled": "True", "Trained": "True", "Evaluated": "True", "Ready": "True", "SamplersReady": "-"}
    assert final["results"]["datasets"]["math500"]["prunedAccuracy"] == 0.72
    # (an instance killed right after creating a child may not have written status yet: the
    # next one must then write it; once written, nothing in it may be lost or reset)
    assert final["startTime"] and final["specHash"]
    order = ["Pending", "Sampling", "Training", "Evaluating", "Succeeded"]
    for before, after in zip(seen, seen[1:]):
        for key in ("startTime", "specHash"):
            if key in before:
                assert after[key] == before[key], key  # never reset by a new operator instance
        assert order.index(after.get("phase", "Pending")) >= order.index(before.get("phase", "Pending"))
        for ctype, cstatus in _conditions(before).items():
            if cstatus == "True" and ctype in ("ReferenceSampled", "Trained", "Evaluated"):
                assert _conditions(after)[ctype] == "True", (ctype, after)
        assert set(before.get("children") or {}) <= set(after.get("children") or {})
    print(f"{name}: {restarts} operator instances; phases seen after each: {[st.get('phase') for st in seen]}")
