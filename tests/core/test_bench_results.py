"""The committed benchmark results (``bench/results/``) are complete, honest and self-consistent:
each benchmark has its JSON, markdown table and PNG; every JSON states machine, seed, command and
wall time, and one recorded the new way (``recording: 2``) also its exact arguments (which
``make bench`` replays), commit, start time and the load average read at the start and at the
end (or ``null`` with a note where it was not measured); every md, the data each png was drawn
from and the results section of docs/benchmarks.md are what ``python bench/render.py`` renders
from the JSONs; importing the bench helpers changes no environment variable; rows carry
``method``, ``accuracy``, ``mean_length`` and ``aes``; ratios are named ``*_ratio``; and the AES
of every pruning row is the paper's Eq. 8 of its own accuracy and length against the baseline
row (so a table can't drift from the formula)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from o1pruner import aes

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
JSONS = sorted(RESULTS.glob("*.json"))
EXPECTED = {"sampler_throughput", "trainer_efficiency", "testbed_build", "testbed", "length_rewards", "rounds",
            "redundancy_oracle", "smollm2"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_benchmark_committed_its_three_files():
    assert {p.stem for p in JSONS} >= EXPECTED
    for p in JSONS:
        assert p.with_suffix(".md").is_file(), p.name
        assert p.with_suffix(".png").stat().st_size > 10_000, p.name


@pytest.mark.parametrize("path", JSONS, ids=lambda p: p.stem)
def test_results_state_how_they_were_made_and_name_their_ratios(path):
    data = _load(path)
    assert data["benchmark"] == path.stem
    assert data["machine"]["cores"] and data["machine"]["cpu"]
    assert "seed" in data and data["command"].startswith("python bench/") and data["wall_seconds"] > 0
    for row in data["rows"]:
        assert {"method", "accuracy", "mean_length", "aes"} <= set(row), (path.stem, row)
        for key in row:
            assert "ratio" not in key or key.endswith("_ratio"), (path.stem, key)


def test_aes_column_is_eq8_of_the_accuracy_and_length_columns():
    """One seed: each row's AES is the paper's Eq. 8 of its own accuracy and length against the
    base row's (several seeds average Eq. 8 over seeds instead)."""
    rows = _load(RESULTS / "smollm2.json")["rows"]
    (base,) = [r for r in rows if r["method"] == "Baseline"]
    for row in rows:
        if row is base:
            continue
        expected = aes(base["accuracy"], base["mean_length"], row["accuracy"], row["mean_length"])
        assert row["aes"] == pytest.approx(expected, abs=1e-9), row["method"]


def _bench_module(name: str):
    import importlib
    import sys

    bench = str(RESULTS.parent)
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module(name)


# --------------------------------------------------------------------------- honest records


def _recorded(path: Path) -> bool:
    return "benchmark" in _load(path)


def test_every_result_has_a_run_record():
    for p in JSONS:
        if _recorded(p):  # written by bench/common.py
            assert _load(p).get("recording") == 2, p.stem


@pytest.mark.parametrize("path", [p for p in JSONS if _recorded(p)], ids=lambda p: p.stem)
def test_run_record_has_exact_command_commit_and_both_load_averages(path):
    data = _load(path)
    assert data["command"] == shlex.join(["python", f"bench/{path.stem}.py", *data["argv"]])
    assert data["git_commit"] and "started_at" in data
    m = data["machine"]
    end = m["load_average_at_end"]
    assert len(end) == 3
    if m["load_average_at_start"] is None:  # not measured: said so, never filled in
        assert m["load_average_note"]
        assert any("load_average_at_start" in c for c in data["corrections"])
    else:
        assert len(m["load_average_at_start"]) == 3
        assert m["load_average_at_start"] != end, "start and end read at the same moment"


def test_make_bench_replays_the_arguments_of_the_committed_results():
    run_all = _bench_module("run_all")
    commands = run_all.plan(run_all.ORDER)
    for name, cmd in zip(run_all.ORDER, commands):
        if (RESULTS / name).is_dir():  # a folder of other scripts' results (bench/concise.py): no arguments
            assert cmd[1:] == [f"bench/{name}.py"] and (RESULTS / name / "README.md").is_file(), name
            continue
        data = _load(RESULTS / f"{name}.json")
        assert shlex.join(["python", *cmd[1:]]) == data["command"], name
        if "argv" in data:
            assert cmd[2:] == data["argv"]
    makefile = (REPO / "Makefile").read_text()
    target = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert "bench/run_all.py\n" in target + "\n" and "--" not in target  # no other arguments


