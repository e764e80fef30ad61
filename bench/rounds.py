"""Iterative pruning rounds on the long-thought testbed: does a second round prune further?

Round 1 is ``bench/testbed.py``'s O1-Pruner (λ = 2) run of each seed (its work directory is
shared, so round 1 is that very run, resumed, not retrained). Round 2 is what ``spec.rounds``
does (:mod:`o1pruner.rounds`, run by :func:`o1pruner.pipeline.run_local`): K fresh samples per
training problem from round 1's pruned model, new per-problem statistics, the same 96 optimizer
steps from round 1's model. Both rounds are evaluated against the ORIGINAL base on the same
held-out problems (600, ``--eval-count``; ``--train-count`` sets the training problems, and with
them how many epochs the steps make). The guard does not stop the benchmark (``guard.enabled: false``) so that both
rounds are always measured; each round's verdict under the default guard (1 point) and under a
5-point guard is computed from the same per-problem outcomes and reported.

Statistics as in the testbed benchmark (per-problem differences against the base averaged over
seeds, 95 % paired bootstrap CIs, the share of the redundancy gap closed, per-seed figures).

    python bench/rounds.py              # run (resumes) and write bench/results/rounds.*
    python bench/rounds.py --rerender   # rewrite the md / png from the committed JSON
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import testbed  # noqa: E402
from common import RESULTS, finish, start  # noqa: E402
from testbed import Config  # noqa: E402

log = logging.getLogger("bench.rounds")
NAME = "rounds"
TITLE = "Iterative pruning rounds on the long-thought testbed (O1-Pruner λ = 2, two rounds)"
ROUNDS = 2
GUARDS = (0.01, 0.05)  # maxAccuracyDrop: the default, and the one examples/local.yaml uses
TARGET_GAP = 0.90


def labels(rounds: int, lam: float = 2.0, reward: str | None = None) -> dict[str, str]:
    """Table labels of rounds 1..``rounds`` of the O1-Pruner λ = ``lam`` run (or its ``reward``'s)."""
    method = testbed.REWARD_LABELS.get(reward, reward) if reward else f"O1-Pruner λ={lam:g}"
    return {"round1": f"Round 1 (the testbed's {method} run)",
            **{f"round{n}": f"Round {n} (reference: round {n - 1}'s model)" for n in range(2, rounds + 1)}}


LABELS = labels(ROUNDS)


def run_of(cfg: Config) -> str:
    """Round 1's run of the testbed benchmark: ``cfg``'s length reward if it has one, else
    O1-Pruner at its one λ."""
    return cfg.rewards[0] if cfg.rewards else f"o1-lam{cfg.lambdas[0]:g}"


def round_job(cfg: Config, seed: int, rounds: int = ROUNDS) -> dict:
    """The testbed benchmark's job of ``seed`` for :func:`run_of` with ``spec.rounds`` (``rounds``, no early stop)."""
    run = run_of(cfg)
    _, training = testbed.methods(cfg)[run]
    probe = testbed.job(cfg, seed, f"testbed-s{seed}-{run}", cfg.root / f"seed-{seed}" / run, training)
    from o1pruner.pipeline import open_context, training_examples
    from o1pruner.spec import parse_job

    _, examples = training_examples(open_context(parse_job(probe), with_metrics=False))
    job = testbed.job(cfg, seed, f"testbed-s{seed}-{run}", cfg.root / f"seed-{seed}" / run,
                      {**training, "epochs": testbed._epochs_for(len(examples), cfg)})
    job["spec"]["rounds"] = {"count": rounds, "minLengthGain": 0.0}
    job["spec"]["evaluation"]["guard"] = {"enabled": False}
    job["spec"]["metrics"] = {"port": 19600 + seed}
    return job


def run_rounds(cfg: Config, seed: int, rounds: int = ROUNDS) -> dict:
    """Round 1 (resumed from bench/testbed.py) and the later rounds of one seed; returns the rounds report."""
    from o1pruner.pipeline import run_local
    from o1pruner.spec import parse_job

    report = run_local(parse_job(round_job(cfg, seed, rounds)), max_steps=cfg.steps)
    return {"rounds": report["rounds"], "stopReason": report["stopReason"]}


def collect(cfg: Config, rounds: int = ROUNDS) -> dict:
    """Per-problem outcomes of the base and of each round, every seed (testbed layout)."""
    from o1pruner.data import generate_longthought
    from o1pruner.pipeline import ROUNDS_REPORT, open_context
    from o1pruner.spec import parse_job

    problems = generate_longthought(cfg.eval_count, 1001, 2, 4, name="longthought-heldout")
    ids = [p.id for p in problems]
    out: dict = {"problem_ids": ids, "difficulty": [p.difficulty for p in problems],
                 "l_min": [p.meta["l_min"] for p in problems], "base": {}, "methods": {}, "train": {}, "reference": {}}
    for seed in cfg.seeds:
        ctx = open_context(parse_job(round_job(cfg, seed, rounds)), with_metrics=False)
        out["base"][str(seed)] = held = testbed._arrays(testbed._records(ctx.store, "base"), ids)
        ran = {r["round"]: r for r in ctx.base_store.read_json(f"{ROUNDS_REPORT}.json")["rounds"]}
        for n in range(1, rounds + 1):
            if n not in ran:  # the job stopped before this round: it holds its result, the last accepted model
                out.setdefault("stopped", {}).setdefault(f"round{n}", []).append(seed)
                out["methods"].setdefault(f"round{n}", {})[str(seed)] = held
                continue
            rctx = ctx.for_round(n)
            arrays = testbed._arrays(testbed._records(rctx.store, "pruned"), ids)
            out["methods"].setdefault(f"round{n}", {})[str(seed)] = arrays
            if ran[n]["accepted"]:
                held = arrays
            t = rctx.manifest.outputs("train")
            out["train"].setdefault(f"round{n}", {})[str(seed)] = {
                k: t.get(k) for k in ("examples", "correct_examples", "steps", "final_loss", "seconds")}
            s = rctx.manifest.outputs("sample")
            out["reference"].setdefault(f"round{n}", {})[str(seed)] = {
                k: s.get(k) for k in ("problems", "samples_total", "mean_length", "mean_accuracy", "seconds")}
    return out


def guard_verdicts(per_problem: dict) -> list[dict]:
    """Each seed's and round's verdict under each guard threshold of :data:`GUARDS`."""
    from o1pruner.guard import accuracy_guard

    out = []
    for run, by_seed in per_problem["methods"].items():
        for seed, arrays in by_seed.items():
            row = {"run": run, "seed": int(seed)}
            for drop in GUARDS:
                g = accuracy_guard(per_problem["base"][seed]["correct"], arrays["correct"], per_problem["difficulty"],
                                   max_drop=drop)
                row[f"{drop:g}"] = {"passed": g["passed"], "failed": g["failed"]}
            out.append(row)
    return out


def targets(stats: dict, guards: list[dict]) -> list[dict]:
    r2 = stats["rows"].get("round2")
    if r2 is None:
        return []
    passed = all(g["0.01"]["passed"] for g in guards if g["run"] == "round2")
    return [{"target": f"2 rounds close ≥ {100 * TARGET_GAP:.0f} % of the redundancy gap with the guard passing",
             "met": bool((r2["gap_closed"] or 0) >= TARGET_GAP and passed),
             "measured": f"gap closed {100 * (r2['gap_closed'] or 0):.1f} %; default guard (1 point) "
                         f"{'passed' if passed else 'failed'} on " + ", ".join(
                             f"seed {g['seed']}: {'pass' if g['0.01']['passed'] else 'fail'}"
                             for g in guards if g["run"] == "round2")}]


def guard_lines(result: dict) -> list[str]:
    rows = result.get("guards", [])
    if not rows:
        return []
    keys = [d for d in rows[0] if d[0].isdigit()]
    head = "| run | seed | " + " | ".join(f"maxAccuracyDrop {100 * float(d):g} points" for d in keys) + " |"
    out = ["## Accuracy guard per seed and round", "",
           "Each seed's round against the base, per difficulty and overall (`all`): a bucket fails when the lower "
           "bound of its 95 % CI of Δacc is below −maxAccuracyDrop (o1pruner.guard).", "",
           head, "|---|---|" + "---|" * len(keys)]
    for g in rows:
        cells = [("pass" if g[k]["passed"] else "fail: " + ", ".join(g[k]["failed"])) for k in keys]
        out.append(f"| {result['labels'][g['run']]} | {g['seed']} | " + " | ".join(cells) + " |")
    return out + [""]


def stopped_lines(result: dict) -> list[str]:
    """Which seeds' jobs stopped before a round (``spec.rounds``' early stop), if any."""
    stopped = result.get("stopped") or {}
    if not stopped:
        return []
    return ["Stopped early: " + "; ".join(
        f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} before {run.replace('round', 'round ')}"
        for run, seeds in stopped.items()) + " (a round that did not shorten its reference's answers ends the job, "
        "`spec.rounds.minLengthGain`); such a seed's later rounds are the model its job kept, its last accepted "
        "round's (or the base when none was).", ""]


