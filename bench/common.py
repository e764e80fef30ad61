"""Shared helpers of the benchmarks: machine facts, the bench job spec, result writers.

Every benchmark writes ``bench/results/<name>.json`` (the numbers and how they were made),
``<name>.md`` (a table of the same numbers) and ``<name>.png``. Rows carry ``method``,
``accuracy``, ``mean_length`` and ``aes`` where they apply; ratios are named ``*_ratio``.
Working data (reference samples, checkpoints, eval outputs) goes to ``runs/bench/`` (ignored
by git) and is reused by later benchmarks and reruns.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
WORK = REPO / "runs" / "bench"
MODEL = "embedded:smollm2-135m-instruct"
#: vLLM's CPU KV cache for the benchmarks (GiB). 1 GiB (the tier's) holds ~23k float32 tokens of
#: SmolLM2: 128 sequences of ~190 tokens overflow it, and preemption halves throughput.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
SERVED_NAME = "smollm2"


#: 1/5/15-minute load averages when the benchmark process started (before its own work).
_LOAD_AT_START = os.getloadavg()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        kb = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1])
        mem_gib = round(kb / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(_LOAD_AT_START),
    }
    try:
        import torch
        import transformers

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


class Timer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def seconds(self) -> float:
        return time.monotonic() - self.t0


def job_dict(name: str, storage_uri: str, *, train_count: int = 64, eval_count: int = 64, k: int = 8,
             max_tokens: int = 192, sampling: dict | None = None, training: dict | None = None,
             evaluation: dict | None = None) -> dict:
    """A PruningJob for the embedded SmolLM2 on the built-in arithmetic sets (train seed 1,
    held-out seed 1001: disjoint problems)."""
    return {
        "apiVersion": "o1pruner.dev/v1alpha1",
        "kind": "PruningJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": MODEL, "servedName": SERVED_NAME, "dtype": "float32"},
            "datasets": {
                "train": {"name": "arithmetic-train", "source": "builtin:arithmetic",
                          "generator": {"count": train_count, "seed": 1, "minSteps": 1, "maxSteps": 4}},
                "eval": [{"name": "arithmetic-heldout", "source": "builtin:arithmetic",
                          "generator": {"count": eval_count, "seed": 1001, "minSteps": 1, "maxSteps": 4}}],
            },
            "sampling": {"k": k, "temperature": 0.7, "topP": 0.9, "maxTokens": max_tokens, "seed": 0,
                         "samplesPerProblem": 2, "backend": "vllm", "concurrency": 8, "batchSize": 8,
                         "sampler": {"maxModelLen": 2048}, **(sampling or {})},
            "training": {"deepspeed": {"enabled": False}, **(training or {})},
            "evaluation": {"maxTokens": max_tokens, "temperature": 0.0, **(evaluation or {})},
            "storage": {"uri": storage_uri},
            "metrics": {"port": 19400},
        },
    }


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(key)) for key, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_results(
    name: str,
    title: str,
    rows: list[dict],
    columns: Sequence[tuple[str, str]],
    meta: dict[str, Any],
    plot: Callable[[Path], None] | None,
    notes: str = "",
) -> Path:
    """Write ``bench/results/<name>.{json,md,png}``; returns the JSON path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine(), "command": command_line(), "git_commit": git_commit(), **meta}
    meta["machine"].setdefault("load_average_at_end", list(os.getloadavg()))  # kept when re-rendering
    payload = {"benchmark": name, "title": title, "rows": rows, **meta}
    json_path = RESULTS / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    m = meta["machine"]
    lines = [
        f"# {title}",
        "",
        markdown_table(rows, columns),
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gib')} GiB; torch {m.get('torch')}, "
        f"transformers {m.get('transformers')}; 1-min load average {m['load_average_at_start'][0]:.1f} when the "
        f"benchmark started, {m['load_average_at_end'][0]:.1f} at its end (its own work included; above "
        f"{m['cores']} means other work shared the cores)",
        f"- seed: {meta.get('seed')}",
        f"- command: `{meta['command']}` (all benchmarks: `make bench`)",
        f"- wall time: {meta.get('wall_seconds', 0):.0f} s",
    ]
    if notes:
        lines += ["", notes.strip()]
    if plot is not None:
        png = RESULTS / f"{name}.png"
        plot(png)
        lines += ["", f"![{title}]({png.name})"]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    return json_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