def test_a_run_reads_the_load_average_at_its_start_and_at_its_end(monkeypatch):
    common = _bench_module("common")
    loads = iter([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)])
    monkeypatch.setattr(common.os, "getloadavg", lambda: next(loads))
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")  # a value the user set wins over BENCH_ENV
    run = common.start(["--steps", "8", "--name", "a b"], script=str(REPO / "bench" / "x.py"))
    record = common.finish(run)
    assert record["machine"]["load_average_at_start"] == [1.0, 2.0, 3.0]
    assert record["machine"]["load_average_at_end"] == [4.0, 5.0, 6.0]
    assert record["command"] == "python bench/x.py --steps 8 --name 'a b'"
    assert record["argv"] == ["--steps", "8", "--name", "a b"]
    assert record["environment"] == {"VLLM_CPU_KVCACHE_SPACE": "7"} and record["recording"] == 2
    assert record["wall_seconds"] >= 0 and record["started_at"] and record["git_commit"] and "git_dirty" in record


def test_importing_the_bench_helpers_changes_no_environment_variable():
    code = (
        "import json, os, sys; before = dict(os.environ); sys.path.insert(0, 'bench'); "
        "import common, run_all, render, sampler_throughput, trainer_efficiency; "
        "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"})
    assert json.loads(out.stdout) == []


# --------------------------------------------------------------------------- rendered from the JSON


RENDERED = [p for p in JSONS if _recorded(p)]


@pytest.mark.parametrize("path", RENDERED, ids=lambda p: p.stem)
def test_md_and_png_are_rendered_from_the_committed_json(path, tmp_path):
    common = _bench_module("common")
    data = _load(path)
    module = _bench_module(path.stem)
    module.render_results(data, tmp_path / "a")
    assert (tmp_path / "a" / f"{path.stem}.md").read_text() == path.with_suffix(".md").read_text()
    # the committed png was drawn from exactly this JSON, and drawing it again gives the same bytes
    assert common.png_stamp(path.with_suffix(".png")) == common.data_sha256(data)
    module.render_results(data, tmp_path / "b")
    png_a, png_b = ((tmp_path / d / f"{path.stem}.png").read_bytes() for d in "ab")
    assert png_a == png_b and common.png_stamp(tmp_path / "a" / f"{path.stem}.png") == common.data_sha256(data)


def test_docs_results_section_is_rendered_from_the_jsons():
    render = _bench_module("render")
    committed = (REPO / "docs" / "benchmarks.md").read_text()
    assert render.docs_text(committed, render.results()) == committed
    generated = committed.split(render.BEGIN, 1)[1].split(render.END, 1)[0]
    for data in render.results():
        assert f"`{data['command']}`" in generated, data["benchmark"]


def test_a_png_not_drawn_from_its_json_is_detected(tmp_path):
    common = _bench_module("common")
    data = _load(RESULTS / "trainer_efficiency.json")
    png = tmp_path / "x.png"
    png.write_bytes((RESULTS / "trainer_efficiency.png").read_bytes())
    changed = {**data, "efficiency_ratio": data["efficiency_ratio"] + 0.01}
    assert common.png_stamp(png) == common.data_sha256(data) != common.data_sha256(changed)


def test_tuning_runs_table_is_what_their_jsons_say():
    """bench/results/tuning/README.md lists every tuning run with its own JSON's figures."""
    tuning = RESULTS / "tuning"
    text = (tuning / "README.md").read_text()
    jsons = sorted(tuning.glob("*.json"))
    assert jsons
    testbed = _bench_module("testbed")
    for path in jsons:
        data = _load(path)
        line = testbed.tuning_row(data, path.name)
        assert line in text, line
        assert data["command"] == shlex.join(["python", f"bench/{data['benchmark']}.py", *data["argv"]])


