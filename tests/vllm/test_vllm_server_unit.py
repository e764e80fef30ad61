"""``o1pruner.vllm_server`` without vLLM (fast tier): argument overrides, metrics parsing, and the
process handling (health wait, early exit, stop/kill of the whole process group) against a fake
server script standing in for ``python -m vllm.entrypoints.openai.api_server``."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from o1pruner import vllm_server as vs
from o1pruner.spec import parse_spec
from o1pruner.vllm_args import vllm_server_args


def _spec(**model):
    return parse_spec({
        "model": {"source": "embedded:smollm2-135m-instruct", **model},
        "datasets": {"train": {"name": "t", "source": "builtin:arithmetic"},
                     "eval": [{"name": "e", "source": "builtin:arithmetic"}]},
        "storage": {"uri": "/tmp/unused"},
    })


def test_cpu_overrides_for_the_default_spec(tmp_path):
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 8192}')
    args = vs.server_args_for(_spec(), str(tmp_path), port=1234, device="cpu")
    # auto dtype becomes float32; 16384 is capped (CPU KV cache, and the model's 8192 positions)
    assert args[args.index("--dtype") + 1] == "float32"
    assert args[args.index("--max-model-len") + 1] == "2048"
    # chunked prefill off (vLLM 0.32 CPU crashes on partly prefilled seeded requests)
    assert args[-1] == "--no-enable-chunked-prefill"
    # everything else is the Deployment's list
    deployment = vllm_server_args(_spec(), str(tmp_path), port=1234, host="127.0.0.1")
    strip = lambda a: [x for i, x in enumerate(a) if x not in ("--dtype", "--max-model-len") and a[i - 1] not in ("--dtype", "--max-model-len")]  # noqa: E731
    assert strip(args[:-1]) == strip(deployment)


def test_gpu_keeps_the_deployment_args(tmp_path):
    spec = _spec()
    assert vs.server_args_for(spec, str(tmp_path), port=1, device="gpu") == vllm_server_args(spec, str(tmp_path), port=1, host="127.0.0.1")


def test_explicit_dtype_is_kept(tmp_path):
    args = vs.server_args_for(_spec(dtype="bfloat16"), str(tmp_path), port=1, device="cpu")
    assert args[args.index("--dtype") + 1] == "bfloat16"


def test_parse_metrics_sums_labels():
    text = textwrap.dedent("""\
        # HELP vllm:generation_tokens_total Number of generation tokens processed.
        # TYPE vllm:generation_tokens_total counter
        vllm:generation_tokens_total{engine="0",model_name="m"} 145.0
        vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 3.0
        vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 1.0
        vllm:num_requests_running{engine="0",model_name="m"} 0.0
    """)
    m = vs.parse_metrics(text)
    assert m["vllm:generation_tokens_total"] == 145.0
    assert m["vllm:request_success_total"] == 4.0
    assert m["vllm:num_requests_running"] == 0.0


def test_cpu_env_defaults_do_not_override_the_user():
    env = vs.cpu_env({"VLLM_CPU_KVCACHE_SPACE": "4"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4" and env["HF_HUB_OFFLINE"] == "1"


FAKE = """#!/usr/bin/env python3
# stands in for `python -m vllm.entrypoints.openai.api_server --port P ...`; forks a child like
# vLLM's engine core, and serves /health after a short delay
import http.server, os, sys, time
argv = sys.argv[3:]
port = int(argv[argv.index("--port") + 1])
if os.environ.get("FAKE_FAIL"):
    print("boom: bad argument", flush=True)
    sys.exit(2)
child = os.fork()
if child == 0:
    with open(os.environ["FAKE_CHILD_PID"], "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(3600)
    os._exit(0)
time.sleep(0.5)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "python"
    path.write_text(FAKE)
    path.chmod(0o755)
    return str(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_start_wait_and_stop_the_process_group(fake_python, tmp_path, how):
    port = vs.free_port()
    env = dict(os.environ, FAKE_CHILD_PID=str(tmp_path / "child.pid"))
    server = vs.start_vllm_server(fake_python, ["--model", "m", "--port", str(port), "--host", "0.0.0.0"], env, tmp_path / "log")
    try:
        assert server.url == f"http://127.0.0.1:{port}" and server.base_url.endswith("/v1")
        assert server.served_name == "m"
        waited = vs.wait_healthy(server.base_url, 30, process=server.process, interval=0.1)
        assert waited < 30 and server.alive()
        child = int((tmp_path / "child.pid").read_text())
        assert _alive(child)
    finally:
        getattr(server, how)()
    assert not server.alive()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the forked engine-core stand-in outlived the server"
    server.stop()  # idempotent


def test_early_exit_raises_with_the_log_tail(fake_python, tmp_path):
    env = dict(os.environ, FAKE_FAIL="1")
    server = vs.start_vllm_server(fake_python, ["--port", str(vs.free_port())], env, tmp_path / "log")
    with pytest.raises(vs.VLLMServerError, match="boom: bad argument"):
        server.wait_healthy(30)
    server.stop()


def test_timeout_raises(tmp_path):
    with pytest.raises(vs.VLLMServerError, match="not healthy"):
        vs.wait_healthy(f"http://127.0.0.1:{vs.free_port()}", 0.5, interval=0.1)


def test_vllm_python_prefers_the_env(monkeypatch):
    monkeypatch.setenv("O1PRUNER_VLLM_PYTHON", "/opt/vllm/bin/python")
    assert vs.vllm_python() == "/opt/vllm/bin/python"
