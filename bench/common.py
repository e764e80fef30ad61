"""Shared helpers of the benchmarks: run records, machine facts, the bench job spec, writers.

Every benchmark writes ``bench/results/<name>.json`` (the numbers and how they were made),
``<name>.md`` (a table of the same numbers) and ``<name>.png``. Rows carry ``method``,
``accuracy``, ``mean_length`` and ``aes`` where they apply; ratios are named ``*_ratio``.
Working data (reference samples, checkpoints, eval outputs) goes to ``runs/bench/`` (ignored
by git) and is reused by later benchmarks and reruns.

How a run is recorded (``recording: 2`` in the JSON): :func:`start` is called first thing in a
benchmark's ``main`` and reads the load average, the time, the exact command (``argv``: the
arguments after the script, which ``run_all.py`` and so ``make bench`` replay) and the commit;
:func:`finish` adds the machine, the load average at the end and the wall time. A figure that
was not measured is recorded as ``null`` with a note, never filled in later.

How results are rendered: the md and png are pure functions of the JSON. A benchmark module
exposes ``render_results(data, out_dir)`` (and ``docs_summary(data)`` for docs/benchmarks.md);
``python bench/render.py`` re-renders every committed md/png and the generated sections of
docs/benchmarks.md, and ``tests/core/test_bench_results.py`` fails when they differ. Each png
carries the SHA-256 of the JSON it was drawn from (a PNG text chunk, :func:`stamp_png`).

Importing this module has no side effects: the benchmarks' environment (:data:`BENCH_ENV`) is
applied by :func:`bench_environment`, called from a benchmark's ``main`` and by ``run_all.py``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import struct
import zlib
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
SERVED_NAME = "smollm2"
#: The benchmarks' environment. vLLM's CPU KV cache (GiB): 1 GiB (the vLLM test tier's) holds
#: 1 GiB / 46,080 bytes per token (30 layers x K and V x 3 KV heads x 64 x 4 bytes) = ~23k
#: float32 tokens of SmolLM2, which 128 sequences of ~190 tokens overflow.
BENCH_ENV = {"VLLM_CPU_KVCACHE_SPACE": "4"}
#: Version of the run record (see the module docstring); older JSONs have none.
RECORDING = 2

#: 1/5/15-minute load averages when this module was imported (a fallback start for scripts
#: that do not call :func:`start`); reading it changes nothing.
_LOAD_AT_IMPORT = list(os.getloadavg())
_STARTED: dict[str, Any] | None = None


def bench_environment() -> dict[str, str]:
    """Apply :data:`BENCH_ENV` to this process (values already set win); returns what is in effect."""
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in BENCH_ENV}


def start(argv: Sequence[str] | None = None, script: str | None = None) -> dict[str, Any]:
    """Begin a benchmark run: read the load average now (before any work), and the command,
    ``argv`` and commit. Call first thing in ``main``; :func:`finish` completes the record."""
    global _STARTED
    args = list(sys.argv[1:] if argv is None else argv)
    _STARTED = {
        "recording": RECORDING,
        "command": command_line(args, script),
        "argv": args,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()),
        "environment": bench_environment(),
        "timer": Timer(),
    }
    return _STARTED


def finish(run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a run begun with :func:`start`: machine (with the load average at the start
    and now, at the end), command, argv, commit, environment and wall time."""
    run = dict(run or _STARTED or {})
    if not run:
        raise RuntimeError("finish() without start()")
    timer = run.pop("timer")
    info = machine(load_at_start=run.pop("load_average_at_start"))
    return {"machine": info, "wall_seconds": timer.seconds(), **run}


def machine(load_at_start: list[float] | None = None) -> dict[str, Any]:
    """What the numbers were measured on, with the load average at the start (given, else read
    when this module was imported) and now, at the end."""
    from o1pruner.testbed.build import cpu_model  # the same name the testbed build records

    cpu = cpu_model()
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
        "load_average_at_start": list(load_at_start if load_at_start is not None else _LOAD_AT_IMPORT),
        "load_average_at_end": list(os.getloadavg()),
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


