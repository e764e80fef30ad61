"""The testbed through the real pipeline and the benchmark's statistics, on the barely trained
``embedded:longthought-smoke`` model (same architecture and vocabulary; seconds to build)."""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def testbed_bench():
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("bench_testbed", REPO / "bench" / "testbed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_testbed"] = module
    spec.loader.exec_module(module)
    return module


def test_smoke_model_builds_once_as_a_normal_hf_directory(cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from o1pruner.models import ensure_embedded

    path = ensure_embedded("longthought-smoke")
    assert path.name.startswith("longthought-smoke-") and (path / "model.safetensors").is_file()
    info = json.loads((path / "testbed.json").read_text())
    assert info["recipe"]["steps"] == 4 and info["build"]["parameters"] > 0
    assert ensure_embedded("longthought-smoke") == path  # cached by the recipe's digest
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path))
    assert model.config.vocab_size == len(tok)
    assert tok.apply_chat_template([{"role": "user", "content": "3 + 4"}], tokenize=False,
                                   add_generation_prompt=True) == "<s><|user|> 3 + 4 <|assistant|>"


def tb_per_problem(tmp_path: Path) -> dict:
    return json.loads(gzip.decompress((tmp_path / "results" / "testbed_per_problem.json.gz").read_bytes()))


def _bench_module(name: str):
    bench = str(REPO / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module(name)


def test_bench_runs_every_method_and_renders_from_its_json(cache, tmp_path, testbed_bench):
    tb = testbed_bench
    cfg = tb.Config(seeds=(0, 1), train_count=6, eval_count=9, k=2, max_tokens=24, steps=2, batch_size=4,
                    max_length=64, lambdas=(0.0, 2.0), model="embedded:longthought-smoke", work=str(tmp_path / "work"),
                    baselines=False)  # the untrained smoke model has no correct samples for SFT/DPO
    for seed in cfg.seeds:
        tb.run_seed(cfg, seed)
    record = {"machine": {"cpu": "test", "cores": 2, "load_average_at_start": [0.0, 0, 0],
                          "load_average_at_end": [0.0, 0, 0]}, "command": "python bench/testbed.py", "wall_seconds": 1.0,
              "git_commit": "abc", "started_at": "now"}
    result = tb.build_result(cfg, record, results_dir=tmp_path / "results")
    stats = result["stats"]
    assert stats["base"]["n"] == 9 and stats["base"]["seeds_identical"]
    assert set(stats["rows"]) == {"o1-lam0", "o1-lam2"}
    for run, row in stats["rows"].items():
        assert len(row["per_seed"]) == 2
        assert row["delta_accuracy"]["low"] <= row["delta_accuracy"]["mean"] <= row["delta_accuracy"]["high"]
        trained = result["train"][run]
        assert all(t["steps"] == cfg.steps for t in trained.values()), trained  # the same budget for every method
    per_problem = tb_per_problem(tmp_path)
    assert len(per_problem["l_min"]) == 9 and set(per_problem["base"]) == {"0", "1"}
    out = tmp_path / "rendered"
    tb.render_results(json.loads(json.dumps(result, default=str)), out)
    md = (out / "testbed.md").read_text()
    assert "Table 2" in md and "λ ablation" in md and (out / "testbed.png").stat().st_size > 10_000
    tb.render_results(json.loads(json.dumps(result, default=str)), tmp_path / "again")
    assert (tmp_path / "again" / "testbed.md").read_text() == md

    # bench/length_rewards.py: the same runs (resumed, not retrained) plus a length reward
    rewards_cfg = replace(cfg, lambdas=(2.0,), rewards=("kimi-length",))
    for seed in rewards_cfg.seeds:
        tb.run_seed(rewards_cfg, seed)
    rewards = tb.build_result(rewards_cfg, record, results_dir=tmp_path / "results", name="length_rewards",
                              title="Length rewards")
    assert set(rewards["stats"]["rows"]) == {"o1-lam2", "kimi-length"}
    assert rewards["stats"]["rows"]["o1-lam2"] == stats["rows"]["o1-lam2"]  # the testbed's own run
    tb.render_results(json.loads(json.dumps(rewards, default=str)), out)
    rmd = (out / "length_rewards.md").read_text()
    assert rmd.startswith("# Length rewards") and "Kimi k1.5 length penalty" in rmd and "Table 2" not in rmd

    # bench/rounds.py: round 1 is the λ = 2 run above (resumed), round 2 resamples from its model
    rounds = _bench_module("rounds")
    rounds_cfg = replace(cfg, lambdas=(2.0,))
    for seed in rounds_cfg.seeds:
        rounds.run_rounds(rounds_cfg, seed)
    per_problem = rounds.collect(rounds_cfg)
    assert per_problem["methods"]["round1"] == tb_per_problem(tmp_path)["methods"]["o1-lam2"]
    assert per_problem["train"]["round2"]["0"]["steps"] == cfg.steps
    rres = rounds.testbed.build_result(rounds_cfg, record, results_dir=tmp_path / "results", name="rounds",
                                       title="Rounds", per_problem=per_problem, labels=rounds.LABELS)
    rres["sections"] = [["Rounds", ["round1", "round2"]]]
    rres["guards"] = rounds.guard_verdicts(per_problem)
    rres["targets"] = rounds.targets(rres["stats"], rres["guards"])
    assert {(g["run"], g["seed"]) for g in rres["guards"]} == {(f"round{n}", s) for n in (1, 2) for s in (0, 1)}
    rounds.render_results(json.loads(json.dumps(rres, default=str)), out)
    md3 = (out / "rounds.md").read_text()
    assert "## Rounds" in md3 and "Round 2 (reference: round 1's model)" in md3
    assert "## Accuracy guard per seed and round" in md3 and "2 rounds close" in md3


def test_local_pipeline_runs_on_the_testbed_and_reports_the_gap(cache, tmp_path):
    from o1pruner.pipeline import run_local
    from o1pruner.spec import parse_job

    job = {
        "apiVersion": "o1pruner.dev/v1alpha1", "kind": "PruningJob", "metadata": {"name": "tb"},
        "spec": {
            "model": {"source": "embedded:longthought-smoke"},
            "datasets": {"train": {"name": "t", "source": "builtin:longthought", "generator": {"count": 4, "seed": 1}},
                         "eval": [{"name": "e", "source": "builtin:longthought", "generator": {"count": 6, "seed": 2}}]},
            "prompt": {"system": ""},
            "sampling": {"k": 2, "temperature": 1.0, "topP": 1.0, "maxTokens": 16, "backend": "transformers"},
            "training": {"epochs": 1, "batchSize": 4, "microBatchSize": 4, "maxLength": 64,
                         "deepspeed": {"enabled": False}},
            "evaluation": {"maxTokens": 16},
            "storage": {"uri": str(tmp_path / "run")},
            "metrics": {"port": 19499},
        },
    }
    report = run_local(parse_job(job))
    assert report["paired"]["problems"] == 6
    assert report["paired"]["meanLMin"] > 0 and "gapClosed" in report["paired"]
    # the accuracy guard judged the run (6 problems: every difficulty bucket is inconclusive)
    guard = report["guard"]
    assert guard["buckets"]["all"]["n"] == 6 and report["accepted"] is guard["passed"]
    assert all(guard["buckets"][b]["verdict"] == "inconclusive" for b in guard["buckets"] if b != "all")
    assert json.loads((tmp_path / "run" / "report" / "report.json").read_text())["accepted"] is report["accepted"]
    # the report names the build of the built-in model it ran on (builds differ between CPU kinds)
    from o1pruner.models import ensure_embedded
    from o1pruner.testbed.build import build_identity

    assert report["baseModel"] == build_identity(ensure_embedded("longthought-smoke"))
    assert report["baseModel"]["cpu"] and len(report["baseModel"]["weights_sha256"]) == 64
    # diagnostics of the reference samples and of training (maxTokens 16 truncates most samples)
    ref = report["diagnostics"]["reference"]
    assert ref["samples"] == 8 and 0 <= ref["truncationRate"] <= 1 and "zeroRewardVarianceShare" in ref
    # savings per million requests at the reference sampler's measured throughput
    sv = report["savings"]
    assert sv["tokensSavedPerMillionRequests"] == pytest.approx(
        (report["tokens"]["base"] - report["tokens"]["pruned"]) / 6 * 1e6)
    assert sv["samplerTokensPerSecond"] > 0 and sv["accelerators"] is None
    clip = report["diagnostics"]["training"]
    assert clip["clip_fraction_positive"] + clip["clip_fraction_negative"] <= clip["clip_fraction"] + 1e-9


def test_a_recipe_builds_the_same_weights_twice(tmp_path):
    import hashlib

    from o1pruner.testbed.build import TESTBED_RECIPES, build

    recipe = TESTBED_RECIPES["longthought-smoke"]
    digests = []
    for name in ("a", "b"):
        path = build(tmp_path / name, recipe, progress=False)
        digests.append(hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
