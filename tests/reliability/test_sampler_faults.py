"""Item 5 — sampler faults: the OpenAI sampler against a fake vLLM server over real HTTP.

Timeouts, 429/5xx, dropped connections and a sampler pod that dies and comes back are retried
per request; only the failing problems are retried (never the whole sampling); what still fails
is reported by a ``PhaseError`` that keeps finished shards, and a rerun samples only the missing
problems. Also item 1's "malformed model outputs are counted, never crash the run".
"""

from __future__ import annotations

import pytest
from conftest import job_dict
from rel_fakes import FakeVLLM

from o1pruner import pipeline
from o1pruner.data import load_dataset
from o1pruner.sampling.collect import read_shards
from o1pruner.sampling.openai import OpenAISampler
from o1pruner.spec import parse_job

K = 3
N = 8


@pytest.fixture
def ctx(tmp_path):
    job = parse_job(job_dict("/nonexistent-model", str(tmp_path / "store"), None, "sampler-faults",
                             sampling={"k": K, "backend": "vllm"}))
    job.spec.datasets.train.generator.count = N
    return pipeline.open_context(job, with_metrics=False)


@pytest.fixture
def problems(ctx):
    return load_dataset(ctx.spec.datasets.train).problems


def _server(problems, plan=None, **kw) -> FakeVLLM:
    return FakeVLLM({p.problem: p.answer for p in problems}, plan, **kw).start()


def _sampler(server: FakeVLLM, **kw) -> OpenAISampler:
    opts = dict(concurrency=2, timeout=0.5, max_retries=3, backoff_base=0.02, backoff_max=0.2) | kw
    return OpenAISampler(server.url, "reference", **opts)


def test_timeouts_throttling_5xx_and_drops_are_retried_per_request(ctx, problems):
    faults = {  # problem index -> actions of its first attempts (then "ok")
        0: ["timeout"], 1: [503, 500], 2: ["drop"], 3: [429, 429], 4: ["timeout", 502],
    }
    texts = [p.problem for p in problems]
    plan = lambda text, attempt: (faults.get(texts.index(text), []) + ["ok"] * 9)[attempt - 1]  # noqa: E731
    server = _server(problems, plan)
    try:
        out = pipeline.phase_sample(ctx, sampler=_sampler(server), flush_every=1)
    finally:
        server.stop()
    assert ctx.manifest.is_done("sample")
    assert out["samples_total"] == N * K and out["problems"] == N
    recs = ctx.store.read_jsonl("reference/samples.jsonl")
    assert sorted({r["problem_id"] for r in recs}) == sorted(p.id for p in problems)
    assert all(r["correct"] for r in recs)
    # only the faulty problems were asked again: the sampling itself never restarted
    for i, p in enumerate(problems):
        assert server.attempts[p.problem] == len(faults.get(i, [])) + 1, i
    injected = sum(len(v) for v in faults.values())
    assert sum(server.attempts.values()) == N + injected


def test_sampler_pod_crash_mid_run_is_ridden_out_without_resampling(ctx, problems):
    """The server dies at the 4th request (that one is dropped) and is back 0.6 s later."""
    crash_at = 4
    server = _server(problems, lambda text, attempt: "ok")
    crashed = []

    def on_request(n: int) -> None:
        if n == crash_at and not crashed:
            crashed.append(n)
            server.plan = lambda text, attempt: "drop" if not crashed[1:] and not crashed.append(0) else "ok"
            server.crash_and_restart(downtime=0.6)

    server.on_request = on_request
    sampler = _sampler(server, concurrency=1, max_retries=6, backoff_base=0.1, backoff_max=1.0)
    try:
        out = pipeline.phase_sample(ctx, sampler=sampler, flush_every=1)
    finally:
        server.stop()
    assert crashed, "the fake pod never crashed"
    assert ctx.manifest.is_done("sample") and out["samples_total"] == N * K
    # problems answered before the crash were not sampled again
    before = [p for p in problems if server.attempts[p.problem] == 1]
    assert len(before) >= crash_at - 1
    assert sum(server.served.values()) == N  # every problem answered exactly once
    assert sampler.requests_sent > N  # the dropped request and the refused connections were retried


def test_persistent_failures_are_retried_then_reported_and_a_rerun_fills_only_the_gaps(ctx, problems):
    sampler_retries = 2
    flaky, dead = problems[1].problem, problems[5].problem
    per_round = sampler_retries + 1

    def plan(text, attempt):
        if text == dead:
            return 500
        if text == flaky and attempt <= per_round:  # fails the whole first round, ok in the retry round
            return "timeout"
        return "ok"

    server = _server(problems, plan, stall_seconds=0.8)
    try:
        with pytest.raises(pipeline.PhaseError) as err:
            pipeline.phase_sample(ctx, sampler=_sampler(server, max_retries=sampler_retries, timeout=0.3), flush_every=1)
        assert "1 of 8 problems failed" in str(err.value) and problems[5].id in str(err.value)
        assert server.attempts[dead] == 2 * per_round  # first round + the retry round, then reported
        assert server.attempts[flaky] == per_round + 1
        assert not ctx.manifest.is_done("sample")
        kept = {r["problem_id"] for r in read_shards(ctx.store, "reference")}
        assert kept == {p.id for p in problems} - {problems[5].id}  # finished work is kept

        # the dead problem's server recovers: a rerun asks only for it
        before = dict(server.attempts)
        server.plan = lambda text, attempt: "ok"
        out = pipeline.phase_sample(ctx, sampler=_sampler(server), flush_every=1)
    finally:
        server.stop()
    asked = {t: server.attempts[t] - before.get(t, 0) for t in server.attempts}
    assert {t for t, n in asked.items() if n} == {dead}
    assert out["resumed_problems"] == N - 1 and out["samples_total"] == N * K
    assert ctx.manifest.is_done("sample")


def test_malformed_model_outputs_are_graded_wrong_counted_and_never_crash(ctx, problems):
    texts = [p.problem for p in problems]
    bad = {0: "garbage", 1: "empty", 2: "garbage"}
    server = _server(problems, lambda text, attempt: bad.get(texts.index(text), "ok"))
    try:
        out = pipeline.phase_sample(ctx, sampler=_sampler(server), flush_every=1)
    finally:
        server.stop()
    recs = ctx.store.read_jsonl("reference/samples.jsonl")
    wrong = [r for r in recs if not r["correct"]]
    assert {r["problem_id"] for r in wrong} == {problems[i].id for i in bad}
    assert all(r["extracted"] is None for r in wrong)
    assert out["samples_total"] == N * K
    assert out["ungradable_samples"] == len(bad) * K  # counted and reported in the manifest
    assert ctx.manifest.outputs("sample")["ungradable_samples"] == len(bad) * K


def test_a_response_that_is_not_json_fails_only_its_problem(ctx, problems):
    target = problems[3].problem
    server = _server(problems, lambda text, attempt: "bad-json" if text == target else "ok")
    try:
        with pytest.raises(pipeline.PhaseError, match=problems[3].id):
            pipeline.phase_sample(ctx, sampler=_sampler(server), flush_every=1)
    finally:
        server.stop()
    kept = {r["problem_id"] for r in read_shards(ctx.store, "reference")}
    assert kept == {p.id for p in problems} - {problems[3].id}
