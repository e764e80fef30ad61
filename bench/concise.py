"""The testbed's concise model: the rounds target measured on a reference model that can reason without its redundancy.

On the testbed's model (``embedded:longthought-arith``) the decode-time oracle shows that no
structure closes 90 % of the redundancy gap at any accuracy (``bench/results/redundancy_oracle.md``):
its traces almost never leave every kind out, so the model cannot compute without them. The
recipe ``longthought-concise`` differs in one setting only: 10 % of its traces are written in a
concise mode (the minimal steps, errors uncaught, no opening word of their own;
:class:`o1pruner.testbed.traces.TraceStyle` ``p_concise``), as a pretrained long-thought model
has concise reasoning among what it can write. Its greedy answers stay long (the redundant
opening is still the most likely one).

This script runs, on that model, the three benchmarks that decide the rounds target, each with
its own script and statistics, and keeps their results under ``bench/results/concise/``:

1. the decode-time oracle (``bench/redundancy_oracle.py``): is the target reachable at all;
2. the testbed benchmark's O1-Pruner λ = 2 row, 3 seeds × 600 (``bench/testbed.py --only o1-lam2``);
3. a second round from it (``bench/rounds.py --rounds 2``), with the accuracy guard per seed.

Each script writes the main benchmark's file names; this one keeps the main results aside while
it runs and puts them back after, so only ``bench/results/concise/`` changes.

    python bench/concise.py              # run (resumes) and write bench/results/concise/
    python bench/concise.py --rerender   # rewrite its md / png files and README.md from the JSONs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redundancy_oracle  # noqa: E402
import rounds  # noqa: E402
import testbed  # noqa: E402
from common import RESULTS, machine_line  # noqa: E402

MODEL = "embedded:longthought-concise"
OUT = RESULTS / "concise"
TAG = "concise"
#: (results name, the script's main, its arguments)
RUNS = (
    ("redundancy_oracle", redundancy_oracle.main, ["--model", MODEL, "--tag", "oracle-concise"]),
    ("testbed", testbed.main, ["--model", MODEL, "--only", "o1-lam2", "--tag", TAG]),
    ("rounds", rounds.main, ["--model", MODEL, "--tag", TAG, "--rounds", "2"]),
)
RENDER = {"redundancy_oracle": redundancy_oracle.render_results, "testbed": testbed.render_results,
          "rounds": rounds.render_results}


def _files(name: str) -> list[str]:
    return [f"{name}{ext}" for ext in (".json", ".md", ".png", "_per_problem.json.gz")]


def run_one(name: str, main, argv: list[str]) -> None:
    """``main(argv)``, its results moved to :data:`OUT` and the main benchmark's put back."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as keep:
        saved = [f for f in _files(name) if (RESULTS / f).exists()]
        for f in saved:
            shutil.copy2(RESULTS / f, Path(keep) / f)
        docs = redundancy_oracle.DOCS.read_text()
        try:
            if main(argv):
                raise SystemExit(f"bench/{name}.py {' '.join(argv)} failed")
            for f in _files(name):
                if (RESULTS / f).exists():
                    shutil.move(str(RESULTS / f), OUT / f)
            data = json.loads((OUT / f"{name}.json").read_text())
            data["per_problem_file"] = f"bench/results/concise/{name}_per_problem.json.gz"
            (OUT / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        finally:
            for f in saved:
                shutil.copy2(Path(keep) / f, RESULTS / f)
            redundancy_oracle.DOCS.write_text(docs)


def load(name: str) -> dict:
    return json.loads((OUT / f"{name}.json").read_text())


def summary_lines(oracle: dict, tb: dict, rnd: dict) -> list[str]:
    """README.md's findings, every figure from the three JSONs."""
    base, rows = oracle["stats"]["base"], oracle["stats"]["rows"]
    reach = [r for r in rows if r in oracle["left_out"] and (rows[r]["gap_closed"] or 0) >= rounds.TARGET_GAP
             and rows[r]["delta_accuracy"]["low"] >= -0.01]
    best = max(reach, key=lambda r: rows[r]["accuracy"]) if reach else None
    r1, r2 = rnd["stats"]["rows"]["round1"], rnd["stats"]["rows"]["round2"]
    target = rnd["targets"][0]
    out = [f"- The model: greedy accuracy {base['accuracy']:.3f}, mean length {base['mean_length']:.1f} tokens "
           f"({base['length_over_l_min']:.2f}× mean L_min {base['mean_l_min']:.1f}), {100 * base['truncated']:.1f} % of "
           "answers at the cap (the testbed's bounds: accuracy 0.6–0.9, ≥ 2.5× L_min, < 1 %)."]
    if best:
        b = rows[best]
        out.append(f"- The oracle: {len(reach)} of {len(oracle['left_out']) - 1} structures close ≥ "
                   f"{100 * rounds.TARGET_GAP:.0f} % of the gap with Δacc CI low ≥ −1 point; the most accurate, "
                   f"*{oracle['labels'][best]}*: length {b['mean_length']:.1f}, gap closed {100 * b['gap_closed']:.0f} %, "
                   f"Δacc {100 * b['delta_accuracy']['mean']:+.1f} [{100 * b['delta_accuracy']['low']:+.1f}, "
                   f"{100 * b['delta_accuracy']['high']:+.1f}] points. On this model the target is reachable.")
    else:
        out.append(f"- The oracle: no structure closes ≥ {100 * rounds.TARGET_GAP:.0f} % of the gap with Δacc CI low "
                   "≥ −1 point.")
    for label, r in (("Round 1", r1), ("Round 2", r2)):
        d = r["delta_accuracy"]
        out.append(f"- O1-Pruner λ = 2, {label.lower()} ({len(rnd['seed'])} seeds × {rnd['stats']['base']['n']}): length "
                   f"{100 * r['length_change']['mean']:+.1f} %, gap closed {100 * (r['gap_closed'] or 0):.1f} %, Δacc "
                   f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] points; per seed, gap closed "
                   + " / ".join(f"{100 * s['gap_closed']:.0f} %" for s in r["per_seed"]) + ".")
    out.append(f"- The rounds target ({target['target']}): {'met' if target['met'] else 'MISSED'} — {target['measured']}.")
    return out