def test_gpu_docs_section_is_rendered_from_the_committed_gpu_results():
    """docs/gpu.md's results are the committed JSON lines of scripts/gpu-check.sh, every run and
    every check, and a changed figure shows up as drift."""
    gpu = _bench_module("gpu_results")
    committed = gpu.DOCS.read_text()
    runs, local_runs = gpu.load_runs(), gpu.load_local_runs()
    assert runs and local_runs, "bench/results/gpu/ holds the H200 runs"
    assert gpu.docs_text(committed, runs, local_runs) == committed
    for stem, report, manifest in local_runs:
        assert f"**{stem}**" in committed and manifest["phases"]["train"]["done"]
        assert f"{100 * report['paired']['lengthChange']['mean']:+.1f} %" in committed
    generated = committed.split(gpu.BEGIN, 1)[1].split(gpu.END, 1)[0]
    for name, records in runs:
        assert name in generated
        assert records[0]["check"] == "env" and records[-1]["check"] == "summary"
        for r in records[1:-1]:
            assert f"`{r['check']}` | {r['status']} |" in generated
    name, records = runs[0]
    changed = [dict(r, seconds=r["seconds"] + 1.0) if r["check"].startswith("sample/") else r for r in records]
    assert gpu.docs_text(committed, [(name, changed), *runs[1:]], local_runs) != committed


def test_docs_table_of_the_two_builds_is_what_their_jsons_say():
    """docs/testbed.md, *One recipe, two builds*: one row per build, rendered from its JSON."""
    testbed = _bench_module("testbed")
    text = (REPO / "docs" / "testbed.md").read_text()
    for rel in ("bench/results/tuning/testbed-amd.json", "bench/results/tuning/testbed-intel.json"):
        row = testbed.build_row(_load(REPO / rel), rel)
        assert row in text, row
    amd, intel = _load(RESULTS / "tuning" / "testbed-amd.json"), _load(RESULTS / "tuning" / "testbed-intel.json")
    assert amd["model"]["digest"] == intel["model"]["digest"]  # one recipe
    assert amd["model"]["build"]["final_loss"] != intel["model"]["build"]["final_loss"]  # two builds
    same = ("seeds", "train_count", "eval_count", "k", "temperature", "max_tokens", "steps", "batch_size",
            "learning_rate", "max_length")
    assert {k: amd["config"][k] for k in same} == {k: intel["config"][k] for k in same}  # same settings


def test_testbed_build_benchmark_summarizes_its_runs_side_by_side():
    """bench/testbed_build.py: per-step time averaged over each variant's runs, speed-up against
    the unbucketed one-thread variant, and whether the thread count changed the weights."""
    tb = _bench_module("testbed_build")
    runs = {"unbucketed-1t": [{"seconds": 30.0, "padding_fraction": 0.42, "weights": "a"},
                              {"seconds": 32.0, "padding_fraction": 0.42, "weights": "a"}],
            "bucketed-1t": [{"seconds": 17.0, "padding_fraction": 0.09, "weights": "b"},
                            {"seconds": 17.0, "padding_fraction": 0.09, "weights": "b"}],
            "bucketed-2t": [{"seconds": 10.0, "padding_fraction": 0.09, "weights": "b"},
                            {"seconds": 10.0, "padding_fraction": 0.09, "weights": "b"}]}
    rows = {r["variant"]: r for r in tb.summarize(runs, steps=10)}
    assert rows["unbucketed-1t"]["seconds_per_step"] == pytest.approx(3.1)
    assert rows["bucketed-2t"]["speedup"] == pytest.approx(3.1)
    assert rows["unbucketed-1t"]["speedup"] == 1.0
    data = {"rows": list(rows.values()), "steps": 10, "recipe_steps": 1000,
            "build": {"train_seconds": 271.0, "cpu": "AMD EPYC", "cpu_capability": "AVX512"}}
    assert "gave the same weights" in tb.notes_for(data)
    rows["bucketed-2t"]["weights"] = "c"
    assert "gave different weights" in tb.notes_for(data)
    assert "3.10x" in tb.docs_summary(data)["measured"]


