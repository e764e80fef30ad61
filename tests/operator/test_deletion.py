"""Deletion without a finalizer (issue 11 item 5): no PruningJob ever carries one, so deleting a
job (or its namespace) never waits for the operator; the garbage collector removes the children
through their ownerReferences, and a running operator deletes them at once. Jobs an older
operator marked with ``o1pruner.dev/finalizer`` are released when this one starts."""

from __future__ import annotations

import asyncio

from .test_lifecycle import NAME, NS, drive_to_training, phase

OLD_FINALIZER = "o1pruner.dev/finalizer"


def finalizers(cluster, name=NAME):
    return ((cluster.obj("pruningjobs", name) or {}).get("metadata") or {}).get("finalizers") or []


def metadata_patches(cluster):
    """Requests that changed a PruningJob's main resource (not its status): finalizers, annotations."""
    return [r for r in list(cluster.emu) if r.method.name in ("PATCH", "PUT") and r.resource is not None
            and r.resource.plural == "pruningjobs" and not r.subresource]


def children(cluster):
    return {kind: cluster.names(kind) for kind in ("deployments", "services", "jobs", cluster.train_kind,
                                                   "configmaps") if cluster.names(kind)}


async def test_a_pruningjob_never_gets_a_finalizer(cluster, run_operator, wait, make_job):
    async with run_operator() as registry:
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await wait(lambda: phase(cluster) == "Training", what="Training")
        assert registry.o1pruner_runtime.runners.running((NS, NAME))
        assert finalizers(cluster) == []
        await cluster.training(NAME, "Failed", reason="PyTorchJobFailed", message="boom")
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
        await wait(lambda: not registry.o1pruner_runtime.runners.running((NS, NAME)),
                   what="the reconciler of a finished job to return")
        assert finalizers(cluster) == []
    # kopf never patched the object itself (no finalizer added, no annotations): status only.
    assert metadata_patches(cluster) == []


async def test_deleting_a_job_while_the_operator_is_down_removes_it_at_once(cluster, run_operator, wait,
                                                                            make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await wait(lambda: phase(cluster) == "Training", what="Training")
    uid = cluster.obj("pruningjobs", NAME)["metadata"]["uid"]
    left = children(cluster)
    assert f"{NAME}-sampler-reference" in left["deployments"] and f"{NAME}-train" in left[cluster.train_kind]

    await cluster.delete("pruningjobs", NAME)  # the operator is uninstalled or crash-looping
    assert cluster.obj("pruningjobs", NAME) is None, "the job waits in Terminating for the operator"
    # What the garbage collector needs to delete every child (kmock has no GC): a controller
    # ownerReference to the deleted job's uid.
    for kind, names in left.items():
        for child in names:
            refs = cluster.obj(kind, child)["metadata"]["ownerReferences"]
            assert [(r["kind"], r["name"], r["uid"], r["controller"]) for r in refs] == [
                ("PruningJob", NAME, uid, True)], (kind, child)


async def test_an_older_operators_finalizer_is_removed_at_start(cluster, run_operator, wait, make_job):
    old = make_job(NAME)
    old["metadata"]["finalizers"] = [OLD_FINALIZER]
    await cluster.create("pruningjobs", old)
    assert finalizers(cluster) == [OLD_FINALIZER]
    async with run_operator():
        await wait(lambda: finalizers(cluster) == [], what="the old finalizer removed")
        # ... and the job runs as any other.
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="reference sampler")
        await wait(lambda: phase(cluster) == "Sampling", what="Sampling")
    async with run_operator() as registry:  # a restart adds nothing back
        await wait(lambda: registry.o1pruner_runtime.runners.running((NS, NAME)), what="the job resumed")
        assert finalizers(cluster) == []
        await cluster.delete("pruningjobs", NAME)
        assert cluster.obj("pruningjobs", NAME) is None
        await wait(lambda: cluster.names("deployments") == [], what="children deleted")


async def test_a_job_deleted_while_an_older_operator_was_down_is_released_at_start(cluster, run_operator, wait,
                                                                                   make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="reference sampler")
    # An older operator's finalizer, and a delete while no operator runs: Terminating.
    await cluster.patch("pruningjobs", NAME, {"metadata": {"finalizers": [OLD_FINALIZER]}})
    await cluster.delete("pruningjobs", NAME)
    assert cluster.obj("pruningjobs", NAME)["metadata"]["deletionTimestamp"]
    assert cluster.names("deployments") == [f"{NAME}-sampler-reference"]
    async with run_operator():
        await wait(lambda: cluster.obj("pruningjobs", NAME) is None, what="the job released")
        await wait(lambda: children(cluster) == {}, what="its children deleted")


async def test_a_restarted_operator_resumes_a_running_job_in_its_phase(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await wait(lambda: phase(cluster) == "Training", what="Training")
    assert finalizers(cluster) == []
    async with run_operator() as registry:
        runners = registry.o1pruner_runtime.runners
        await wait(lambda: runners.running((NS, NAME)), what="the job's reconciler started from the listing")
        assert phase(cluster) == "Training"
        assert cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["replicas"] == 0
        await cluster.training(NAME, "Succeeded")
        await wait(lambda: phase(cluster) == "Evaluating", what="Evaluating")
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-pruned"), what="pruned sampler")
        assert cluster.obj("deployments", f"{NAME}-sampler-reference")["spec"]["replicas"] == 0
        assert finalizers(cluster) == []
    assert len(runners) == 0, "the operator's shutdown stops every job's reconciler"


async def test_a_finished_job_is_checked_once_after_a_restart(cluster, run_operator, wait, make_job):
    async with run_operator():
        await cluster.create("pruningjobs", make_job(NAME))
        await drive_to_training(cluster, wait)
        await cluster.training(NAME, "Failed", reason="PyTorchJobFailed", message="boom")
        await wait(lambda: phase(cluster) == "Failed", what="Failed")
    seen = len(list(cluster.emu))
    async with run_operator() as registry:
        runners = registry.o1pruner_runtime.runners
        await wait(lambda: any(r.method.name == "GET" and r.resource is not None and r.name == NAME
                               and r.resource.plural == "pruningjobs" for r in list(cluster.emu)[seen:]),
                   what="the finished job re-read once")
        await wait(lambda: not runners.running((NS, NAME)), what="its reconciler to return")
        # A later change of the finished job does not start it again.
        await cluster.patch("pruningjobs", NAME, {"metadata": {"labels": {"touched": "yes"}}})
        await asyncio.sleep(1.0)  # kopf's batch window is 0.1 s
        assert not runners.running((NS, NAME))
        assert phase(cluster) == "Failed"


async def test_deletion_leaves_an_object_another_owner_holds(cluster, run_operator, wait, make_job):
    """Children are deleted by name only if the deleted job owns them: a ``<job>-evaluate`` Job
    of an earlier PruningJob of the same name (another uid) stays."""
    async with run_operator() as registry:
        await cluster.create("pruningjobs", make_job(NAME))
        await wait(lambda: cluster.obj("deployments", f"{NAME}-sampler-reference"), what="reference sampler")
        await cluster.create_foreign_job(f"{NAME}-evaluate", NAME)
        await cluster.delete("pruningjobs", NAME)
        await wait(lambda: cluster.names("deployments") == [] and cluster.names("configmaps") == [],
                   what="the job's own children deleted")
        await wait(lambda: not registry.o1pruner_runtime.runners.running((NS, NAME)))
        assert cluster.names("jobs") == [f"{NAME}-evaluate"]
