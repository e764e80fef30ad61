"""Items 4 and 5 at the operator level: how a failing phase surfaces in the PruningJob's status.

* A sampler pod that crashes once (restarted by its Deployment) does not fail the job nor
  restart the sampling Job; a crash loop fails the job with the pod's reason.
* A phase container that dies on a persistent S3 failure: the job goes to Failed with a
  condition whose message carries the storage error (code and key), taken from the failed
  pod's termination message (``terminationMessagePolicy: FallbackToLogsOnError`` puts the
  log tail there). Nothing in S3 is touched by the operator, so produced data stays.
"""

from __future__ import annotations

from rel_cluster import example_job, operator, operator_config, wait_for

STORAGE_ERROR = ("o1pruner.storage.StorageError: S3 PUT s3://o1pruner-runs/s3-down/reference/shards/"
                 "part-000001764334800000-1a2b3c4d.jsonl failed: SlowDown (HTTP 503) after 4 retries")


def _condition(cluster, name, type_):
    return next((c for c in cluster.status(name).get("conditions") or [] if c["type"] == type_), None)


async def _to_sampling_job(cluster, name):
    await wait_for(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), what="sampler")
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait_for(lambda: cluster.obj("jobs", f"{name}-sample"), what="sample Job")


def _sampler_pod(name, restarts, waiting=None):
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"phase": "Running", "containerStatuses": [{
        "name": "vllm", "restartCount": restarts, "state": state,
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}


async def test_a_sampler_pod_crash_does_not_restart_sampling(cluster):
    name = "sampler-blip"
    async with operator(operator_config(cluster)):
        await cluster.create("pruningjobs", example_job(name))
        await _to_sampling_job(cluster, name)
        labels = cluster.obj("deployments", f"{name}-sampler-reference")["spec"]["template"]["metadata"]["labels"]
        await cluster.pod(f"{name}-sampler-reference-abc", labels, _sampler_pod(name, restarts=1))
        n_calls = len(cluster.calls)
        await wait_for(lambda: len(cluster.calls) > n_calls + 20, what="a few reconciles")
        assert cluster.phase(name) == "Sampling" and not _condition(cluster, name, "Failed")
        await cluster.job_done(f"{name}-sample")
        await wait_for(lambda: cluster.phase(name) == "Training", what="Training")
    creates = cluster.creates()
    assert creates[("jobs", f"{name}-sample")] == 1  # the sampling Job was never re-made


async def test_a_sampler_crash_loop_fails_the_job_with_the_pods_reason(cluster):
    name = "sampler-loop"
    async with operator(operator_config(cluster)):
        await cluster.create("pruningjobs", example_job(name))
        await _to_sampling_job(cluster, name)
        labels = cluster.obj("deployments", f"{name}-sampler-reference")["spec"]["template"]["metadata"]["labels"]
        await cluster.pod(f"{name}-sampler-reference-abc", labels, _sampler_pod(name, 3, "CrashLoopBackOff"))
        await wait_for(lambda: cluster.phase(name) == "Failed", what="Failed")
    failed = _condition(cluster, name, "Failed")
    assert failed["reason"] == "SamplerFailed"
    assert "CrashLoopBackOff after 3 restarts" in failed["message"] and "OOMKilled" in failed["message"]
    assert cluster.obj("deployments", f"{name}-sampler-reference")["spec"]["replicas"] == 0  # GPUs freed


async def test_a_failed_phase_job_sets_the_failed_condition(cluster):
    name = "job-fails"
    async with operator(operator_config(cluster)):
        await cluster.create("pruningjobs", example_job(name))
        await _to_sampling_job(cluster, name)
        await cluster.job_done(f"{name}-sample", failed=True)
        await wait_for(lambda: cluster.phase(name) == "Failed", what="Failed")
    failed = _condition(cluster, name, "Failed")
    assert failed["reason"] == "SamplingFailed" and "BackoffLimitExceeded" in failed["message"]
    assert not [c for c in cluster.calls if c.verb == "delete" and c.resource == "jobs"]  # its logs stay


async def test_a_persistent_s3_failure_surfaces_in_the_failed_condition(cluster):
    name = "s3-down"
    async with operator(operator_config(cluster)):
        await cluster.create("pruningjobs", example_job(name))
        await _to_sampling_job(cluster, name)
        labels = cluster.obj("jobs", f"{name}-sample")["spec"]["template"]["metadata"]["labels"]
        for i in range(3):  # backoffLimit 2: three pods, each dying on the same S3 error
            await cluster.pod(f"{name}-sample-{i}", labels, {"phase": "Failed", "containerStatuses": [
                {"name": "sample", "restartCount": 0, "state": {"terminated": {
                    "exitCode": 1, "reason": "Error", "message": f"Traceback ...\n{STORAGE_ERROR}\n",
                    "finishedAt": f"2026-11-28T13:0{i}:00Z"}}}]})
        await cluster.job_done(f"{name}-sample", failed=True)
        await wait_for(lambda: cluster.phase(name) == "Failed", what="Failed")
    failed = _condition(cluster, name, "Failed")
    print(f"s3-down: {failed['reason']}: {failed['message']}")
    assert "SlowDown" in failed["message"]
    assert "reference/shards/part-000001764334800000-1a2b3c4d.jsonl" in failed["message"]
