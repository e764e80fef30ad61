"""Start, watch and stop a local vLLM OpenAI-compatible server (CPU tier, benchmarks, local runs).

The server command line always comes from :func:`o1pruner.vllm_args.vllm_server_args`, the same
function the operator renders the sampler Deployment from; on a machine without a GPU,
:func:`cpu_overrides` adjusts only what vLLM's CPU build needs (see ``docs/vllm.md``).

Public API::

    from o1pruner.vllm_server import (
        start_vllm_server, wait_healthy, local_vllm_server, local_vllm_sampler, vllm_python)

    # low level: you build the args
    server = start_vllm_server(vllm_python(), args, env=cpu_env(), log_path="vllm.log")
    server.wait_healthy(timeout=360)        # until /v1/models lists the served model
    ...                                     # talk to server.base_url ("http://127.0.0.1:PORT/v1")
    server.stop()                           # SIGTERM to the process group, SIGKILL after a grace period

    # from a spec: args via vllm_server_args(+ CPU overrides), free loopback port, healthy on return
    with local_vllm_server(spec, model_dir) as server:
        ...

    # what ``pipeline.make_sampler`` uses for ``sampling.backend: vllm`` without an endpoint:
    # an OpenAISampler whose close() also stops the server it started.
    sampler = local_vllm_sampler(spec, model_dir)

The Python that runs vLLM is ``$O1PRUNER_VLLM_PYTHON``, else the repository's ``.venv-vllm``
(made by ``scripts/setup-vllm-venv.sh``), else the current interpreter when it can import vLLM
(the cluster image). The server runs in its own process group, so :meth:`VLLMServer.stop` and
:meth:`VLLMServer.kill` also reach the engine-core child process vLLM forks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from o1pruner.sampling.base import Completion, GenerationParams, Messages, Sampler
from o1pruner.spec import PruningJobSpec
from o1pruner.vllm_args import VLLM_SERVER_MODULE, vllm_server_args

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where ``scripts/setup-vllm-venv.sh`` puts vLLM's CPU build.
DEFAULT_VENV = REPO_ROOT / ".venv-vllm"
#: vLLM on 2 CPU cores takes ~2 minutes to start; leave room for a loaded machine.
DEFAULT_STARTUP_TIMEOUT = 600.0
#: Longest context the CPU tier asks for (KV cache is ``VLLM_CPU_KVCACHE_SPACE`` GiB).
CPU_MAX_MODEL_LEN = 2048


class VLLMServerError(RuntimeError):
    """The server exited or did not become healthy; the message ends with its log's tail."""


# --------------------------------------------------------------------------- environment
def vllm_python() -> str:
    """The interpreter that has vLLM installed (see the module docstring for the order)."""
    env = os.environ.get("O1PRUNER_VLLM_PYTHON")
    if env:
        return env
    venv_python = DEFAULT_VENV / "bin" / "python"
    if venv_python.exists():
        return str(venv_python)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise VLLMServerError(
        f"no vLLM installation found: run `bash scripts/setup-vllm-venv.sh` (creates {DEFAULT_VENV}), "
        "or set O1PRUNER_VLLM_PYTHON to a Python that can import vllm"
    )


def has_gpu() -> bool:
    """Whether vLLM should be started with its GPU defaults (``O1PRUNER_VLLM_DEVICE`` overrides)."""
    forced = os.environ.get("O1PRUNER_VLLM_DEVICE", "").lower()
    if forced in ("cpu", "gpu", "cuda"):
        return forced != "cpu"
    return shutil.which("nvidia-smi") is not None


