"""Operator reaction time and idle API traffic, on kmock's Kubernetes emulator.

Two figures for the operator as shipped (its default ``O1PRUNER_RESYNC_SECONDS``):

* latency: time from a child's status change (the sampling Job completes; the PyTorchJob
  succeeds) to the PruningJob's phase change (Training; Evaluating). Each change is made after a
  random pause, so that it lands anywhere in the reconciler's resync cycle;
* idle traffic: API requests while nothing changes (jobs in Training with a running PyTorchJob),
  over a window as long as the longest resync measured: the operator's client per job per
  minute, and kopf's (watch streams re-established; one per watched kind, not per job).

The operator code measured is the one on PYTHONPATH; ``--label`` names the run in the JSON
(one entry per label in ``bench/results/operator/latency.json``). Before/after watches::

    git archive <commit-before> operator trainer_image | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/trainer_image:/tmp/before/operator python bench/operator_latency.py \\
        --label polling --commit <commit-before>
    PYTHONPATH=trainer_image:operator python bench/operator_latency.py --label watches --commit HEAD
    python bench/operator_latency.py --render      # the table in docs/reliability.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "operator" / "latency.json"  # not a pruning benchmark: outside bench/results/*.json
sys.path.insert(0, str(ROOT / "tests" / "reliability"))  # the emulator harness (rel_cluster)


def _quantiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"n": len(xs), "median": round(statistics.median(xs), 3),
            "p90": round(xs[min(len(xs) - 1, int(0.9 * len(xs)))], 3), "max": round(xs[-1], 3),
            "min": round(xs[0], 3)}


async def _until(pred: Any, timeout: float, poll: float = 0.005) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"not within {timeout}s")
        await asyncio.sleep(poll)
    return time.monotonic() - t0


async def _to_training(cluster: Any, name: str, wait_for: Any) -> None:
    await wait_for(lambda: cluster.obj("deployments", f"{name}-sampler-reference"), timeout=60, what="sampler")
    await cluster.deployment_ready(f"{name}-sampler-reference")
    await wait_for(lambda: cluster.obj("jobs", f"{name}-sample"), timeout=120, what="sample Job")


async def _one_job(cluster: Any, name: str, rng: random.Random, spread: float, wait_for: Any) -> list[dict]:
    """Drive one job through two child-driven transitions; the latency of each."""
    samples = []
    await _to_training(cluster, name, wait_for)
    for child, change, phase in (
        ("Job", lambda: cluster.job_done(f"{name}-sample"), "Training"),
        ("PyTorchJob", lambda: cluster.pytorchjob(f"{name}-train", "Succeeded"), "Evaluating"),
    ):
        if phase == "Evaluating":
            await wait_for(lambda: cluster.obj("pytorchjobs", f"{name}-train"), timeout=120, what="PyTorchJob")
        await asyncio.sleep(rng.uniform(0, spread))
        t0 = time.monotonic()
        await change()
        await _until(lambda: cluster.phase(name) == phase, timeout=spread * 4 + 60)
        samples.append({"job": name, "child": child, "to": phase, "seconds": round(time.monotonic() - t0, 3)})
    return samples


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import kmock
    from rel_cluster import Emulator, example_job, install, operator, operator_config, wait_for

    from o1pruner_operator.settings import OperatorConfig

    resync = OperatorConfig().resync_seconds  # as shipped
    spread = min(resync, args.max_spread)
    rng = random.Random(args.seed)
    async with Emulator() as emu, kmock.Server(emu):
        cluster = install(emu)
        # The PyTorchJob backend: the one both measured commits share (TrainJob became the default later).
        async with operator(operator_config(cluster, resync_seconds=resync, training_backend="pytorchjob")):
            # 1. latency: jobs in parallel, each change after a random pause
            names = [f"lat-{i}" for i in range(args.latency_jobs)]
            for n in names:
                await cluster.create("pruningjobs", example_job(n))
            runs = await asyncio.gather(*(_one_job(cluster, n, random.Random(rng.random()), spread, wait_for)
                                          for n in names))
            samples = [s for run in runs for s in run]
            for n in names:  # out of the way of the idle window
                await cluster.delete("pruningjobs", n)
            await wait_for(lambda: not any(cluster.obj("pruningjobs", n) for n in names), timeout=60,
                           what="latency jobs deleted")

            # 2. idle traffic: jobs in Training, nothing changes
            idle = [f"idle-{i}" for i in range(args.idle_jobs)]
            for n in idle:
                await cluster.create("pruningjobs", example_job(n))
            for n in idle:
                await _to_training(cluster, n, wait_for)
                await cluster.job_done(f"{n}-sample")
            for n in idle:
                await wait_for(lambda n=n: cluster.obj("pytorchjobs", f"{n}-train"), timeout=120, what="PyTorchJob")
                await cluster.pytorchjob(f"{n}-train", "Running")
            await asyncio.sleep(args.settle)
            start = len(cluster.calls)
            t0 = time.monotonic()
            await asyncio.sleep(args.idle_seconds)
            window = time.monotonic() - t0
            calls = cluster.calls[start:]
    operator_calls = [c for c in calls if not c.agent.startswith("kmock")]
    by_agent: dict[str, int] = {}
    by_verb: dict[str, int] = {}
    for c in operator_calls:
        agent = "kopf" if c.agent.startswith("kopf") else "operator client"
        by_agent[agent] = by_agent.get(agent, 0) + 1
        key = f"{c.verb} {c.resource}"
        by_verb[key] = by_verb.get(key, 0) + 1
    per_job_min = lambda n: round(n / args.idle_jobs / (window / 60.0), 3)  # noqa: E731
    return {
        "label": args.label,
        "commit": args.commit,
        "resync_seconds": resync,
        "latency": {
            "what": "child status change -> PruningJob phase change (s)",
            "random_pause_before_change_s": [0, spread],
            "all": _quantiles([s["seconds"] for s in samples]),
            "samples": samples,
        },
        "idle": {
            "jobs": args.idle_jobs,
            "window_s": round(window, 1),
            "requests": len(operator_calls),
            "requests_by_agent": by_agent,
            "requests_by_verb": dict(sorted(by_verb.items())),
            "per_job_per_minute": per_job_min(len(operator_calls)),
            "operator_client_per_job_per_minute": per_job_min(by_agent.get("operator client", 0)),
        },
    }


def render(results: dict[str, Any]) -> str:
    """The markdown table of docs/reliability.md, from the JSON."""
    lines = [
        "| operator | resync | child status change → phase change: median / p90 / max (samples) "
        "| idle: requests per job per minute (operator's client) | idle: kopf's requests per minute "
        "(whole operator) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, r in results.items():
        q, idle = r["latency"]["all"], r["idle"]
        kopf_per_min = idle["requests_by_agent"].get("kopf", 0) / (idle["window_s"] / 60.0)
        lines.append(
            f"| {label} (`{r['commit']}`) | {r['resync_seconds']:g} s "
            f"| {q['median']:.2f} / {q['p90']:.2f} / {q['max']:.2f} s ({q['n']}) "
            f"| {idle['operator_client_per_job_per_minute']:.2f} ({idle['jobs']} jobs, {idle['window_s']:.0f} s) "
            f"| {kopf_per_min:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", help="name of this run in the JSON (e.g. polling, watches)")
    ap.add_argument("--commit", default="", help="the commit of the operator code measured")
    ap.add_argument("--latency-jobs", type=int, default=6)
    ap.add_argument("--idle-jobs", type=int, default=5)
    ap.add_argument("--idle-seconds", type=float, default=300.0, help="idle window (>= the longest resync)")
    ap.add_argument("--settle", type=float, default=5.0, help="pause before the idle window")
    ap.add_argument("--max-spread", type=float, default=15.0, help="random pause before a change, at most")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--render", action="store_true", help="print the docs table from the JSON and exit")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.render:
        print(render(results), end="")
        return 0
    if not args.label:
        ap.error("--label is required to measure")
    logging.basicConfig(level=logging.WARNING)
    results[args.label] = asyncio.run(measure(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
