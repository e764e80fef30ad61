"""``o1pruner.vllm_server`` without vLLM (fast tier): argument overrides, metrics parsing, the
readiness wait (``/v1/models``, not ``/health``) against a local HTTP server, and the process
handling (early exit, stop/kill of the whole process group) against a fake server script standing
in for ``python -m vllm.entrypoints.openai.api_server``."""

from __future__ import annotations

import http.server
import json
import os
import textwrap
import threading
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
# vLLM's engine core, and serves /health and /v1/models (listing --model) after a short delay
import http.server, json, os, sys, time
argv = sys.argv[3:]
port = int(argv[argv.index("--port") + 1])
model = argv[argv.index("--model") + 1] if "--model" in argv else "m"
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
        body = json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode()
        self.send_response(200 if self.path in ("/health", "/v1/models") else 404)
        self.end_headers()
        if self.path == "/v1/models":
            self.wfile.write(body)
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


class _Loading(http.server.BaseHTTPRequestHandler):
    """A vLLM API process whose model is still loading: ``/health`` is 200 from the start,
    ``/v1/models`` is 503 until ``server.ready_at`` (monotonic), then lists ``server.model``."""

    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.hits.append((time.monotonic(), self.path))
        if self.path == "/health":
            code, body = 200, b""
        elif self.path == "/v1/models" and time.monotonic() >= srv.ready_at:
            code, body = 200, json.dumps({"object": "list", "data": [{"id": srv.model, "object": "model"}]}).encode()
        elif self.path == "/v1/models":
            code, body = 503, b'{"error": "model loading"}'
        else:
            code, body = 404, b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def loading_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Loading)
    srv.daemon_threads = True
    srv.hits, srv.model, srv.ready_at = [], "smollm2", float("inf")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _url(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_wait_healthy_waits_for_the_model_not_for_health(loading_server):
    """/health answers 200 from the start; the wait returns only once /v1/models lists the model."""
    assert vs.httpx.get(f"{_url(loading_server)}/health").status_code == 200
    loading_server.ready_at = time.monotonic() + 1.0
    waited = vs.wait_healthy(_url(loading_server) + "/v1", 30, interval=0.1, model="smollm2")
    returned = time.monotonic()
    assert returned >= loading_server.ready_at and waited >= 0.9
    polled = [path for _, path in loading_server.hits]
    assert "/v1/models" in polled and "/health" not in polled[1:]  # [0] is this test's own probe


def test_wait_healthy_waits_for_the_served_model_to_be_listed(loading_server):
    """/v1/models answers 200 but lists another model: not ready; the error names what it serves."""
    loading_server.ready_at, loading_server.model = 0.0, "other"
    with pytest.raises(vs.VLLMServerError, match=r"not healthy after 1s: /v1/models serves \['other'\]"):
        vs.wait_healthy(_url(loading_server), 0.6, interval=0.1, model="smollm2")


def test_wait_healthy_times_out_when_the_model_never_loads(loading_server, tmp_path):
    log = tmp_path / "vllm.log"
    log.write_text("INFO loading weights\nINFO still loading\n")
    t0 = time.monotonic()
    with pytest.raises(vs.VLLMServerError) as err:
        vs.wait_healthy(_url(loading_server), 0.5, interval=0.1, log_path=log, model="smollm2")
    assert time.monotonic() - t0 < 10
    message = str(err.value)
    assert "not healthy after" in message and "/v1/models HTTP 503" in message
    assert f"(log: {log})" in message and "still loading" in message  # names the log, shows its tail


def test_vllm_python_prefers_the_env(monkeypatch):
    monkeypatch.setenv("O1PRUNER_VLLM_PYTHON", "/opt/vllm/bin/python")
    assert vs.vllm_python() == "/opt/vllm/bin/python"