def cpu_env(base: Mapping[str, str] | None = None, kv_cache_gib: int = 1) -> dict[str, str]:
    """Environment for vLLM's CPU build: a small KV cache, no hub access, no usage reporting.

    Values already set in ``base`` (default: ``os.environ``) win, so a user can raise
    ``VLLM_CPU_KVCACHE_SPACE``.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _model_max_len(model_dir: str) -> int | None:
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = cfg.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


def cpu_overrides(spec: PruningJobSpec, model: str) -> dict[str, Any]:
    """``device_overrides`` for :func:`vllm_server_args` on a CPU-only machine.

    - ``--dtype float32`` where the spec says ``auto`` (vLLM 0.32's CPU build turns ``auto``
      into bfloat16 even for a float32 checkpoint; float32 keeps token counts and greedy
      outputs comparable with the in-process transformers sampler);
    - ``--max-model-len`` capped at :data:`CPU_MAX_MODEL_LEN` and at the model's own
      ``max_position_embeddings`` (the KV cache of ``VLLM_CPU_KVCACHE_SPACE=1`` GiB must hold at
      least one full-length sequence);
    - ``--no-enable-chunked-prefill``: vLLM 0.32's CPU worker crashes the engine
      (``RuntimeError: CPU Generator does not use offset`` in ``_bookkeeping_sync``) when a
      request with a ``seed`` is only partly prefilled in a step, which chunked prefill does
      as soon as the prompts in flight exceed the step's token budget (e.g. 16 requests of
      n = 8). The sampler always sends per-problem seeds, so chunked prefill stays off on CPU.

    Everything else stays as the Deployment renders it: vLLM 0.32's CPU build accepts
    ``--tensor-parallel-size 1``, ``--gpu-memory-utilization`` (ignored; the KV cache size
    comes from ``VLLM_CPU_KVCACHE_SPACE``) and ``--seed``. With a spec that already says
    ``dtype: float32`` and ``maxModelLen: 2048`` the only change is the chunked-prefill switch
    (the test tier).
    """
    sampler = spec.sampling.sampler
    limit = min(sampler.max_model_len or CPU_MAX_MODEL_LEN, CPU_MAX_MODEL_LEN)
    model_max = _model_max_len(model)
    if model_max:
        limit = min(limit, model_max)
    overrides: dict[str, Any] = {"max-model-len": limit, "no-enable-chunked-prefill": True}
    if spec.model.dtype == "auto":
        overrides["dtype"] = "float32"
    return overrides


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _arg(args: Sequence[str], flag: str, default: str | None = None) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return default


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------- the server
class VLLMServer:
    """A running ``python -m vllm.entrypoints.openai.api_server`` (context manager: stops on exit)."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path | None, args: list[str]):
        self.process = process
        self.url = url  # http://host:port (no /v1)
        self.log_path = log_path
        self.args = args
        self.served_name = _arg(args, "--served-model-name") or _arg(args, "--model")

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``…/v1``) to give a sampler or ``--endpoint``."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def wait_healthy(self, timeout: float = DEFAULT_STARTUP_TIMEOUT) -> VLLMServer:
        wait_healthy(self.url, timeout, process=self.process, log_path=self.log_path, model=self.served_name)
        return self

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus counters and gauges, ``name{labels}`` summed per ``name``."""
        text = httpx.get(f"{self.url}/metrics", timeout=10.0).text
        return parse_metrics(text)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole server (API process and engine core) at once, as a crash would."""
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds. Idempotent."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("vLLM server %d ignored SIGTERM for %.0fs; killing it", self.process.pid, grace)
        # children (the engine core) may outlive the API process: always sweep the group
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_vllm_server(
    python: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike | None = None,
) -> VLLMServer:
    """Start ``python -m vllm.entrypoints.openai.api_server *args`` in a new process group.

    Returns at once (use :meth:`VLLMServer.wait_healthy`). ``args`` are typically
    :func:`vllm_server_args`'s list; ``--host``/``--port`` in it give the URL (``0.0.0.0`` is
    reached over 127.0.0.1). stdout and stderr go to ``log_path`` (or are discarded).
    """
    args = [str(a) for a in args]
    host = _arg(args, "--host", "127.0.0.1")
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    port = _arg(args, "--port", "8000")
    cmd = [python, "-m", VLLM_SERVER_MODULE, *args]
    path = Path(log_path) if log_path is not None else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = open(path, "ab")  # noqa: SIM115 (the child keeps it open)
    else:
        out = open(os.devnull, "wb")  # noqa: SIM115
    log.info("starting vLLM: %s", " ".join(cmd))
    try:
        process = subprocess.Popen(
            cmd, env=dict(env) if env is not None else None, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    finally:
        out.close()
    return VLLMServer(process, f"http://{host}:{port}", path, args)


def wait_healthy(
    url: str,
    timeout: float = DEFAULT_STARTUP_TIMEOUT,
    *,
    process: subprocess.Popen | None = None,
    log_path: str | os.PathLike | None = None,
    interval: float = 2.0,
    model: str | None = None,
) -> float:
    """Poll ``url/v1/models`` until it answers 200 listing ``model`` (any model when None);
    returns the seconds waited.

    ``/health`` answers 200 as soon as the API process is up, before the model is loaded;
    ``/v1/models`` lists the served model only once the engine can take requests (what llm-d
    and the sampler Deployment's probes wait for). ``url`` is the server root (a trailing
    ``/v1`` is ignored). Raises :class:`VLLMServerError` (naming the log, with its tail) when
    ``process`` exits first or ``timeout`` passes.
    """
    root = url.rstrip("/").removesuffix("/v1")
    t0 = time.monotonic()
    path = Path(log_path) if log_path is not None else None
    where = f" (log: {path})" if path is not None else ""
    last = "no answer"
    while True:
        if process is not None and process.poll() is not None:
            raise VLLMServerError(
                f"vLLM server exited with code {process.returncode} before it was healthy{where}\n{_tail(path)}")
        try:
            resp = httpx.get(f"{root}/v1/models", timeout=5.0)
            served = _served_models(resp) if resp.status_code == 200 else []
            if served and (model is None or model in served):
                return time.monotonic() - t0
            last = (f"HTTP {resp.status_code}" if resp.status_code != 200
                    else f"serves {served or 'no model'}, waiting for {model!r}")
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() - t0 > timeout:
            raise VLLMServerError(f"vLLM server at {root} not healthy after {timeout:.0f}s: "
                                  f"/v1/models {last}{where}\n{_tail(path)}")
        time.sleep(interval)


def _served_models(resp: httpx.Response) -> list[str]:
    """The model ids of an OpenAI ``/v1/models`` answer (empty when it is not one)."""
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        return []
    return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m] if isinstance(data, list) else []