def test_pretrained_path_is_the_warmed_up_smollm2_on_200_problems_and_the_docs_say_so():
    """bench/results/smollm2.json measures ``embedded:smollm2-longthought`` as built from the
    recipe in the code (one seed, ≥ 200 held-out problems, lengths not censored, L_min in its own
    tokens), and docs/testbed.md's paragraph on it states that recipe and that build's time."""
    from o1pruner.testbed.build import TESTBED_RECIPES

    data = _load(RESULTS / "smollm2.json")
    recipe = TESTBED_RECIPES["smollm2-longthought"]
    assert data["model"]["source"] == "embedded:smollm2-longthought"
    assert data["model"]["digest"] == recipe.digest() and data["model"]["recipe"]["init"] == recipe.init
    base = data["stats"]["base"]
    assert base["n"] >= 200 and len(data["seed"]) == 1 and base["truncated"] < 0.01
    assert base["mean_l_min"] > 26.0  # SmolLM2 splits numbers: more tokens than the testbed's one per word
    text = " ".join((REPO / "docs" / "testbed.md").read_text().split())
    minutes = round(data["model"]["build"]["train_seconds"] / 60)
    lr = f"{recipe.learning_rate:.0e}".replace("e-0", "e-")  # 1e-4
    assert (f"{recipe.steps} steps of {recipe.batch_size} traces at lr {lr}" in text
            and f"(about {minutes} minutes on {data['machine']['cores']} cores)" in text)
    guess = data["stats"]["anatomy"]["guess"]  # the docs' "a guess is a quarter of a mean reference sample"
    assert 0.2 <= guess["with"]["mean_length"] / guess["without"]["mean_length"] <= 0.3
    assert "a guess is a quarter of a mean reference sample" in text
    assert guess["with"]["mean_reward"]["2"] == max(k["with"]["mean_reward"]["2"] for k in data["stats"]["anatomy"].values())


def test_docs_sampling_and_second_round_paragraph_is_what_the_tuning_jsons_say():
    """docs/testbed.md's paragraph on the authors' sampling and a second round (bench/results/
    tuning/*-avx2.json): the cuts, accuracy changes, check shares and the guard's verdict."""
    tuning = RESULTS / "tuning"
    t1, authors = _load(tuning / "testbed-t1-avx2.json"), _load(tuning / "testbed-authors-avx2.json")
    r_t1, r_authors = _load(tuning / "rounds-t1-avx2.json"), _load(tuning / "rounds-authors-avx2.json")
    text = " ".join((REPO / "docs" / "testbed.md").read_text().split())
    for data, temperature, top_p in ((t1, 1.0, 1.0), (authors, 0.5, 0.8), (r_t1, 1.0, 1.0), (r_authors, 0.5, 0.8)):
        assert (data["config"]["temperature"], data["config"]["top_p"]) == (temperature, top_p)
        assert data["model"]["identity"] == t1["model"]["identity"]  # one build for all four
    assert t1["model"]["build"]["cpu_capability"] == "AVX2" and "AMD EPYC on AVX2 kernels" in text

    def cut(data: dict, run: str) -> str:
        return f"{-100 * data['stats']['rows'][run]['length_change']['mean']:.1f} %"

    def dacc(data: dict, run: str) -> str:
        a = data["stats"]["rows"][run]["delta_accuracy"]
        return (f"{100 * a['mean']:+.1f} [{100 * a['low']:+.1f}, {100 * a['high']:+.1f}]").replace("-", "−")

    assert f"cut {cut(t1, 'o1-lam2')} at temperature 1 and {cut(authors, 'o1-lam2')} at the authors'" in text
    assert f"cut {cut(r_authors, 'round2')} at the authors' sampling, no more than its first" in text
    assert abs(r_authors["stats"]["rows"]["round2"]["length_change"]["mean"]
               - authors["stats"]["rows"]["o1-lam2"]["length_change"]["mean"]) < 0.01
    assert f"at temperature 1 it cut {cut(r_t1, 'round2')}" in text
    assert f"{dacc(r_t1, 'round2')} points against {dacc(t1, 'o1-lam2')} after round 1" in text
    assert r_t1["stats"]["rows"]["round1"] == t1["stats"]["rows"]["o1-lam2"]  # round 1 is that run, resumed
    shares = [d["stats"]["anatomy"]["check"]["with"]["share"] for d in (authors, t1)]
    assert f"({100 * shares[0]:.1f} % of them, against {100 * shares[1]:.1f} % at temperature 1)" in text
    guard = [g for g in r_t1["guards"] if g["run"] == "round2"]
    assert len(guard) == 2 and not any(g["0.01"]["passed"] for g in guard)
    assert "the default guard rejects it on both seeds" in text


