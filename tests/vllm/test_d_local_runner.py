"""The local runner's switch: ``sampling.backend: vllm`` with no endpoint makes the phase start
its own vLLM server (:func:`o1pruner.vllm_server.local_vllm_sampler`), sample through it, and
stop it when the phase ends."""

from __future__ import annotations

import os
import subprocess
from collections import Counter

import httpx
import pytest

from o1pruner.storage import open_storage

from .conftest import cli_json, o1pruner_cmd

pytestmark = pytest.mark.vllm

N, K, MAX_TOKENS = 4, 2, 32


def test_backend_vllm_without_endpoint_starts_and_stops_a_server(vllm_controller, vllm_python, make_job):
    vllm_controller.stop()  # never two vLLM servers on this machine at once
    job, path = make_job("local-runner", count=N, k=K, max_tokens=MAX_TOKENS)
    assert job.spec.sampling.backend == "vllm" and job.spec.sampling.endpoint is None
    env = dict(os.environ, O1PRUNER_VLLM_PYTHON=vllm_python, O1PRUNER_VLLM_DEVICE="cpu")
    proc = subprocess.run(o1pruner_cmd("sample", str(path)), capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "starting vLLM" in proc.stderr and "vllm.entrypoints.openai.api_server" in proc.stderr
    out = cli_json(proc.stdout)
    assert out["samples_total"] == N * K

    samples = open_storage(job.spec.storage).read_jsonl("reference/samples.jsonl")
    assert set(Counter(r["problem_id"] for r in samples).values()) == {K}
    assert all(1 <= r["length"] <= MAX_TOKENS for r in samples)

    # the phase stopped its server: the port it logged no longer answers
    line = next(line for line in proc.stderr.splitlines() if "waiting for vLLM on" in line)
    url = line.split("waiting for vLLM on ", 1)[1].split()[0]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=3.0)
