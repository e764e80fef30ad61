"""The testbed's concise models: the rounds target measured on reference models that can reason without their redundancy.

On the testbed's model (``embedded:longthought-arith``) the decode-time oracle shows that no
structure closes 90 % of the redundancy gap at any accuracy (``bench/results/redundancy_oracle.md``):
its traces almost never leave every kind out, so the model cannot compute without them. Two
recipes change that (:data:`VARIANTS`, each with its folder under ``bench/results/``):

- ``longthought-concise`` (``concise/``) differs in one setting only: 10 % of its traces are
  written in a concise mode (the minimal steps, errors uncaught, no opening word of their own;
  :class:`o1pruner.testbed.traces.TraceStyle` ``p_concise``), as a pretrained long-thought model
  has concise reasoning among what it can write. Its greedy answers stay long (the redundant
  opening is still the most likely one). Its concise mode is less reliable than its verbose one.
- ``longthought-concise-exact`` (``concise-exact/``): the same, with the concise mode's traces
  the minimal traces themselves (``concise_error_rate`` 0), so leaving the redundancy out costs
  nothing the data could teach: the premise of length pruning, built in.

For each, this script runs the benchmarks that decide the rounds target, each with its own
script and statistics, and keeps their results in the variant's folder:

1. the decode-time oracle (``bench/redundancy_oracle.py``): is the target reachable at all, by
   one structure or by one structure per difficulty (:func:`redundancy_oracle.difficulty_mixture`);
2. round 1, 3 seeds × 600: the testbed benchmark's O1-Pruner row at λ = 2 (``bench/testbed.py
   --only o1-lam2``); on ``concise`` also λ = 5 and the Kimi k1.5 length penalty
   (``bench/length_rewards.py --only kimi-length``);
3. a second round from each (``bench/rounds.py --rounds 2``), with the accuracy guard per seed.

Each script writes the main benchmark's file names; this one keeps the main results aside while
it runs and puts them back after, so only the variant's folder changes.

    python bench/concise.py                          # every variant: run (resumes) and write
    python bench/concise.py --variant concise-exact  # one variant
    python bench/concise.py --rerender               # rewrite md / png / README from the JSONs
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import length_rewards  # noqa: E402
import redundancy_oracle  # noqa: E402
import rounds  # noqa: E402
import testbed  # noqa: E402
from common import REPO, RESULTS, machine_line  # noqa: E402

@dataclass(frozen=True)
class Variant:
    """One concise model's runs: its results folder under bench/results/, model, runs (name under
    the folder, the script's results name, its main, its arguments; the work tag is among them)
    and what each is."""

    name: str
    model: str
    runs: tuple[tuple[str, str, Callable, list[str]], ...]
    what: dict[str, str]
    title: str  # the README's "on the testbed's <title>"
    section: str  # docs/testbed.md's section about the model
    #: pairs of rounds runs on the same held-out problems whose accuracy is compared per problem
    contrasts: tuple[tuple[str, str], ...] = ()

    @property
    def out(self) -> Path:
        return RESULTS / self.name


MODEL = "embedded:longthought-concise"
TAG = "concise"
EXACT = "embedded:longthought-concise-exact"
VARIANTS = {
    "concise": Variant("concise", MODEL, (
        ("redundancy_oracle", "redundancy_oracle", redundancy_oracle.main, ["--model", MODEL, "--tag", "oracle-concise"]),
        ("testbed", "testbed", testbed.main, ["--model", MODEL, "--only", "o1-lam2", "--tag", TAG]),
        ("rounds", "rounds", rounds.main, ["--model", MODEL, "--tag", TAG, "--rounds", "2"]),
        ("testbed-lam5", "testbed", testbed.main, ["--model", MODEL, "--only", "o1-lam5", "--tag", TAG]),
        ("rounds-lam5", "rounds", rounds.main, ["--model", MODEL, "--tag", TAG, "--rounds", "2", "--lambda", "5"]),
        ("length_rewards-kimi", "length_rewards", length_rewards.main,
         ["--model", MODEL, "--only", "kimi-length", "--tag", TAG]),
        ("rounds-kimi", "rounds", rounds.main, ["--model", MODEL, "--tag", TAG, "--rounds", "2", "--reward", "kimi-length"]),
    ), {"redundancy_oracle": "decode-time oracle, 16 structures", "testbed": "O1-Pruner λ = 2 (round 1)",
        "rounds": "two rounds of λ = 2, guard per seed", "testbed-lam5": "O1-Pruner λ = 5 (round 1)",
        "rounds-lam5": "two rounds of λ = 5, guard per seed",
        "length_rewards-kimi": "Kimi k1.5 length penalty (round 1)", "rounds-kimi": "two rounds of it, guard per seed"},
        "concise model", "A model that can reason concisely"),
    "concise-exact": Variant("concise-exact", EXACT, (
        ("redundancy_oracle", "redundancy_oracle", redundancy_oracle.main,
         ["--model", EXACT, "--tag", "oracle-concise-exact"]),
        ("testbed", "testbed", testbed.main, ["--model", EXACT, "--only", "o1-lam2", "--tag", "concise-exact"]),
        ("rounds", "rounds", rounds.main, ["--model", EXACT, "--tag", "concise-exact", "--rounds", "2"]),
        # the same runs judged on 3000 held-out problems (the 600 above are its first 600)
        ("testbed-3000", "testbed", testbed.main,
         ["--model", EXACT, "--only", "o1-lam2", "--tag", "concise-exact-3000", "--eval-count", "3000"]),
        ("rounds-3000", "rounds", rounds.main,
         ["--model", EXACT, "--tag", "concise-exact-3000", "--rounds", "2", "--eval-count", "3000"]),
        # the paper's one epoch: the same 96 steps over 1536 training problems per seed (3072 examples)
        ("testbed-t1536", "testbed", testbed.main, ["--model", EXACT, "--only", "o1-lam2", "--tag", "concise-exact-t1536",
                                                    "--train-count", "1536", "--eval-count", "3000"]),
        ("rounds-t1536", "rounds", rounds.main, ["--model", EXACT, "--tag", "concise-exact-t1536", "--rounds", "2",
                                                 "--train-count", "1536", "--eval-count", "3000"]),
    ), {"redundancy_oracle": "decode-time oracle, 16 structures", "testbed": "O1-Pruner λ = 2 (round 1)",
        "rounds": "two rounds of λ = 2, guard per seed", "testbed-3000": "round 1 again, 3000 held-out problems",
        "rounds-3000": "two rounds again, 3000 held-out problems",
        "testbed-t1536": "round 1 as one epoch (1536 training problems), 3000 held-out",
        "rounds-t1536": "two rounds of one epoch each, 3000 held-out"},
        "exact-concise model", "A model whose concise reasoning is reliable", (("rounds-3000", "rounds-t1536"),)),
}
#: The default variant's runs (what the concise model's tests replay).
RUNS = VARIANTS["concise"].runs
OUT = VARIANTS["concise"].out
RENDER = {"redundancy_oracle": redundancy_oracle.render_results, "testbed": testbed.render_results,
          "rounds": rounds.render_results, "length_rewards": length_rewards.render_results}


def _files(name: str) -> list[str]:
    return [f"{name}{ext}" for ext in (".json", ".md", ".png", "_per_problem.json.gz")]


def run_one(name: str, source: str, main, argv: list[str], out: Path = OUT) -> None:
    """``main(argv)``, its results (``source``.*) moved to ``out`` as ``name``.* and the main
    benchmark's put back."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as keep:
        saved = [f for f in _files(source) if (RESULTS / f).exists()]
        for f in saved:
            shutil.copy2(RESULTS / f, Path(keep) / f)
        try:
            if main(argv):
                raise SystemExit(f"bench/{source}.py {' '.join(argv)} failed")
            for f_src, f_out in zip(_files(source), _files(name)):
                if (RESULTS / f_src).exists():
                    shutil.move(str(RESULTS / f_src), out / f_out)
            data = json.loads((out / f"{name}.json").read_text())
            data["per_problem_file"] = f"bench/results/{out.name}/{name}_per_problem.json.gz"
            (out / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        finally:
            for f in saved:
                shutil.copy2(Path(keep) / f, RESULTS / f)


def load(name: str, out: Path = OUT) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def load_all(variant: str = "concise") -> dict[str, dict]:
    """Every run's committed JSON of a variant, by its name under its folder (its runs' order)."""
    v = VARIANTS[variant]
    return {name: load(name, v.out) for name, *_ in v.runs}


def per_problem(data: dict) -> dict:
    """A run's committed per-problem outcomes (its JSON's ``per_problem_file``)."""
    return json.loads(gzip.decompress((REPO / data["per_problem_file"]).read_bytes()))


def oracle_guard(oracle: dict, run: str, max_drop: float = 0.01) -> dict:
    """The accuracy guard's verdict (:func:`o1pruner.guard.accuracy_guard`) on an oracle structure
    against the base, from the oracle's committed per-problem outcomes."""
    from o1pruner.guard import accuracy_guard

    outcomes = per_problem(oracle)
    return accuracy_guard(outcomes["base"]["0"]["correct"], outcomes["methods"][run]["0"]["correct"],
                          outcomes["difficulty"], max_drop=max_drop)


def mixture_line(oracle: dict) -> str:
    """The best structure-by-difficulty oracle (:func:`redundancy_oracle.difficulty_mixture`) that
    closes the rounds target's share of the gap, and the guard's verdict on it."""
    mix = redundancy_oracle.difficulty_mixture(per_problem(oracle), rounds.TARGET_GAP)
    head = (f"- Picking the structure by difficulty (the number of operations is in the prompt; every combination of "
            "the oracle's structures): ")
    if mix is None:
        return head + f"no combination closes ≥ {100 * rounds.TARGET_GAP:.0f} % of the gap."
    buckets = list(mix["structures"])
    guard = mix["guard"]
    return (head + f"the one that closes ≥ {100 * rounds.TARGET_GAP:.0f} % of the gap and loses the least on its worst "
            "difficulty writes " + ", ".join(f"*{oracle['labels'][mix['structures'][b]]}* at difficulty {b}"
                                              for b in buckets)
            + f": length {mix['mean_length']:.1f}, gap closed {100 * mix['gap_closed']:.0f} %, accuracy "
            f"{mix['accuracy']:.3f}, Δacc per difficulty " + " / ".join(
                f"{100 * mix['delta_accuracy'][b]:+.1f}" for b in buckets) + " points; the default guard "
            + ("accepts it." if guard["passed"] else
               "refuses it (" + "; ".join(f"{'overall' if b == 'all' else 'difficulty ' + b} {testbed._ci(guard['buckets'][b])}"
                                          for b in guard["failed"]) + " points)."))


def method_of(rnd: dict) -> str:
    """The length reward a rounds run trained with, as its lines name it."""
    rewards = rnd["config"].get("rewards") or ()
    return testbed.REWARD_LABELS[rewards[0]] if rewards else f"O1-Pruner λ = {rnd['config']['lambdas'][0]:g}"


def setting(data: dict) -> str:
    """How many passes over its training examples each round made of its optimizer steps."""
    n = testbed.epochs(data["config"])
    return f"{n:g} epoch{'s' if n != 1 else ''} per round"


def round_count(rnd: dict) -> int:
    """How many rounds a rounds run's table has (``round1`` … ``roundN``)."""
    return sum(k.startswith("round") for k in rnd["stats"]["rows"])


def round_lines(rnd: dict) -> list[str]:
    """One line per round of a rounds run: pooled and per-seed figures, the guard's verdicts."""
    base, out = rnd["stats"]["base"], []
    method = method_of(rnd)
    for n in range(1, 1 + round_count(rnd)):
        r = rnd["stats"]["rows"][f"round{n}"]
        seeds = r["per_seed"]
        verdicts = [g for g in rnd["guards"] if g["run"] == f"round{n}"]
        out.append(f"- {method}, round {n} ({len(rnd['seed'])} seeds × "
                   f"{base['n']}, {setting(rnd)}): length {100 * r['length_change']['mean']:+.1f} %, gap closed "
                   f"{100 * (r['gap_closed'] or 0):.1f} %, Δacc {testbed._ci(r['delta_accuracy'])} points; per seed, gap "
                   "closed " + " / ".join(f"{abs(100 * s['gap_closed']) if abs(s['gap_closed']) < 0.005 else 100 * s['gap_closed']:.0f} %"
                                          for s in seeds) + " and Δacc "
                   + " / ".join(f"{100 * (s['accuracy'] - base['accuracy']):+.1f}" for s in seeds)
                   + f" points; the default guard passes {sum(g['0.01']['passed'] for g in verdicts)} of "
                   f"{len(verdicts)} seeds, a 5-point guard {sum(g['0.05']['passed'] for g in verdicts)}.")
    return out + refusal_lines(rnd)


def refusal_lines(rnd: dict, max_drop: float = 0.01) -> list[str]:
    """The last round's seeds that the default guard refused on interval width alone (every
    failing bucket's point estimate of Δacc within ``max_drop``), with those buckets' figures
    (recomputed from the per-problem file)."""
    from o1pruner.guard import OVERALL, accuracy_guard

    last = f"round{round_count(rnd)}"
    refused = [g["seed"] for g in rnd["guards"] if g["run"] == last and not g["0.01"]["passed"]]
    if not refused:
        return []
    outcomes = per_problem(rnd)
    parts = []
    for seed in refused:
        g = accuracy_guard(outcomes["base"][str(seed)]["correct"], outcomes["methods"][last][str(seed)]["correct"],
                           outcomes["difficulty"], max_drop=max_drop)
        if any(g["buckets"][b]["deltaAccuracy"]["mean"] < -max_drop for b in g["failed"]):
            continue
        parts.append(f"seed {seed} " + ", ".join(
            f"{'overall' if b == OVERALL else 'at difficulty ' + b} (accuracy {g['buckets'][b]['baseAccuracy']:.3f} → "
            f"{g['buckets'][b]['prunedAccuracy']:.3f}, Δacc {testbed._ci(g['buckets'][b]['deltaAccuracy'])} points)"
            for b in g["failed"]))
    if not parts:
        return []
    return [f"  Round {last.removeprefix('round')}'s guard refused on the interval alone (the point estimate within "
            f"{100 * max_drop:g} point): " + "; ".join(parts) + "."]


def contrast_line(a: dict, b: dict) -> str:
    """Run ``b`` against run ``a`` round by round on the same held-out problems: the per-problem
    difference in correctness averaged over their seeds, with its paired bootstrap CI."""
    from o1pruner.paired import bootstrap_mean_ci

    pa, pb = per_problem(a), per_problem(b)
    if pa["problem_ids"] != pb["problem_ids"] or a["seed"] != b["seed"]:
        raise ValueError("a contrast needs the same held-out problems and seeds")
    parts = []
    for run in pa["methods"]:
        diff = np.mean([np.asarray(pb["methods"][run][str(s)]["correct"], float)
                        - np.asarray(pa["methods"][run][str(s)]["correct"], float) for s in a["seed"]], axis=0)
        parts.append(f"{run.replace('round', 'round ')} {testbed._ci(bootstrap_mean_ci(diff, seed=0).to_dict())}")
    return (f"- {setting(b).capitalize()} against {setting(a)}, the same {len(pa['problem_ids'])} problems and seeds "
            "(Δacc per problem averaged over the seeds, 95 % paired bootstrap): " + ", ".join(parts) + " points.")


def summary_lines(datas: dict[str, dict], variant: Variant) -> list[str]:
    """README.md's and docs/testbed.md's findings, every figure from the JSONs."""
    oracle = datas["redundancy_oracle"]
    base, rows = oracle["stats"]["base"], oracle["stats"]["rows"]
    reach = [r for r in rows if r in oracle["left_out"] and (rows[r]["gap_closed"] or 0) >= rounds.TARGET_GAP]
    out = [f"- The model: greedy accuracy {base['accuracy']:.3f}, mean length {base['mean_length']:.1f} tokens "
           f"({base['length_over_l_min']:.2f}× mean L_min {base['mean_l_min']:.1f}), {100 * base['truncated']:.1f} % of "
           "answers at the cap (the testbed's bounds: accuracy 0.6–0.9, ≥ 2.5× L_min, < 1 %)."]
    if reach:
        best = max(reach, key=lambda r: rows[r]["accuracy"])
        b, d = rows[best], rows[best]["delta_accuracy"]
        verdict = oracle_guard(oracle, best)
        out.append(f"- The oracle: {len(reach)} of {len(oracle['left_out']) - 1} structures close ≥ "
                   f"{100 * rounds.TARGET_GAP:.0f} % of the gap; the most accurate, *{oracle['labels'][best]}*: length "
                   f"{b['mean_length']:.1f}, gap closed {100 * b['gap_closed']:.0f} %, accuracy {b['accuracy']:.3f}, Δacc "
                   f"{testbed._ci(d)} points. The default accuracy guard (1 point, per difficulty and overall) would "
                   f"{'accept' if verdict['passed'] else 'refuse'} it"
                   + ("" if verdict["passed"] else f" (failing: {', '.join(verdict['failed'])})") + ".")
    else:
        out.append(f"- The oracle: no structure closes ≥ {100 * rounds.TARGET_GAP:.0f} % of the gap.")
    out.append(mixture_line(oracle))
    for name, data in datas.items():
        if name.startswith("rounds"):
            out += round_lines(data)
            if data.get("stopped"):
                out.append(f"- {method_of(data)}: " + rounds.stopped_lines(data)[0])
    for a, b in variant.contrasts:
        out.append(contrast_line(datas[a], datas[b]))
    for data in datas.values():
        if data["benchmark"] == "rounds" and method_of(data) == "O1-Pruner λ = 2" and data.get("targets"):
            target = data["targets"][0]
            out.append(f"- The rounds target at λ = 2, {data['stats']['base']['n']} held-out problems, {setting(data)} "
                       f"({target['target']}): {'met' if target['met'] else 'MISSED'} — {target['measured']}.")
    return out


def render_readme(datas: dict[str, dict], variant: Variant = VARIANTS["concise"]) -> str:
    oracle = datas["redundancy_oracle"]
    build = oracle["model"]["build"]
    same = len({d["model"]["identity"]["weights_sha256"] for d in datas.values()}) == 1
    lines = [f"# The rounds target on the testbed's {variant.title} (`{variant.model}`)", "",
             f"Written by `python bench/concise.py --variant {variant.name}` (re-render: `python bench/concise.py "
             f"--rerender`); why this model and how it differs from the testbed's, in the script's docstring and in "
             f"`docs/testbed.md`, *{variant.section}*. Build: recipe `{oracle['model']['digest']}`, {build['cpu']} "
             f"({build['cpu_capability']}), final build loss {build['final_loss']}, weights "
             f"`{build['weights_sha256'][:12]}`; {'every run used this build' if same else 'the runs used different builds'}.",
             "", "## Findings", "", *summary_lines(datas, variant), "",
             "## The runs", "",
             "| results | what | command | commit | wall time | 1-min load at start / end |",
             "|---|---|---|---|---|---|"]
    for name, data in datas.items():
        m = data["machine"]
        lines.append(f"| [{name}.md]({name}.md) | {variant.what[name]} | `{data['command']}` | {data['git_commit']}"
                     f"{' (uncommitted changes)' if data.get('git_dirty') else ''} | {data['wall_seconds']:.0f} s | "
                     f"{m['load_average_at_start'][0]:.1f} / {m['load_average_at_end'][0]:.1f} |")
    corrections = [f"- `{name}.json`: {c}." for name, data in datas.items() for c in data.get("corrections", [])]
    lines += ["", *corrections] if corrections else []
    lines += ["", "A run whose wall time is a few seconds collected finished work directories (the scripts resume): "
              "its figures are those runs', its `train` and `reference` records hold their times.", "",
              machine_line(oracle["machine"]), ""]
    return "\n".join(lines)


DOCS = redundancy_oracle.DOCS
DOCS_END = "<!-- END generated by bench/concise.py -->"


def docs_begin(variant: Variant) -> str:
    return (f"<!-- BEGIN generated by `python bench/concise.py --rerender` from bench/results/{variant.name}/; "
            "do not edit by hand -->")


def docs_text(current: str, datas: dict[str, dict], variant: Variant = VARIANTS["concise"]) -> str:
    """docs/testbed.md with a variant's findings (:func:`summary_lines`) rendered from its JSONs."""
    head, rest = current.split(docs_begin(variant), 1)
    _, tail = rest.split(DOCS_END, 1)
    return head + "\n".join([docs_begin(variant), *summary_lines(datas, variant), DOCS_END]) + tail


def rerender(out: Path | None = None, variant: str = "concise") -> None:
    """Write the md / png of each JSON of a variant, and README.md, into ``out`` (default: its
    folder, and then docs/testbed.md's findings too)."""
    v = VARIANTS[variant]
    datas = load_all(variant)
    target = out or v.out
    target.mkdir(parents=True, exist_ok=True)
    for name, source, *_ in v.runs:
        with tempfile.TemporaryDirectory() as tmp:
            RENDER[source](datas[name], Path(tmp))
            md = (Path(tmp) / f"{source}.md").read_text().replace(f"({source}.png)", f"({name}.png)")
            (target / f"{name}.md").write_text(md.replace(f"`python bench/{source}.py --rerender`",
                                                         "`python bench/concise.py --rerender`"))
            shutil.copy2(Path(tmp) / f"{source}.png", target / f"{name}.png")
    (target / "README.md").write_text(render_readme(datas, v))
    if out is None:
        DOCS.write_text(docs_text(DOCS.read_text(), datas, v))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerender", action="store_true", help="only rewrite the md / png / README from the JSONs")
    ap.add_argument("--variant", choices=sorted(VARIANTS), action="append",
                    help="run only this model's benchmarks (repeatable; default: every variant)")
    args = ap.parse_args(argv)
    chosen = args.variant or list(VARIANTS)
    for name in chosen:
        v = VARIANTS[name]
        if not args.rerender:
            for run, source, fn, run_argv in v.runs:
                run_one(run, source, fn, run_argv, v.out)
        rerender(variant=name)
        print((v.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
