"""The OpenAI-compatible sampler against an in-process fake server (httpx MockTransport):
request shape, per-choice token counts, retries with backoff, failures isolated per problem,
bounded concurrency. The real vLLM server is exercised by the `vllm` test tier."""

import json
import threading
import time

import httpx
import pytest

from o1pruner.sampling.base import GenerationParams
from o1pruner.sampling.openai import OpenAISampler, SamplingRequestError

PARAMS = GenerationParams(n=3, temperature=0.5, top_p=0.8, max_tokens=64, seed=7)


def _choices(n, with_ids=True):
    out = []
    for i in range(n):
        c = {"index": i, "message": {"role": "assistant", "content": f"answer {i} \\boxed{{{i}}}"}, "finish_reason": "stop"}
        if with_ids:
            c["token_ids"] = list(range(10 + i))
        out.append(c)
    return out


class FakeServer:
    def __init__(self, fail_first=0, status=503, with_ids=True, delay=0.0):
        self.requests = []
        self.fail_first = fail_first
        self.status = status
        self.with_ids = with_ids
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with self.lock:
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failing = len(self.requests) <= self.fail_first
        try:
            if self.delay:
                time.sleep(self.delay)
            if failing:
                return httpx.Response(self.status, text="overloaded")
            n = body["n"]
            return httpx.Response(200, json={"choices": _choices(n, self.with_ids), "usage": {"completion_tokens": 99}})
        finally:
            with self.lock:
                self.in_flight -= 1


def sampler(server, **kw):
    return OpenAISampler("http://sampler:8000/v1", "reference", transport=httpx.MockTransport(server),
                         backoff_base=0.01, backoff_max=0.02, **kw)


PROMPTS = [(f"p{i}", [{"role": "user", "content": f"q{i}"}]) for i in range(4)]


def test_request_shape_and_token_counts():
    server = FakeServer()
    with sampler(server) as s:
        out = dict(s.generate(PROMPTS, PARAMS))
    assert set(out) == {"p0", "p1", "p2", "p3"}
    assert [c.tokens for c in out["p0"]] == [10, 11, 12]
    body = server.requests[0]
    assert body["n"] == 3 and body["temperature"] == 0.5 and body["top_p"] == 0.8 and body["max_tokens"] == 64
    assert body["model"] == "reference"
    # per-problem seeds are stable and independent of order
    seeds = {json.dumps(b["messages"]): b["seed"] for b in server.requests}
    assert len(set(seeds.values())) == 4
    assert PARAMS.seed_for("p0") == GenerationParams(3, 0.5, 0.8, 64, 7).seed_for("p0")


def test_retries_transient_errors_then_succeeds():
    server = FakeServer(fail_first=2, status=503)
    with sampler(server, max_retries=3) as s:
        out = dict(s.generate(PROMPTS[:1], PARAMS))
    assert len(out["p0"]) == 3 and len(server.requests) == 3


def test_gives_up_and_reports_without_aborting_others():
    server = FakeServer(fail_first=100, status=503)
    with sampler(server, max_retries=1) as s:
        out = dict(s.generate(PROMPTS[:2], PARAMS))
    assert all(isinstance(v, SamplingRequestError) for v in out.values())
    assert "gave up after 2 attempts" in str(out["p0"])


def test_non_retryable_status_fails_fast():
    server = FakeServer(fail_first=100, status=400)
    with sampler(server, max_retries=5) as s:
        out = dict(s.generate(PROMPTS[:1], PARAMS))
    assert isinstance(out["p0"], SamplingRequestError) and len(server.requests) == 1


def test_token_count_fallbacks():
    server = FakeServer(with_ids=False)
    with sampler(server, count_tokens=lambda text: len(text.split())) as s:
        out = dict(s.generate(PROMPTS[:1], PARAMS))
    assert [c.tokens for c in out["p0"]] == [3, 3, 3]  # "answer i \\boxed{i}"
    with sampler(FakeServer(with_ids=False)) as s:  # n = 1: usage.completion_tokens is per choice
        out = dict(s.generate(PROMPTS[:1], GenerationParams(1, 0.0, 1.0, 8, 0)))
    assert out["p0"][0].tokens == 99
    with sampler(FakeServer(with_ids=False)) as s:
        out = dict(s.generate(PROMPTS[:1], PARAMS))
    assert isinstance(out["p0"], SamplingRequestError)


def test_bounded_concurrency():
    server = FakeServer(delay=0.05)
    prompts = [(f"p{i}", [{"role": "user", "content": str(i)}]) for i in range(12)]
    with sampler(server, concurrency=3) as s:
        assert len(dict(s.generate(prompts, PARAMS))) == 12
    assert 1 < server.max_in_flight <= 3


def test_connection_refused_is_retried_then_reported():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with OpenAISampler("http://127.0.0.1:9/v1", "m", transport=httpx.MockTransport(refuse),
                       max_retries=2, backoff_base=0.01) as s:
        out = dict(s.generate(PROMPTS[:1], PARAMS))
    assert isinstance(out["p0"], SamplingRequestError) and "ConnectError" in str(out["p0"])


@pytest.mark.parametrize("bad", [{"choices": []}, {"choices": _choices(2)}])
def test_wrong_number_of_choices_is_an_error(bad):
    with OpenAISampler("http://x/v1", "m", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=bad)),
                       max_retries=0) as s:
        out = dict(s.generate(PROMPTS[:1], PARAMS))
    assert isinstance(out["p0"], SamplingRequestError)