def render_markdown(result: dict) -> str:
    text = testbed.render_markdown(result)
    return text.replace("## Targets", "\n".join(guard_lines(result) + stopped_lines(result)) + "\n## Targets", 1)


def render_results(data: dict, out_dir: Path | None = None) -> None:
    """Write rounds.md / rounds.png from the results JSON alone (bench/render.py calls it)."""
    testbed.render_results(data, out_dir)
    (out_dir or RESULTS).joinpath(f"{NAME}.md").write_text(render_markdown(data))


def docs_summary(data: dict) -> dict:
    """The docs/benchmarks.md row."""
    rows, base = data["stats"]["rows"], data["stats"]["base"]

    def cell(run: str) -> str:
        r = rows[run]
        d = r["delta_accuracy"]
        return (f"{run}: length {100 * r['length_change']['mean']:+.1f} %, gap closed {100 * (r['gap_closed'] or 0):.0f} %, "
                f"Δacc {100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]")

    missed = [t["target"] for t in data["targets"] if not t["met"]]
    return {
        "setup": f"long-thought testbed, {base['n']} held-out problems, {len(data['seed'])} seeds, 2 rounds of "
                 f"{data['config']['steps']} steps",
        "target": f"2 rounds close ≥ {100 * TARGET_GAP:.0f} % of the gap, guard passing",
        "measured": "; ".join(cell(r) for r in ("round1", "round2") if r in rows),
        "verdict": "met" if not missed else "missed: " + "; ".join(missed),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerender", action="store_true", help="only rewrite the md/png from the committed JSON")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(Config.seeds))
    ap.add_argument("--jobs", type=int, default=0, help="seeds side by side (default: one per core)")
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--lambda", dest="lam", type=float, default=2.0, help="O1-Pruner's λ (round 1: that testbed run)")
    ap.add_argument("--reward", default=None, choices=sorted(testbed.REWARD_LABELS),
                    help="another length reward instead of O1-Pruner's (round 1: bench/length_rewards.py's run)")
    ap.add_argument("--temperature", type=float, default=Config.temperature,
                    help="reference sampling temperature (the authors': 0.5)")
    ap.add_argument("--top-p", type=float, default=Config.top_p, help="reference sampling top-p (the authors': 0.8)")
    ap.add_argument("--tag", default=Config.tag, help="work directory tag (another setting: another tag)")
    ap.add_argument("--model", default=Config.model, help="the reference model (e.g. embedded:longthought-concise)")
    ap.add_argument("--train-count", type=int, default=Config.train_count,
                    help="training problems per seed (round 1: that testbed run's; 1536 makes the steps one epoch)")
    ap.add_argument("--eval-count", type=int, default=Config.eval_count, help="held-out problems (the guard's power)")
    args = ap.parse_args(argv)
    if args.rerender:
        render_results(json.loads((RESULTS / f"{NAME}.json").read_text()))
        return 0
    record = start(argv, script=__file__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = Config(seeds=tuple(args.seeds), lambdas=(args.lam,), baselines=False,
                 rewards=(args.reward,) if args.reward else (), temperature=args.temperature,
                 top_p=args.top_p, tag=args.tag, model=args.model, train_count=args.train_count,
                 eval_count=args.eval_count)
    testbed.run_seeds(partial(run_rounds, rounds=args.rounds), cfg, args.jobs)
    per_problem = collect(cfg, args.rounds)
    method = testbed.REWARD_LABELS[args.reward] if args.reward else f"O1-Pruner λ = {args.lam:g}"
    title = TITLE if (args.lam, args.rounds, args.reward) == (2.0, ROUNDS, None) else \
        TITLE.replace("O1-Pruner λ = 2, two rounds", f"{method}, {args.rounds} rounds")
    result = testbed.build_result(cfg, finish(record), name=NAME, title=title, per_problem=per_problem,
                                  labels=labels(args.rounds, args.lam, args.reward))
    result["sections"] = [["Rounds (each against the original base)", [f"round{n}" for n in range(1, args.rounds + 1)]]]
    result["setup_text"] += (" Rounds: round 2 resamples K per training problem from round 1's pruned model (the same "
                             "problems, seed and temperature), recomputes the per-problem statistics and trains from "
                             "round 1's model for the same number of steps; the guard does not stop the run.")
    result["guards"] = guard_verdicts(per_problem)
    result["stopped"] = per_problem.get("stopped", {})
    result["targets"] = targets(result["stats"], result["guards"])
    testbed.publish(result, render_results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
