"""The README's timings and local-run figures are rendered from bench/results/readme/commands.json
(written by bench/readme_commands.py from a fresh clone), so the README states no time no run produced."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module():
    bench = str(REPO / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module("readme_commands")


def test_readme_blocks_are_what_the_record_renders():
    rc = _module()
    readme = (REPO / "README.md").read_text()
    for which, body in rc.render(rc.load_record()).items():
        assert rc.readme_block(readme, which) == body, f"README {which} block: run `python bench/readme_commands.py --rerender`"


def test_measured_record_names_commit_load_and_every_tier():
    rc = _module()
    record = rc.load_record()
    for which, rec in record.items():
        assert rec["git_commit"] and rec["wall_seconds"] > 0, which
        m = rec["machine"]
        assert len(m["load_average_at_start"]) == 3 and len(m["load_average_at_end"]) == 3
        assert m["load_average_at_start"] != m["load_average_at_end"], "start and end read at the same moment"
    if "test" in record and "pytest" in record["test"]:
        py = record["test"]["pytest"]
        assert py["outcomes"]["passed"] > 0 and ("tiers" in py or py["note"])


def _sample_record() -> dict:
    m = {"cores": 2, "cpu": "AMD EPYC", "memory_gib": 24.0, "load_average_at_start": [0.5, 0.4, 0.3],
         "load_average_at_end": [2.1, 1.9, 1.5]}
    return {
        "local": {"command": "make local", "exit_status": 0, "wall_seconds": 725.4, "git_commit": "abc1234",
                  "machine": m, "model": {"digest": "d", "build_seconds": 410.2, "parameters": 1346400},
                  "average": {"baseLength": 107.3, "prunedLength": 80.1, "baseAccuracy": 0.87,
                              "prunedAccuracy": 0.9, "aes": 0.4},
                  "paired": {"problems": 400, "meanLMin": 26.0, "gapClosed": 0.33,
                             "deltaAccuracy": {"mean": 0.03, "low": 0.0, "high": 0.06},
                             "lengthChange": {"mean": -0.25, "low": -0.26, "high": -0.24},
                             "mcnemar": {"p_value": 0.04}},
                  "tokens": {"saved": 10880}},
        "test": {"command": "make test", "exit_status": 0, "wall_seconds": 1650.0, "git_commit": "abc1234",
                 "after": "make local in the same clone", "machine": m,
                 "pytest": {"wall_seconds": 1400.0, "exit_status": 0, "outcomes": {"passed": 770, "skipped": 1},
                            "tiers": {"default": {"seconds": 390.0, "passed": 760},
                                      "vllm": {"seconds": 500.0, "passed": 10, "skipped": 1}}}},
    }


def test_rendered_sentences_carry_the_record_figures(tmp_path):
    rc = _module()
    rec = _sample_record()
    text = rc.render(rec)
    assert "12 min 05 s" in text["local"] and "410 s" in text["local"] and "-25.0 %" in text["local"]
    assert "load average 0.5 at its start and 2.1 at its end" in text["local"]
    assert "27 min 30 s" in text["test"] and "default 760 passed in 6 min 30 s" in text["test"]
    assert "770 passed, 1 skipped; by tier" in text["test"] and "vllm 10 passed, 1 skipped" in text["test"]
    totals_only = copy.deepcopy(rec)
    del totals_only["test"]["pytest"]["tiers"]  # a record without the split states the totals only
    assert rc.render(totals_only)["test"].endswith("pytest ran 23 min 20 s: 770 passed, 1 skipped.")
    failed = copy.deepcopy(rec)
    failed["test"]["exit_status"] = 2
    assert "FAILED (exit 2)" in rc.render(failed)["test"]
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- local-run:begin -->\nold\n<!-- local-run:end -->\nb\n"
                      "<!-- test-run:begin -->\n<!-- test-run:end -->\n")
    rc.write_readme(rec, readme)
    written = readme.read_text()
    assert rc.readme_block(written, "local") == text["local"] and rc.readme_block(written, "test") == text["test"]
    assert "old" not in written and written.startswith("a\n") and "\nb\n" in written
    json.dumps(rec)  # the record is plain JSON


def test_nothing_measured_says_so():
    rc = _module()
    text = rc.render({})
    assert "Not yet measured" in text["local"] and "not yet measured" in text["test"]


def test_local_run_paragraph_says_whether_its_build_is_the_benchmarked_one():
    """The CPU's name does not name a build (two AMD EPYCs built different weights from one
    recipe): the paragraph compares the weights' hash with the testbed benchmark's."""
    rc = _module()
    bench_sha = json.loads((REPO / "bench" / "results" / "testbed.json").read_text())["model"]["identity"]["weights_sha256"]
    rec = _sample_record()
    rec["local"]["model"].update(weights_sha256=bench_sha, cpu_capability="AVX512")
    assert f"(weights SHA-256 {bench_sha[:12]}), the one the benchmarks measured" in rc.render(rec)["local"]
    rec["local"]["model"]["weights_sha256"] = "f" * 64
    other = rc.render(rec)["local"]
    assert "ffffffffffff" in other and f"the benchmarks measured another build ({bench_sha[:12]})" in other
    del rec["local"]["model"]["weights_sha256"]  # a record from before builds were hashed
    assert rc.render(rec)["local"].endswith("these figures are for the build an AMD EPYC makes.")


def test_local_run_paragraph_gives_the_benchmarks_seed_spread():
    """One seed is not a result: the paragraph sets the benchmark's per-seed accuracy changes beside it."""
    rc = _module()
    data = json.loads((REPO / "bench" / "results" / "testbed.json").read_text())
    stats = data["stats"]["rows"]["o1-lam2"]
    seeds = [f"{100 * (s['accuracy'] - data['stats']['base']['accuracy']):+.1f}" for s in stats["per_seed"]]
    text = rc.render(_sample_record())["local"]
    assert f"Δacc {' / '.join(seeds)} points on its three seeds" in text
    assert f"{100 * stats['delta_accuracy']['mean']:+.1f} [" in text