def render_readme(oracle: dict, tb: dict, rnd: dict) -> str:
    lines = ["# The rounds target on the testbed's concise model (`embedded:longthought-concise`)", "",
             "Written by `python bench/concise.py` (re-render: `python bench/concise.py --rerender`); why this model "
             "and how it differs from the testbed's, in the script's docstring and in `docs/testbed.md`, *A model "
             "that can reason concisely*. Build: recipe "
             f"`{oracle['model']['digest']}`, {oracle['model']['build']['cpu']} ({oracle['model']['build']['cpu_capability']}), "
             f"final build loss {oracle['model']['build']['final_loss']}, weights "
             f"`{oracle['model']['build']['weights_sha256'][:12]}`; the three runs used the same build.", "",
             "## Findings", "", *summary_lines(oracle, tb, rnd), "",
             "## The runs", "",
             "| results | what | command | commit | wall time | 1-min load at start / end |",
             "|---|---|---|---|---|---|"]
    what = {"redundancy_oracle": "decode-time oracle, 16 structures", "testbed": "O1-Pruner λ = 2 (round 1)",
            "rounds": "two rounds, guard per seed"}
    for name, data in (("redundancy_oracle", oracle), ("testbed", tb), ("rounds", rnd)):
        m = data["machine"]
        lines.append(f"| [{name}.md]({name}.md) | {what[name]} | `{data['command']}` | {data['git_commit']}"
                     f"{' (uncommitted changes)' if data.get('git_dirty') else ''} | {data['wall_seconds']:.0f} s | "
                     f"{m['load_average_at_start'][0]:.1f} / {m['load_average_at_end'][0]:.1f} |")
    lines += ["", machine_line(oracle["machine"]), ""]
    return "\n".join(lines)


DOCS = redundancy_oracle.DOCS
DOCS_BEGIN = "<!-- BEGIN generated by `python bench/concise.py --rerender` from bench/results/concise/; do not edit by hand -->"
DOCS_END = "<!-- END generated by bench/concise.py -->"


def docs_text(current: str, oracle: dict, tb: dict, rnd: dict) -> str:
    """docs/testbed.md with its concise-model findings (:func:`summary_lines`) rendered from the JSONs."""
    head, rest = current.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    return head + "\n".join([DOCS_BEGIN, *summary_lines(oracle, tb, rnd), DOCS_END]) + tail


def rerender(out: Path = OUT) -> None:
    """Write the md / png of each JSON in :data:`OUT`, and README.md, into ``out``."""
    datas = {name: load(name) for name, _, _ in RUNS}
    for name, data in datas.items():
        RENDER[name](data, out)
        md = out / f"{name}.md"
        md.write_text(md.read_text().replace(f"`python bench/{name}.py --rerender`", "`python bench/concise.py --rerender`"))
    three = (datas["redundancy_oracle"], datas["testbed"], datas["rounds"])
    (out / "README.md").write_text(render_readme(*three))
    if out == OUT:
        DOCS.write_text(docs_text(DOCS.read_text(), *three))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerender", action="store_true", help="only rewrite the md / png / README from the JSONs")
    args = ap.parse_args(argv)
    if not args.rerender:
        for name, fn, run_argv in RUNS:
            run_one(name, fn, run_argv)
    rerender()
    print((OUT / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
