"""The raw server: the Deployment's arguments, /health, /v1/chat/completions with n = K and a
seed, and per-choice token counts that agree with usage, with /metrics and with the tokenizer."""

from __future__ import annotations

import httpx
import pytest

from o1pruner.prompts import build_messages
from o1pruner.spec import PromptSpec
from o1pruner.vllm_args import vllm_server_args

from .conftest import SERVED_NAME

pytestmark = pytest.mark.vllm

K = 4
MAX_TOKENS = 64


def test_tier_runs_the_deployment_arguments(vllm_controller, model_dir):
    """The CPU tier starts vLLM with what the operator's Deployment renders for this spec, plus
    only the one documented CPU switch (chunked prefill off: see ``cpu_overrides``)."""
    ctl = vllm_controller
    deployment = vllm_server_args(ctl.spec, model_dir, port=ctl.port, host="127.0.0.1")
    assert ctl.args == deployment + ["--no-enable-chunked-prefill"]
    for flag in ("--model", "--served-model-name", "--port", "--max-model-len", "--dtype", "--seed",
                 "--tensor-parallel-size", "--gpu-memory-utilization"):
        assert flag in deployment


def _chat(server, messages, *, n=K, seed=1234, max_tokens=MAX_TOKENS, temperature=0.7):
    body = {
        "model": SERVED_NAME, "messages": messages, "n": n, "seed": seed, "temperature": temperature,
        "top_p": 0.9, "max_tokens": max_tokens, "return_token_ids": True,
    }
    resp = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=300.0)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()


def test_health_and_model_list(vllm):
    assert httpx.get(f"{vllm.url}/health", timeout=10).status_code == 200
    models = httpx.get(f"{vllm.base_url}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [SERVED_NAME]


def test_chat_n_k_seed_and_token_counts(vllm, tokenizer):
    messages = build_messages("Tom has 3 apples and buys 4 more. How many apples does he have?", PromptSpec())
    before = vllm.metrics()
    data = _chat(vllm, messages)
    after = vllm.metrics()

    choices = sorted(data["choices"], key=lambda c: c["index"])
    assert [c["index"] for c in choices] == list(range(K))
    counts = [len(c["token_ids"]) for c in choices]
    # usage agrees with the per-choice counts, and so does the server's own token counter
    assert data["usage"]["completion_tokens"] == sum(counts)
    assert after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"] == sum(counts)
    # n = K runs as K sequences
    assert after["vllm:request_success_total"] - before["vllm:request_success_total"] == K

    eos = set(tokenizer.all_special_ids)
    exact = 0
    for c in choices:
        ids = c["token_ids"]
        text = c["message"]["content"]
        assert 1 <= len(ids) <= MAX_TOKENS
        if c["finish_reason"] == "length":
            assert len(ids) == MAX_TOKENS
        else:
            assert c["finish_reason"] == "stop" and ids[-1] in eos  # EOS is counted, as vLLM bills it
        # the ids are the text: decoding gives the content back
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
        # re-tokenising the text gives the same count (EOS aside), up to BPE merge ambiguities
        retok = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        content_ids = len([t for t in ids if t not in eos])
        assert abs(retok - content_ids) <= max(2, content_ids // 20), (retok, content_ids, text)
        exact += retok == content_ids
    assert exact >= K - 1

    # the seed makes the request reproducible
    again = _chat(vllm, messages)
    assert [c["message"]["content"] for c in sorted(again["choices"], key=lambda c: c["index"])] == [
        c["message"]["content"] for c in choices
    ]


def test_greedy_single_sample_usage(vllm):
    """Evaluation's request shape (n = 1, temperature 0): usage equals the one choice's count."""
    data = _chat(vllm, build_messages("What is 12 + 30?", PromptSpec()), n=1, temperature=0.0, max_tokens=32)
    (choice,) = data["choices"]
    assert data["usage"]["completion_tokens"] == len(choice["token_ids"])


def test_many_seeded_requests_at_once(vllm, tokenizer):
    """Enough seeded n = K requests in flight that their prompts exceed one step's token budget.
    With chunked prefill on, vLLM 0.32's CPU worker died here ("CPU Generator does not use
    offset"); the CPU overrides turn it off, and every request must succeed."""
    from concurrent.futures import ThreadPoolExecutor

    from o1pruner.data import generate_arithmetic

    problems = generate_arithmetic(16, seed=99)
    prompts = [build_messages(p.problem, PromptSpec()) for p in problems]
    texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in prompts]
    prompt_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts) * 8
    assert prompt_tokens > 4096  # the same load (16 requests x n=8) that crashed the engine
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda m: _chat(vllm, m, n=8, max_tokens=8, seed=len(m[-1]["content"])), prompts))
    assert all(len(r["choices"]) == 8 for r in results)
    assert httpx.get(f"{vllm.url}/health", timeout=10).status_code == 200


def test_the_sampler_probes_answer_on_the_real_server(vllm):
    """The Deployment's readiness path (/v1/models) lists the served model once the server is up,
    so a Ready sampler really serves it; liveness (/health) answers too."""
    from o1pruner.vllm_args import LIVENESS_PATH, READINESS_PATH

    assert httpx.get(f"{vllm.url}{LIVENESS_PATH}", timeout=10).status_code == 200
    ready = httpx.get(f"{vllm.url}{READINESS_PATH}", timeout=10)
    assert ready.status_code == 200 and SERVED_NAME in [m["id"] for m in ready.json()["data"]]


def test_every_vllm_metric_a_dashboard_queries_is_exported(vllm):
    """vLLM renames metrics between versions (vllm:gpu_cache_usage_perc is gone since 0.12): every
    vllm:* series a dashboard panel queries must exist on this server's /metrics."""
    import json
    import re
    from pathlib import Path

    boards = Path(__file__).resolve().parents[2] / "charts" / "o1-pruner" / "dashboards"
    queried = set()
    for board in boards.glob("*.json"):
        json.loads(board.read_text())  # a dashboard, valid JSON; every vllm:* name in it counts
        queried |= set(re.findall(r"vllm:[a-z0-9_:]+", board.read_text()))
    assert queried, "no dashboard queries a vLLM metric"
    # one request first, so the counters and histograms have samples
    httpx.post(f"{vllm.base_url}/chat/completions", timeout=120, json={
        "model": SERVED_NAME, "messages": [{"role": "user", "content": "1+1?"}], "max_tokens": 4})
    text = httpx.get(f"{vllm.url}/metrics", timeout=10).text
    exported = set(re.findall(r"^(vllm:[a-zA-Z0-9_:]+)", text, re.MULTILINE))
    assert queried <= exported, f"queried by a dashboard, not exported by vLLM: {sorted(queried - exported)}"
