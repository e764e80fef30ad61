"""One-command check of the trainer on a GPU: ``python -m o1pruner.gpu_check`` (or
``scripts/gpu-check.sh``, which first installs missing packages from local wheels).

It runs, per model (the testbed's architecture ``embedded:longthought-smoke`` and SmolLM2
``embedded:smollm2-135m-instruct`` by default):

- ``train/<model>/<engine>``: bf16 O1-Pruner optimizer steps through the real training loop
  without DeepSpeed (fp32 master weights + bf16 autocast), with DeepSpeed ZeRO-2 and ZeRO-3;
- ``resume/<model>/<engine>``: checkpoint save, then a fresh model resumes from it: the loaded
  weights equal the saved ones exactly, and training continues to the last step;
- ``sample/<model>/hf``: the in-process transformers sampler on the device;

and prints one JSON line per check (:func:`result_line`) between an ``env`` line (device,
versions, command, commit, load average) and a ``summary`` line (counts, seconds, load
average at the end): status pass / fail / skipped,
tokens/s, MFU against the device's dense bf16 peak (:data:`PEAK_BF16_TFLOPS`), peak device
memory. A model that cannot be resolved gives one ``skipped``
line. A model directory with a config and a tokenizer but no weight files (a checkpoint too
large to bring to the machine: SmolLM2's GGUF is 93 MB) is given seeded random weights
(:func:`random_init_dir`); its lines say ``"weights": "random-init"``. Throughput, memory,
DeepSpeed and checkpoint resume do not depend on the weights' values. ``--device cpu
--quick`` runs the same code on the CPU (DeepSpeed checks skipped), which is how the tests
keep this module honest. Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import gc
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: The testbed's architecture and tokenizer as ``longthought-smoke`` (built in seconds; the fully trained
#: ``longthought-arith`` takes minutes of CPU to build, and weights do not change what is checked here).
DEFAULT_MODELS = ("embedded:longthought-smoke", "embedded:smollm2-135m-instruct")
ENGINES = ("torch", "zero2", "zero3")
RESUME_ENGINES = ("torch", "zero3")
STATUSES = ("pass", "fail", "skipped")

#: Dense (no sparsity) bf16 tensor-core peak per GPU in TFLOPS, from NVIDIA's data sheets;
#: matched against ``torch.cuda.get_device_name()`` in order, so specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH100\b.*\bNVL\b", 835.0),
    (r"\bH200\b.*\bNVL\b", 835.0),
    (r"\bG?H100\b", 989.0),
    (r"\bG?H200\b", 989.0),
    (r"\bB200\b", 2250.0),
    (r"\bA100\b", 312.0),
    (r"\bL40S\b", 362.0),
    (r"\bL4\b", 121.0),
)


# --------------------------------------------------------------------------- pure parts
def peak_bf16_tflops(device_name: str) -> float | None:
    """The device's dense bf16 peak (TFLOPS), ``None`` when the name is not in the table."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return tflops
    return None


def train_flops_per_token(n_params: int) -> float:
    """Model FLOPs of one trained token: forward 2N + backward 4N (attention and recomputation
    not counted, the usual MFU convention)."""
    return 6.0 * n_params


def forward_flops_per_token(n_params: int) -> float:
    """Model FLOPs of one forward (generated) token: 2N."""
    return 2.0 * n_params


