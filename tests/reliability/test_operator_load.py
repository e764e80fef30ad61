"""Item 7 — load. 50 PruningJobs applied at once against the emulator: every one reaches its
first phase (Sampling, with its sampler Deployment, Service and ConfigMap created once) within a
bounded time, with no reconcile error (operator metric and ERROR log records)."""

from __future__ import annotations

import asyncio
import logging
import time

from rel_cluster import ErrorLogs, example_job, operator, operator_config, wait_for

from o1pruner_operator import metrics

import os
JOBS = int(os.environ.get("RELIABILITY_LOAD_JOBS", 50))
BOUND_SECONDS = 30.0  # measured: about 6 s on a shared 2-core machine; the figure is printed
RESYNC = 5.0  # periodic re-check (default 15 s); creating a job wakes its reconciler at once


def _errors() -> float:
    return sum(metrics.REGISTRY.get_sample_value("o1pruner_operator_reconcile_errors_total", {"handler": h}) or 0.0
               for h in ("reconcile", "delete"))


async def test_fifty_jobs_at_once_reach_sampling_in_bounded_time_without_errors(cluster):
    names = [f"load-{i:02d}" for i in range(JOBS)]
    errors_before = _errors()
    logs = ErrorLogs()
    for logger in ("kopf", "o1pruner_operator"):
        logging.getLogger(logger).addHandler(logs)
    try:
        async with operator(operator_config(cluster, resync_seconds=RESYNC)):
            t0 = time.monotonic()
            await asyncio.gather(*(cluster.create("pruningjobs", example_job(n)) for n in names))
            applied = time.monotonic() - t0
            reached: dict[str, float] = {}

            def all_sampling() -> bool:
                now = time.monotonic() - t0
                jobs, deps = cluster.index("pruningjobs"), cluster.index("deployments")
                for n in names:
                    phase = ((jobs.get(n) or {}).get("status") or {}).get("phase")
                    if n not in reached and phase == "Sampling" and f"{n}-sampler-reference" in deps:
                        reached[n] = now
                return len(reached) == JOBS

            try:
                await wait_for(all_sampling, timeout=BOUND_SECONDS, what=f"{JOBS} jobs in Sampling", poll=0.2)
            except AssertionError:
                raise AssertionError(f"{len(reached)}/{JOBS} in Sampling after {BOUND_SECONDS}s; "
                                     f"{len(cluster.calls)} API calls; phases "
                                     f"{sorted(str(cluster.phase(n)) for n in names)[:5]}...") from None
            elapsed = time.monotonic() - t0
    finally:
        for logger in ("kopf", "o1pruner_operator"):
            logging.getLogger(logger).removeHandler(logs)

    times = sorted(reached.values())
    print(f"load: {JOBS} PruningJobs applied in {applied:.2f}s; all in Sampling after {elapsed:.2f}s "
          f"(median {times[JOBS // 2]:.2f}s, p95 {times[int(JOBS * 0.95) - 1]:.2f}s, max {times[-1]:.2f}s)")
    assert _errors() == errors_before, "reconcile errors under load"
    assert not logs.records, [r.getMessage()[:200] for r in logs.records[:5]]
    for n in names:
        kids = cluster.children(n)
        assert kids["deployments"] == [f"{n}-sampler-reference"]
        assert kids["services"] == [f"{n}-sampler-reference"]
        assert kids["configmaps"] == [f"{n}-config"]
        assert kids["jobs"] == []  # no sampling Job before its sampler is ready
    creates = {k: c for k, c in cluster.creates().items() if k[0] not in ("pruningjobs",)}
    assert all(c == 1 for c in creates.values()), {k: c for k, c in creates.items() if c > 1}