def test_concise_results_render_from_their_jsons_and_are_one_build(tmp_path):
    """bench/results/concise/: each md and the README are what ``bench/concise.py --rerender``
    writes from the committed JSONs, the three runs measured one build of the concise recipe,
    and round 1 of the rounds run is the testbed run (resumed, not retrained)."""
    from o1pruner.testbed.build import TESTBED_RECIPES

    concise = _bench_module("concise")
    out = RESULTS / "concise"
    concise.rerender(tmp_path)
    datas = concise.load_all()
    for name in ("README", *datas):
        assert (tmp_path / f"{name}.md").read_text() == (out / f"{name}.md").read_text(), name
    oracle, tb, rnd = datas["redundancy_oracle"], datas["testbed"], datas["rounds"]
    assert {d["model"]["identity"]["weights_sha256"] for d in datas.values()} == {
        oracle["model"]["build"]["weights_sha256"]}
    assert oracle["model"]["digest"] == TESTBED_RECIPES["longthought-concise"].digest()
    assert rnd["stats"]["rows"]["round1"] == tb["stats"]["rows"]["o1-lam2"]
    docs = (REPO / "docs" / "testbed.md").read_text()
    assert concise.docs_text(docs, datas) == docs  # the docs' findings are the JSONs' figures
    assert datas["rounds-lam5"]["stats"]["rows"]["round1"] == datas["testbed-lam5"]["stats"]["rows"]["o1-lam5"]
    assert datas["rounds-kimi"]["stats"]["rows"]["round1"] == datas["length_rewards-kimi"]["stats"]["rows"]["kimi-length"]
    assert len(rnd["seed"]) >= 3 and rnd["stats"]["base"]["n"] >= 500  # the rounds issue's scale
    # docs: the best structure-by-difficulty oracle at >= 90 % of the gap has a point estimate below -1 point
    mix = concise.redundancy_oracle.difficulty_mixture(concise.per_problem(oracle))
    assert mix["gap_closed"] >= 0.9 and min(mix["delta_accuracy"].values()) < -0.01 and not mix["guard"]["passed"]
    assert "with a point estimate of Δacc below the guard's −1 point on some difficulty" in docs
    base = oracle["stats"]["base"]
    assert 0.6 <= base["accuracy"] <= 0.9 and base["length_over_l_min"] >= 2.5 and base["truncated"] < 0.01
    for name, source, _, argv in concise.RUNS:  # `python bench/concise.py` replays the recorded runs
        assert datas[name]["argv"] == argv and datas[name]["command"] == shlex.join(
            ["python", f"bench/{source}.py", *argv]), name
    for data in datas.values():
        assert data["per_problem_file"].startswith("bench/results/concise/")
        assert (REPO / data["per_problem_file"]).is_file()