def parse_metrics(text: str) -> dict[str, float]:
    """Sum Prometheus text-format samples per metric name (labels dropped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


# --------------------------------------------------------------------------- from a spec
def server_args_for(
    spec: PruningJobSpec, model: str, *, port: int, host: str = "127.0.0.1", served_name: str | None = None,
    device: str | None = None,
) -> list[str]:
    """:func:`vllm_server_args` with this machine's device overrides (CPU unless a GPU is seen)."""
    gpu = has_gpu() if device is None else device != "cpu"
    overrides = None if gpu else cpu_overrides(spec, model)
    return vllm_server_args(spec, model, port=port, host=host, served_name=served_name, device_overrides=overrides)


def local_vllm_server(
    spec: PruningJobSpec,
    model: str,
    *,
    served_name: str | None = None,
    port: int | None = None,
    log_path: str | os.PathLike | None = None,
    python: str | None = None,
    timeout: float = DEFAULT_STARTUP_TIMEOUT,
) -> VLLMServer:
    """Start a vLLM server for ``spec`` on a free loopback port and wait until it is healthy.

    The log goes to ``log_path`` (default: a file in the temp dir, named in the log message).
    The server is stopped if it does not become healthy.
    """
    port = port or free_port()
    args = server_args_for(spec, model, port=port, served_name=served_name)
    if log_path is None:
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"o1pruner-vllm-{port}.log"
    python = python or vllm_python()
    env = os.environ.copy() if has_gpu() else cpu_env()
    server = start_vllm_server(python, args, env=env, log_path=log_path)
    log.info("waiting for vLLM on %s (log: %s)", server.url, log_path)
    try:
        waited = wait_healthy(server.url, timeout, process=server.process, log_path=log_path,
                              model=server.served_name)
    except BaseException:
        server.stop()
        raise
    log.info("vLLM healthy after %.0fs", waited)
    return server


class LocalVLLMSampler(Sampler):
    """An :class:`~o1pruner.sampling.openai.OpenAISampler` bound to a vLLM server it owns.

    ``close()`` closes the HTTP client and stops the server.
    """

    name = "vllm-local"

    def __init__(self, server: VLLMServer, sampler):
        self.server = server
        self.sampler = sampler

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def generate(
        self, prompts: Sequence[tuple[str, Messages]], params: GenerationParams
    ) -> Iterator[tuple[str, list[Completion] | Exception]]:
        return self.sampler.generate(prompts, params)

    def close(self) -> None:
        try:
            self.sampler.close()
        finally:
            self.server.stop()


def local_vllm_sampler(
    spec: PruningJobSpec, model: str, *, served_name: str | None = None, **server_kw: Any
) -> LocalVLLMSampler:
    """Start a local vLLM server for ``model`` and return a sampler that talks to it.

    What ``pipeline.make_sampler`` calls for ``sampling.backend: vllm`` when no endpoint is set.
    ``server_kw`` goes to :func:`local_vllm_server` (port, log_path, python, timeout).
    """
    from o1pruner.sampling.openai import OpenAISampler

    name = served_name or spec.model.served_name
    server = local_vllm_server(spec, model, served_name=name, **server_kw)
    s = spec.sampling
    try:
        client = OpenAISampler(
            server.base_url, name, concurrency=s.concurrency, timeout=s.request_timeout_seconds,
            max_retries=s.max_retries,
        )
    except BaseException:
        server.stop()
        raise
    return LocalVLLMSampler(server, client)
