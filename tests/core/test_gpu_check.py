"""The GPU check's own logic on the CPU: peaks and MFU, the JSON line, check selection, a
``--device cpu --quick`` run on the tiny model, and the shell wrapper's offline install step."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from o1pruner import gpu_check as gc

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA GH200 480GB", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40", None),  # not "L4"
        ("Tesla V100-SXM2-16GB", None),  # no bf16 tensor cores: no MFU
    ],
)
def test_peak_table(name, peak):
    assert gc.peak_bf16_tflops(name) == peak


def test_mfu_arithmetic():
    # 135M params at 100k trained tokens/s on a 989 TFLOPS part: 6 * 135e6 * 1e5 / 989e12
    assert gc.mfu(1e5, gc.train_flops_per_token(135_000_000), 989.0) == pytest.approx(0.08190, rel=1e-3)
    assert gc.mfu(1e3, gc.forward_flops_per_token(10**9), 312.0) == pytest.approx(2e12 / 312e12)
    assert gc.mfu(1e5, 1.0, None) is None and gc.mfu(0.0, 1.0, 989.0) is None


def test_steady_throughput_leaves_the_warm_up_step_out():
    history = [{"tokens": 100, "tokens_per_second": 10.0}, {"tokens": 300, "tokens_per_second": 100.0},
               {"tokens": 100, "tokens_per_second": 50.0}]
    assert gc.steady_tokens_per_second(history) == pytest.approx(400 / 5.0)
    assert gc.steady_tokens_per_second(history[:1]) == pytest.approx(10.0)


def test_result_line_format():
    line = gc.result_line("train/m/zero3", "pass", mfu=0.123456789, extra="x", seconds=1.23456, peak_memory_gib=None)
    record = json.loads(line)
    assert list(record) == ["check", "status", "seconds", "mfu", "extra"]  # fixed order, None dropped
    assert record["mfu"] == 0.123457 and record["seconds"] == 1.235
    with pytest.raises(ValueError, match="status must be one of"):
        gc.result_line("x", "ok")


def test_check_selection():
    names = gc.check_names("smollm2")
    assert names == ["train/smollm2/torch", "train/smollm2/zero2", "train/smollm2/zero3",
                     "resume/smollm2/torch", "resume/smollm2/zero3", "sample/smollm2/hf"]
    assert [n for n in names if gc.selected(n, ["train/*"], ["*/zero2"])] == ["train/smollm2/torch", "train/smollm2/zero3"]
    assert gc.skip_reason("train/m/zero2", "cpu", True).startswith("DeepSpeed runs on CUDA only")
    assert gc.skip_reason("train/m/zero2", "cpu", True, deepspeed_on_cpu=True) is None
    assert gc.skip_reason("train/m/zero3", "cuda", False) == "the deepspeed package is not installed"
    assert gc.skip_reason("train/m/torch", "cpu", False) is None
    assert gc.model_label("embedded:longthought-smoke") == "longthought-smoke"
    assert gc.model_label("/models/tiny/") == "tiny"


def test_cpu_quick_run_on_the_tiny_model(tiny_model_dir, tmp_path):
    out = tmp_path / "results.jsonl"
    lines: list[str] = []
    rc = gc.run(["--device", "cpu", "--quick", "--model", str(tiny_model_dir), "--model", "embedded:not-landed-yet",
                 "--out", str(out)], emit=lines.append)
    assert rc == 0
    assert out.read_text().splitlines() == lines
    by = {r["check"]: r for r in map(json.loads, lines)}
    label = tiny_model_dir.name
    assert by["env"]["status"] == "pass" and by["env"]["device"] == "cpu"
    train = by[f"train/{label}/torch"]
    assert train["status"] == "pass" and train["steps"] == 2 and train["tokens_per_second"] > 0
    assert train["engine"] == "TorchEngine"
    resume = by[f"resume/{label}/torch"]
    assert resume["status"] == "pass" and resume["max_abs_weight_diff_after_load"] == 0.0
    assert resume["resumed_from"].endswith("step-00000001")
    sample = by[f"sample/{label}/hf"]
    assert sample["status"] == "pass" and sample["generated_tokens"] > 0
    for engine in ("zero2", "zero3"):
        assert by[f"train/{label}/{engine}"]["status"] == "skipped"
    skipped = by["model/not-landed-yet"]
    assert skipped["status"] == "skipped" and "not-landed-yet" in skipped["reason"]
    assert lines[-1] == out.read_text().splitlines()[-1] and by["summary"]["status"] == "pass"
    assert (by["summary"]["pass"], by["summary"]["fail"], by["summary"]["skipped"]) == (3, 0, 4)  # zero2, zero3, resume zero3, the missing model


def _script(tmp_path, env_extra, *args):
    env = dict(os.environ, PYTHON=sys.executable, RESULTS=str(tmp_path / "r.jsonl"), **env_extra)
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu-check.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_shell_wrapper_runs_the_checks_and_writes_results(tiny_model_dir, tmp_path):
    """Through the wrapper, in a fresh process, with the DeepSpeed checks on the CPU (gloo,
    fp32) when deepspeed is installed: ZeRO-2 steps, ZeRO-3 checkpoint save and resume."""
    label = tiny_model_dir.name
    checks = [f"sample/{label}/hf"]
    args = ["--device", "cpu", "--quick", "--model", str(tiny_model_dir)]
    if importlib.util.find_spec("deepspeed") is not None:
        checks = [f"train/{label}/zero2", f"resume/{label}/zero3", *checks]
        args.append("--deepspeed-on-cpu")
    proc = _script(tmp_path, {}, *args, *(x for c in checks for x in ("--only", c)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["check"] for r in records] == ["env", *checks, "summary"]
    assert all(r["status"] == "pass" for r in records), records
    env, summary = records[0], records[-1]
    assert env["command"].startswith("python -m o1pruner.gpu_check --out") and len(env["load_average"]) == 3
    assert env["commit"] and env["host_cpus"] >= 1 and env["started_at"] <= summary["ended_at"]
    assert summary["pass"] == len(checks) and summary["fail"] == 0 and len(summary["load_average"]) == 3
    for r in records[1:-2]:  # the DeepSpeed ones
        assert r["engine"] == "DeepSpeedEngine"
    if len(records) > 2:
        assert records[2]["max_abs_weight_diff_after_load"] == 0.0


def test_shell_wrapper_names_what_is_missing_and_never_goes_online(tmp_path):
    req = tmp_path / "req.txt"
    req.write_text("# a package no machine has\no1pruner-no-such-package>=1\npyyaml>=6\n")
    no_wheels = _script(tmp_path, {"REQUIREMENTS": str(req), "WHEELS": str(tmp_path / "absent")}, "--device", "cpu")
    assert no_wheels.returncode == 2
    assert "o1pruner-no-such-package>=1" in no_wheels.stderr and "pyyaml" not in no_wheels.stderr
    assert "scripts/gpu-wheels.sh" in no_wheels.stderr
    (tmp_path / "wheels").mkdir()
    empty = _script(tmp_path, {"REQUIREMENTS": str(req), "WHEELS": str(tmp_path / "wheels")}, "--device", "cpu")
    assert empty.returncode != 0 and "o1pruner-no-such-package" in empty.stderr  # pip --no-index found nothing
    assert not (tmp_path / "r.jsonl").exists()


def test_a_model_directory_without_weights_runs_on_seeded_random_weights(tiny_model_dir, tmp_path):
    """A checkpoint too large to bring to the GPU machine travels as its config and tokenizer:
    the check draws the weights (same seed, same weights) and labels every line."""
    import torch
    from safetensors.torch import load_file

    config_only = tmp_path / "config-only"
    config_only.mkdir()
    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            (config_only / f.name).write_bytes(f.read_bytes())
    assert gc.has_weights(tiny_model_dir) and not gc.has_weights(config_only)

    a = gc.random_init_dir(config_only, tmp_path / "a", seed=5)
    b = gc.random_init_dir(config_only, tmp_path / "b", seed=5)
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").exists() and not gc.has_weights(config_only)  # the source is left as it was

    lines: list[str] = []
    rc = gc.run(["--device", "cpu", "--quick", "--model", str(config_only), "--only", "train/*/torch",
                 "--only", "sample/*"], emit=lines.append)
    assert rc == 0
    records = [json.loads(x) for x in lines][1:-1]
    assert [r["check"] for r in records] == ["train/config-only/torch", "sample/config-only/hf"]
    assert all(r["status"] == "pass" and r["weights"] == "random-init" for r in records)