def test_concise_exact_results_render_from_their_jsons_and_are_one_build(tmp_path):
    """bench/results/concise-exact/ (the exact-concise model): each md and the README are what
    ``bench/concise.py --rerender`` writes from its JSONs, every run measured one build of the
    recipe, round 1 of the rounds run is the testbed run, and docs/testbed.md states the figures.
    The build of the recipe's first seed, kept beside them, is the one the docs say was below
    the testbed's accuracy bound."""
    from o1pruner.testbed.build import TESTBED_RECIPES

    concise = _bench_module("concise")
    variant = concise.VARIANTS["concise-exact"]
    concise.rerender(tmp_path, variant="concise-exact")
    datas = concise.load_all("concise-exact")
    for name in ("README", *datas):
        assert (tmp_path / f"{name}.md").read_text() == (variant.out / f"{name}.md").read_text(), name
    oracle, tb, rnd = datas["redundancy_oracle"], datas["testbed"], datas["rounds"]
    recipe = TESTBED_RECIPES["longthought-concise-exact"]
    assert {d["model"]["identity"]["weights_sha256"] for d in datas.values()} == {
        oracle["model"]["build"]["weights_sha256"]}
    assert oracle["model"]["digest"] == recipe.digest()
    assert rnd["stats"]["rows"]["round1"] == tb["stats"]["rows"]["o1-lam2"]
    docs = (REPO / "docs" / "testbed.md").read_text()
    assert concise.docs_text(docs, datas, variant) == docs
    assert len(rnd["seed"]) >= 3 and rnd["stats"]["base"]["n"] >= 500
    base = oracle["stats"]["base"]
    assert 0.6 <= base["accuracy"] <= 0.9 and base["length_over_l_min"] >= 2.5 and base["truncated"] < 0.01
    for name, source, _, argv in variant.runs:
        assert datas[name]["argv"] == argv and datas[name]["command"] == shlex.join(
            ["python", f"bench/{source}.py", *argv]), name
    for data in datas.values():
        assert data["per_problem_file"].startswith("bench/results/concise-exact/")
        assert (REPO / data["per_problem_file"]).is_file()
    # The 3000-problem runs retrained the same models (deterministic on one machine): on the 600
    # problems they share, base and every round answer exactly as in the 600-problem runs.
    def outcomes(name: str) -> dict:
        return concise.per_problem(datas[name])

    small, large = outcomes("rounds"), outcomes("rounds-3000")
    assert large["problem_ids"][:600] == small["problem_ids"] and datas["rounds-3000"]["stats"]["base"]["n"] == 3000
    for seed in map(str, rnd["seed"]):
        assert large["base"][seed]["correct"][:600] == small["base"][seed]["correct"]
        for run in ("round1", "round2"):
            for key in ("correct", "length"):
                assert large["methods"][run][seed][key][:600] == small["methods"][run][seed][key], (seed, run, key)
    # docs/method.md: over 3000 the guard accepts some round-2 models and refuses one as accurate as its base
    last = [g for g in datas["rounds-3000"]["guards"] if g["run"] == "round2"]
    assert any(g["0.01"]["passed"] for g in last) and not all(g["0.01"]["passed"] for g in last)
    assert any(line.lstrip().startswith("Round 2's guard refused on the interval alone")
               for line in concise.round_lines(datas["rounds-3000"]))
    # docs/testbed.md, "What it says about the rounds target" on this model:
    from o1pruner.guard import accuracy_guard

    for name in ("rounds", "rounds-3000", "rounds-t1536"):  # round 2: the minimal structure, above the base, every seed
        r2 = datas[name]["stats"]["rows"]["round2"]
        assert all(s["gap_closed"] >= 0.995 and s["accuracy"] > datas[name]["stats"]["base"]["accuracy"]
                   for s in r2["per_seed"]), name
    assert not concise.oracle_guard(oracle, "without-restate-check")["passed"]  # refused over 600
    one = outcomes("rounds-t1536")
    for seed in map(str, datas["rounds-t1536"]["seed"]):  # one epoch: round 1 minimal, every interval above 0
        g = accuracy_guard(one["base"][seed]["correct"], one["methods"]["round1"][seed]["correct"], one["difficulty"])
        assert all(b["deltaAccuracy"]["low"] > 0 for b in g["buckets"].values()), seed
    assert all(s["gap_closed"] >= 0.995 for s in datas["rounds-t1536"]["stats"]["rows"]["round1"]["per_seed"])
    assert all(g["0.01"]["passed"] for g in datas["rounds-t1536"]["guards"])
    assert datas["rounds-t1536"]["targets"][0]["met"]
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "one-epoch setting, where two rounds meet the rounds target" in readme
    from o1pruner.paired import bootstrap_mean_ci

    six = outcomes("rounds-3000")
    gain = np.mean([np.asarray(one["methods"]["round2"][s]["correct"], float)
                    - np.asarray(six["methods"]["round2"][s]["correct"], float) for s in map(str, rnd["seed"])], axis=0)
    assert bootstrap_mean_ci(gain, seed=0).low > 0  # one epoch more accurate than six (the contrast line)
    assert concise.contrast_line(datas["rounds-3000"], datas["rounds-t1536"]) in docs
    assert datas["rounds-t1536"]["config"]["train_count"] == 1536 and datas["rounds-t1536"]["stats"]["base"]["n"] == 3000
    assert _bench_module("testbed").epochs(datas["rounds-t1536"]["config"]) == 1
    first = _load(variant.out / "seed-1234-build" / "redundancy_oracle.json")
    assert first["model"]["digest"] == replace(recipe, seed=1234).digest() != recipe.digest()
    assert first["stats"]["base"]["accuracy"] < 0.6 and (REPO / first["per_problem_file"]).is_file()
    assert f"answered {first['stats']['base']['accuracy']:.3f} of the held-out problems" in docs
