"""The vLLM OpenAI server command line, built from the spec (pure; no vLLM import).

One function serves two callers: the operator's sampler Deployment (the official
``vllm/vllm-openai`` image, started as ``python3 -m vllm.entrypoints.openai.api_server``)
and the CPU test tier, which runs the same module with the same list. Only flags that
``vllm.entrypoints.openai.api_server`` of vLLM 0.x accepts are emitted.
"""

from __future__ import annotations

from typing import Any

from o1pruner.spec import PruningJobSpec

#: How the sampler container starts the server (also what the CPU tier runs).
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_PORT = 8000
#: The sampler's probes (the Deployment and the local/CPU-tier servers agree): /v1/models lists
#: the served model only once it is loaded, /health only says the process answers.
READINESS_PATH = "/v1/models"
LIVENESS_PATH = "/health"


def _flag(name: str) -> str:
    return name if name.startswith("--") else "--" + name.replace("_", "-")


def vllm_server_args(
    spec: PruningJobSpec,
    model: str,
    *,
    port: int = DEFAULT_PORT,
    host: str = "0.0.0.0",
    served_name: str | None = None,
    device_overrides: dict[str, Any] | None = None,
) -> list[str]:
    """Arguments for ``python -m vllm.entrypoints.openai.api_server``.

    ``model`` is what vLLM loads (a HF id or a local directory, e.g. the emptyDir an init
    container filled from s3://). ``served_name`` defaults to ``spec.model.servedName``.
    ``device_overrides`` replaces or adds flags (``{"dtype": "float32"}``), removes them
    (value ``None``) or adds bare switches (value ``True``); the CPU tier uses it.
    ``spec.sampling.sampler.extraArgs`` are appended last, verbatim.
    """
    sampler = spec.sampling.sampler
    opts: dict[str, Any] = {
        "--model": model,
        "--served-model-name": served_name or spec.model.served_name,
        "--host": host,
        "--port": port,
        "--tensor-parallel-size": sampler.tensor_parallel_size,
        "--max-model-len": sampler.max_model_len,
        "--gpu-memory-utilization": sampler.gpu_memory_utilization,
        "--seed": spec.sampling.seed,
        "--dtype": spec.model.dtype,
    }
    # A revision only makes sense for a HF id; a local directory has none.
    if spec.model.revision and model == spec.model.source:
        opts["--revision"] = spec.model.revision
    if spec.model.trust_remote_code:
        opts["--trust-remote-code"] = True
    for key, value in (device_overrides or {}).items():
        opts[_flag(key)] = value

    args: list[str] = []
    for flag, value in opts.items():
        if value is None or value is False:
            continue
        if value is True:
            args.append(flag)
        else:
            args += [flag, str(value)]
    return args + list(sampler.extra_args)