def mfu(tokens_per_second: float, flops_per_token: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s over the peak (``None`` without a peak)."""
    if not peak_tflops or tokens_per_second <= 0:
        return None
    return tokens_per_second * flops_per_token / (peak_tflops * 1e12)


def steady_tokens_per_second(history: list[dict]) -> float:
    """Training throughput over the steps after the first (which pays warm-up: kernels,
    allocator, DeepSpeed buckets); over all steps when there is only one."""
    steps = history[1:] or history
    tokens = sum(h["tokens"] for h in steps)
    seconds = sum(h["tokens"] / h["tokens_per_second"] for h in steps if h["tokens_per_second"] > 0)
    return tokens / seconds if seconds > 0 else 0.0


def result_line(check: str, status: str, **fields) -> str:
    """One JSON line: ``check`` and ``status`` first, then the measurements, then the rest
    (``None`` fields dropped; floats rounded for reading)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    order = ["seconds", "tokens_per_second", "mfu", "peak_memory_gib"]
    record = {"check": check, "status": status}
    for key in order + sorted(k for k in fields if k not in order):
        value = fields.get(key)
        if value is None:
            continue
        if isinstance(value, float):
            value = round(value, 6 if key == "mfu" else 3)
        record[key] = value
    return json.dumps(record)


def model_label(source: str) -> str:
    """Short name of a model source: ``embedded:x`` → ``x``, a path → its last part."""
    if source.startswith("embedded:"):
        return source.split(":", 1)[1]
    return Path(source.rstrip("/")).name or source


#: Files that hold a checkpoint's weights; a model directory with none of them gets random ones.
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")


def has_weights(path: Path) -> bool:
    """Whether a model directory holds weight files (see :data:`WEIGHT_GLOBS`)."""
    return any(any(path.glob(g)) for g in WEIGHT_GLOBS)


def check_names(label: str) -> list[str]:
    """Every check of one model, in run order."""
    names = [f"train/{label}/{e}" for e in ENGINES]
    names += [f"resume/{label}/{e}" for e in RESUME_ENGINES]
    names.append(f"sample/{label}/hf")
    return names


def selected(name: str, only: list[str] | None, skip: list[str] | None) -> bool:
    """``--only``/``--skip`` shell patterns (``train/*/zero3``, ``sample/*``)."""
    if only and not any(fnmatch.fnmatchcase(name, p) for p in only):
        return False
    return not (skip and any(fnmatch.fnmatchcase(name, p) for p in skip))


def skip_reason(name: str, device: str, deepspeed_available: bool, deepspeed_on_cpu: bool = False) -> str | None:
    """Why a check cannot run here (``None``: it can)."""
    engine = name.rsplit("/", 1)[1]
    if engine.startswith("zero"):
        if device != "cuda" and not deepspeed_on_cpu:
            return "DeepSpeed runs on CUDA only in the trainer (--deepspeed-on-cpu to test it here)"
        if not deepspeed_available:
            return "the deepspeed package is not installed"
    return None


@dataclass(frozen=True)
class Sizes:
    """How much work each check does."""

    batch_size: int
    micro_batch_size: int
    max_length: int
    steps: int
    prompts: int
    samples_per_prompt: int
    max_new_tokens: int


def sizes(device: str, quick: bool) -> Sizes:
    if device == "cpu":
        return Sizes(4, 2, 96, 2, 2, 2, 16) if quick else Sizes(8, 4, 192, 3, 4, 2, 48)
    return Sizes(16, 8, 512, 3, 16, 4, 128) if quick else Sizes(32, 8, 1024, 5, 32, 8, 512)


# --------------------------------------------------------------------------- device side
def random_init_dir(config_dir: Path, dest: Path, seed: int = 0) -> Path:
    """A loadable model directory at ``dest``: the architecture of ``config_dir/config.json``
    with weights drawn by the model's own initialiser under ``seed`` (fp32 safetensors), and
    ``config_dir``'s tokenizer and generation files copied beside them."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(config_dir))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dest))
    for f in config_dir.iterdir():
        if f.is_file() and f.name != "config.json" and not (dest / f.name).exists():
            shutil.copy2(f, dest / f.name)
    return dest



def _single_rank_env() -> None:
    """DeepSpeed wants a process group even on one GPU: a one-rank one on localhost; the
    config is generated from each check's spec, never a mounted one."""
    from o1pruner.engines import free_port

    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    os.environ.pop("O1PRUNER_DEEPSPEED_CONFIG", None)


def _examples(problems, max_length: int, n: int) -> list[dict]:
    """Synthetic O1-Pruner examples: long and short solutions with advantages of both signs."""
    out = []
    for i in range(n):
        p = problems[i % len(problems)]
        reps = 1 + (i * 7) % max(2, max_length // 12)  # a spread of lengths up to the cutoff
        text = "Let me work through this carefully, one step at a time. " * reps + f"The answer is \\boxed{{{p.answer}}}."
        out.append({
            "problem_id": p.id, "length": reps * 12, "text": text, "correct": i % 3 != 0,
            "reward": 1.0 if i % 2 else -1.0, "advantage": 1.0 if i % 2 else -1.0, "finish_reason": "stop",
        })
    return out


class Runner:
    """Runs the checks for one device; every check returns its JSON fields."""

    def __init__(self, device: str, quick: bool, peak: float | None):
        import torch

        self.torch = torch
        self.device = device
        self.sizes = sizes(device, quick)
        self.peak = peak

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def measured(self) -> Iterator[dict]:
        torch = self.torch
        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        fields: dict = {}
        t0 = time.monotonic()
        yield fields
        fields["seconds"] = time.monotonic() - t0
        if self.device == "cuda":
            torch.cuda.synchronize()
            fields["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30

    def _spec(self, engine: str, checkpoint_every: int):
        from o1pruner.spec import TrainingSpec

        s = self.sizes
        return TrainingSpec(
            method="o1-pruner", learning_rate=2e-7, lr_scheduler="constant", warmup_ratio=0.0,
            batch_size=s.batch_size, micro_batch_size=s.micro_batch_size, max_length=s.max_length, epochs=1,
            checkpoint_every_steps=checkpoint_every, keep_checkpoints=2, seed=1234,
            deepspeed={"enabled": engine != "torch", "zeroStage": 3 if engine == "zero3" else 2},
        )

    def _load(self, path: str, training):
        from o1pruner import training as tr

        torch = self.torch
        device = torch.device("cuda", 0) if self.device == "cuda" else torch.device("cpu")
        _, dtype = tr.pick_device_dtype(training)
        return tr.load_policy(path, training, dtype, device)

    def _units(self, tok, training):
        from o1pruner import training as tr
        from o1pruner.data import generate_arithmetic
        from o1pruner.spec import PromptSpec

        problems = generate_arithmetic(8, seed=7, name="gpu-check")
        n = self.sizes.batch_size * self.sizes.steps
        examples = _examples(problems, training.max_length, n)
        by_id = {p.id: p.problem for p in problems}
        return tr.build_units("o1-pruner", examples, tok, PromptSpec(), training.max_length, by_id)

    def _full_state(self, model, zero3: bool) -> dict:
        params = [(k, v) for k, v in model.named_parameters() if v.requires_grad]
        if not zero3:
            return {k: v.detach().float().cpu().clone() for k, v in params}
        import deepspeed

        with deepspeed.zero.GatheredParameters([v for _, v in params]):
            return {k: v.detach().float().cpu().clone() for k, v in params}

    def _release(self, *objs) -> None:
        for obj in objs:
            destroy = getattr(getattr(obj, "engine", None), "destroy", None)
            if callable(destroy):
                destroy()
        gc.collect()
        if self.device == "cuda":
            self.torch.cuda.empty_cache()

    # ------------------------------------------------------------------ checks
    def train(self, path: str, engine: str) -> dict:
        from o1pruner import training as tr
        from o1pruner.storage import LocalStorage

        training = self._spec(engine, checkpoint_every=10**6)
        model, tok = self._load(path, training)
        n_params = sum(p.numel() for p in model.parameters())
        units = self._units(tok, training)
        with self.measured() as fields, tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            result = tr.train(model, tok, units, training, LocalStorage(tmp))
        losses = [h["loss"] for h in result.history]
        tps = steady_tokens_per_second(result.history)
        self._release(result.engine)
        ok = result.steps == self.sizes.steps and all(math.isfinite(x) for x in losses)
        return fields | {
            "status": "pass" if ok else "fail", "tokens_per_second": tps,
            "mfu": mfu(tps, train_flops_per_token(n_params), self.peak), "steps": result.steps,
            "losses": losses, "params": n_params, "padding_waste": result.padding_waste,
            "engine": type(result.engine).__name__,
        }

    def resume(self, path: str, engine: str) -> dict:
        from o1pruner import training as tr
        from o1pruner.storage import LocalStorage

        training = self._spec(engine, checkpoint_every=1)
        half = max(1, self.sizes.steps // 2)
        zero3 = engine == "zero3"
        with self.measured() as fields, tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            store = LocalStorage(tmp)
            model, tok = self._load(path, training)
            first = tr.train(model, tok, self._units(tok, training), training, store, max_steps=half)
            saved = self._full_state(first.model, zero3)
            self._release(first.engine)
            del model, first
            # a fresh process would do this: new model, resume, stop before training further
            model, tok = self._load(path, training)
            again = tr.train(model, tok, self._units(tok, training), training, store, max_steps=half)
            loaded = self._full_state(again.model, zero3)
            self._release(again.engine)
            del model, again
            diff = max(float((loaded[k] - saved[k]).abs().max()) for k in saved)
            model, tok = self._load(path, training)
            rest = tr.train(model, tok, self._units(tok, training), training, store)
            self._release(rest.engine)
        expected = tr.CHECKPOINTS + f"/step-{half:08d}"
        ok = (diff == 0.0 and rest.resumed_from == expected and rest.steps == self.sizes.steps
              and len(rest.history) == self.sizes.steps - half)
        return fields | {
            "status": "pass" if ok else "fail", "resumed_from": rest.resumed_from, "steps": rest.steps,
            "max_abs_weight_diff_after_load": diff, "engine": type(rest.engine).__name__,
        }

    def sample(self, path: str) -> dict:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from o1pruner.data import generate_arithmetic
        from o1pruner.prompts import build_messages
        from o1pruner.sampling.base import GenerationParams
        from o1pruner.sampling.hf import HFSampler
        from o1pruner.spec import PromptSpec

        torch = self.torch
        s = self.sizes
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device)
        n_params = sum(p.numel() for p in model.parameters())
        sampler = HFSampler(model, AutoTokenizer.from_pretrained(path), batch_size=s.prompts)
        problems = generate_arithmetic(s.prompts, seed=11, name="gpu-check-sample")
        prompts = [(p.id, build_messages(p.problem, PromptSpec())) for p in problems]
        params = GenerationParams(n=s.samples_per_prompt, temperature=1.0, top_p=1.0, max_tokens=s.max_new_tokens, seed=3)
        with self.measured() as fields:
            done = dict(sampler.generate(prompts, params))
        tokens = sum(c.tokens for v in done.values() if isinstance(v, list) for c in v)
        tps = tokens / fields["seconds"] if fields["seconds"] > 0 else 0.0
        errors = [str(v) for v in done.values() if isinstance(v, Exception)]
        ok = len(done) == len(prompts) and not errors and tokens > 0
        self._release()
        return fields | {
            "status": "pass" if ok else "fail", "tokens_per_second": tps,
            "mfu": mfu(tps, forward_flops_per_token(n_params), self.peak), "generated_tokens": tokens,
            "completions": sum(len(v) for v in done.values() if isinstance(v, list)), "errors": errors[:3] or None,
        }


# --------------------------------------------------------------------------- driver
def _env_line(device: str, peak: float | None, deepspeed_version: str | None) -> tuple[str, str]:
    import torch
    import transformers

    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    fields = {
        "device": name, "torch": torch.__version__, "transformers": transformers.__version__,
        "deepspeed": deepspeed_version, "peak_bf16_tflops": peak,
        "cuda": torch.version.cuda if device == "cuda" else None,
        "bf16_supported": torch.cuda.is_bf16_supported() if device == "cuda" else None,
    } | run_context()
    return name, result_line("env", "pass", **fields)


def run_context() -> dict:
    """What a result needs to be re-run and judged: the command, the commit (``$O1PRUNER_COMMIT``
    where the checkout carries no git metadata), the host's CPUs and its load average now."""
    import platform
    import subprocess

    commit = os.environ.get("O1PRUNER_COMMIT")
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    timeout=10, cwd=Path(__file__).parent).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {
        "command": " ".join(["python -m o1pruner.gpu_check", *sys.argv[1:]]), "commit": commit,
        "host_cpus": os.cpu_count(), "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _deepspeed_version() -> str | None:
    try:
        import deepspeed
    except Exception:  # noqa: BLE001 - missing or broken: the DeepSpeed checks say so
        return None
    return deepspeed.__version__


def run(argv: list[str] | None = None, emit: Callable[[str], None] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out = open(args.out, "a") if args.out else None  # noqa: SIM115 - closed below

    def _emit(line: str) -> None:
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()
        if emit:
            emit(line)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        _emit(result_line("env", "fail", error="--device cuda but torch sees no CUDA device"))
        return 1
    if device == "cuda" or args.deepspeed_on_cpu:
        _single_rank_env()
    if args.deepspeed_on_cpu:
        from o1pruner.engines import DEEPSPEED_ON_CPU_ENV

        os.environ[DEEPSPEED_ON_CPU_ENV] = "1"
    ds_version = _deepspeed_version() if device == "cuda" or args.deepspeed_on_cpu else None
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    peak = args.peak_tflops or (peak_bf16_tflops(name) if device == "cuda" else None)
    _, line = _env_line(device, peak, ds_version)
    _emit(line)
    runner = Runner(device, args.quick, peak)
    started = time.monotonic()
    failed = False
    counts = dict.fromkeys(STATUSES, 0)
    scratch = tempfile.TemporaryDirectory(prefix="gpu-check-models-")
    try:
        for source in args.model or DEFAULT_MODELS:
            label = model_label(source)
            names = [n for n in check_names(label) if selected(n, args.only, args.skip)]
            if not names:
                continue
            try:
                from o1pruner.models import resolve_model

                path = resolve_model(source)
                if not Path(path).exists():
                    raise FileNotFoundError(f"{source} resolved to {path}, which is not a local directory (no network)")
                weights = "checkpoint"
                if not has_weights(Path(path)):
                    path = str(random_init_dir(Path(path), Path(scratch.name) / label))
                    weights = "random-init"
            except Exception as exc:  # noqa: BLE001 - reported as one skipped line
                counts["skipped"] += 1
                _emit(result_line(f"model/{label}", "skipped", source=source, reason=f"{type(exc).__name__}: {exc}"))
                continue
            for check in names:
                reason = skip_reason(check, device, ds_version is not None, args.deepspeed_on_cpu)
                if reason is None and time.monotonic() - started > args.budget_s:
                    reason = f"time budget of {args.budget_s}s spent"
                if reason:
                    counts["skipped"] += 1
                    _emit(result_line(check, "skipped", reason=reason))
                    continue
                kind, _, engine = check.split("/")
                try:
                    if kind == "train":
                        fields = runner.train(path, engine)
                    elif kind == "resume":
                        fields = runner.resume(path, engine)
                    else:
                        fields = runner.sample(path)
                except Exception as exc:  # noqa: BLE001 - one failed check never stops the others
                    log.exception("%s failed", check)
                    fields = {"status": "fail", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
                    runner._release()
                status = fields.pop("status")
                failed |= status == "fail"
                counts[status] += 1
                _emit(result_line(check, status, weights=weights, **fields))
        _emit(result_line(
            "summary", "fail" if failed else "pass", seconds=time.monotonic() - started,
            load_average=[round(x, 2) for x in os.getloadavg()],
            ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **counts))
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # DeepSpeed's one-rank group (NCCL warns otherwise)
        scratch.cleanup()
        if out:
            out.close()
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when torch sees one")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter steps and samples")
    ap.add_argument("--model", action="append", help=f"model source, repeatable (default: {', '.join(DEFAULT_MODELS)})")
    ap.add_argument("--only", action="append", help="run only checks matching this pattern, e.g. 'train/*'")
    ap.add_argument("--skip", action="append", help="skip checks matching this pattern")
    ap.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the device, for one not in the table")
    ap.add_argument("--budget-s", type=float, default=480.0, help="skip the remaining checks after this long")
    ap.add_argument("--out", help="also append the JSON lines to this file")
    ap.add_argument("--deepspeed-on-cpu", action="store_true",
                    help="with --device cpu: run the DeepSpeed checks on the CPU (gloo, fp32), to test this script")
    return ap


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