def command_line(argv: Sequence[str] | None = None, script: str | None = None) -> str:
    """``python bench/<script>.py ARGS``: the command as run from the repository root (what
    ``run_all.py`` replays), whatever the interpreter's path or the script's was."""
    script_path = Path(script or sys.argv[0]).resolve()
    try:
        shown = script_path.relative_to(REPO).as_posix()
    except ValueError:
        shown = str(script_path)
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", shlex.quote(shown), *(shlex.quote(a) for a in args)])


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (the code run is then not exactly the commit)."""
    try:
        return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                   capture_output=True, text=True, check=True).stdout.strip())
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


def data_sha256(data: dict) -> str:
    """SHA-256 of a results JSON's content (key order and whitespace do not matter)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def stamp_png(path: Path, data: dict) -> None:
    """Add a PNG text chunk ``o1pruner-data-sha256`` = :func:`data_sha256` of ``data`` (before IEND)."""
    raw = path.read_bytes()
    end = raw.rindex(b"IEND") - 4  # the IEND chunk starts with its 4-byte length
    body = b"tEXt" + b"o1pruner-data-sha256\0" + data_sha256(data).encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    path.write_bytes(raw[:end] + chunk + raw[end:])


def png_stamp(path: Path) -> str | None:
    """The data hash :func:`stamp_png` wrote into a PNG, or ``None``."""
    raw = path.read_bytes()
    pos = 8
    while pos + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind, body = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and body.startswith(b"o1pruner-data-sha256\0"):
            return body.split(b"\0", 1)[1].decode()
        pos += 12 + length
    return None


def machine_line(m: dict[str, Any]) -> str:
    """The markdown line about the machine and its load."""
    start, end = m.get("load_average_at_start"), m.get("load_average_at_end")
    head = (f"- machine: {m['cpu']}, {m['cores']} cores, {m.get('memory_gib')} GiB; torch {m.get('torch')}, "
            f"transformers {m.get('transformers')}; ")
    if start is None:
        return (head + f"1-min load average when the benchmark started: not measured ({m.get('load_average_note')}); "
                f"{end[0]:.1f} at its end (its own work included; above {m['cores']} means other work shared the cores)")
    return (head + f"1-min load average {start[0]:.1f} when the benchmark started, {end[0]:.1f} at its end "
            f"(its own work included; above {m['cores']} means other work shared the cores)")


def render_markdown(data: dict[str, Any], columns: Sequence[tuple[str, str]], notes: str = "",
                    image: str | None = None) -> str:
    """The md of a results JSON: title, table, how it was made, notes, image."""
    lines = [
        f"# {data['title']}",
        "",
        markdown_table(data["rows"], columns),
        "",
        machine_line(data["machine"]),
        f"- seed: {data.get('seed')}",
        f"- command: `{data['command']}` (all benchmarks: `make bench`)",
        f"- wall time: {data.get('wall_seconds', 0):.0f} s",
    ]
    if data.get("recording", 0) >= RECORDING:
        dirty = {True: " with uncommitted changes", False: "", None: " (uncommitted changes: not recorded)"}[
            data.get("git_dirty")]
        lines.insert(-1, f"- commit: {data.get('git_commit')}{dirty}; started {data.get('started_at') or 'n/a (not recorded)'}")
    if data.get("corrections"):
        lines.append("- corrections to this record after the run: " + "; ".join(data["corrections"]))
    if notes:
        lines += ["", notes.strip()]
    if image:
        lines += ["", f"![{data['title']}]({image})"]
    return "\n".join(lines) + "\n"


def write_json(data: dict[str, Any], out_dir: Path | None = None) -> Path:
    out = out_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{data['benchmark']}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def write_rendered(data: dict[str, Any], columns: Sequence[tuple[str, str]], notes: str,
                   plot: Callable[[Path], None] | None, out_dir: Path | None = None) -> None:
    """Write ``<name>.md`` and ``<name>.png`` (stamped with the data's hash) of a results JSON."""
    out = out_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    name = data["benchmark"]
    image = None
    if plot is not None:
        png = out / f"{name}.png"
        plot(png)
        stamp_png(png, data)
        image = png.name
    (out / f"{name}.md").write_text(render_markdown(data, columns, notes, image))


def write_results(
    name: str,
    title: str,
    rows: list[dict],
    columns: Sequence[tuple[str, str]],
    meta: dict[str, Any],
    plot: Callable[[Path], None] | None,
    notes: str = "",
) -> Path:
    """Write ``bench/results/<name>.{json,md,png}``; returns the JSON path.

    ``meta`` holds the run's record (:func:`finish`, or a committed JSON's when re-rendering);
    without one, the machine is read now with the load average at import as the start."""
    meta = {"machine": machine(), "command": command_line(), "git_commit": git_commit(), **meta}
    payload = {"benchmark": name, "title": title, "rows": rows, **meta}
    path = write_json(payload)
    write_rendered(payload, columns, notes, plot)
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
