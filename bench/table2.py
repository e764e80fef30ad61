"""Benchmark 1: paper Table 2 at small scale.

SmolLM2-135M-Instruct (embedded), built-in arithmetic word problems (train and a disjoint
held-out eval set). Five methods in one run, same budget, same evaluation (greedy):
Baseline (the model as is), Fast-solving prompt (the authors' instruction added to the system
prompt), SFT (two shortest correct samples per problem), DPO (shortest correct over longest),
O1-Pruner (lambda = 2). Accuracy, mean length and AES (paper Eq. 8, alpha=1, beta=3, gamma=5, as
stated in the paper) for each. Reference samples are shared by every method (and by the lambda
ablation, ``bench/lambda_ablation.py``).

    python bench/table2.py [--train-count 64 --eval-count 96 --k 8 --epochs 2 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Timer, git_commit, pyplot, write_results  # noqa: E402
from pruning_runs import Setup, row, shared_reference, trained_method  # noqa: E402

METHODS = [  # (row name, run name, training overrides)
    ("SFT", "sft", {"method": "sft"}),
    ("DPO", "dpo", {"method": "dpo"}),
    ("O1-Pruner (lambda=2)", "o1-lam2", {"method": "o1-pruner", "lambda": 2.0}),  # = lambda_ablation run_name(2)
]
LENGTH_TARGET = -0.40
log = logging.getLogger("bench.table2")


def setup_from_args(argv: list[str] | None, doc: str) -> tuple[Setup, argparse.Namespace]:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(Setup):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "botocore", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return Setup(**{f.name: getattr(args, f.name) for f in fields(Setup)}), args


def setup_text(s: Setup) -> str:
    return (
        f"Data: built-in arithmetic, {s.min_steps}-{s.max_steps} steps; {s.train_count} training problems "
        f"(seed 1) x K={s.k} reference samples (temperature 0.7, top-p 0.9, max {s.max_tokens} tokens), "
        f"{s.eval_count} held-out problems (seed 1001), greedy evaluation, max {s.max_tokens} tokens, "
        f"reference samples from the `{s.sample_backend}` backend, evaluations with `{s.eval_backend}`. Training (every method): {s.epochs} epochs, "
        f"batch {s.batch_size} (micro {s.micro_batch_size}), AdamW lr {s.learning_rate:g}, cosine with 10 % "
        f"warm-up, cutoff {s.max_length} tokens, fp32 on CPU. O1-Pruner and SFT keep 2 samples per problem; "
        "DPO pairs each of the 2 shortest correct samples with the longest. AES: paper Eq. 8 as stated "
        "(alpha=1, beta=3, gamma=5; a drop in accuracy costs gamma)."
    )


def missed_target_reasons(rows: list[dict], o1: dict, best: dict | None, setup: Setup, ref: dict, infos: dict,
                          targets: dict) -> list[str]:
    """Why each missed target was missed, from the run's own numbers (the issue asks for how
    much *and why*); ``o1`` and ``best`` are the O1-Pruner row and the best-AES row."""
    base = rows[0]
    o1_info = infos.get("o1-lam2", {})
    reasons = []
    if not targets.get("length_met", True):
        reasons.append(
            f"Why the length target was missed: the baseline's length is censored by the {setup.max_tokens}-token "
            f"cap (chosen so the five methods fit in ~40 minutes of this CPU). {base['truncated_fraction']:.0%} of its held-out answers stop at the cap, so its mean "
            f"{base['mean_length']:.1f} understates what it would write uncapped, and every method's length "
            f"reduction is understated with it (the paper samples up to 8192 tokens, so nothing is cut there); "
            f"O1-Pruner's answers still hit the cap {o1.get('truncated_fraction', 0):.0%} of the time. The budget is "
            f"also small: {o1_info.get('train_steps')} optimizer steps on {o1_info.get('train_examples')} examples "
            f"(paper: one epoch over ~5K MATH problems x 2 samples)."
        )
    if not targets.get("best_aes_met", True) and best is not None:
        n = base["n"]
        solved = round(base["accuracy"] * n)
        examples = o1_info.get("train_examples") or 0
        if "correct_examples" in o1_info:
            correct = f"{o1_info['correct_examples']} of them correct"
        else:
            correct = (f"about {examples * ref.get('mean_accuracy', 0):.0f} of them correct at the reference "
                       f"accuracy {ref.get('mean_accuracy', 0):.3f}")
        why_best = ""
        if best["method"] == "SFT":
            why_best = (f" SFT trains only on correct samples ({infos.get('sft', {}).get('train_examples')}: the shortest "
                        f"correct ones of each problem), while O1-Pruner trains on {setup_kept(setup)} random samples "
                        f"per problem as the authors do ({examples}, {correct}), so its accuracy term "
                        f"lambda(A - mean A_ref) has few correct examples to reinforce.")
        reasons.append(
            f"Why the best-AES target was missed: the base model solves {solved}/{n} held-out problems, so one "
            f"problem more moves ΔAcc by {1 / max(solved, 1):.2f} and AES by beta/{solved} = {3 / max(solved, 1):.2f} "
            f"(gamma/{solved} = {5 / max(solved, 1):.2f} when lost), while the whole length term stays below 1: at this "
            f"accuracy AES ranks methods by a handful of problems. {best['method']} solved "
            f"{round(best['accuracy'] * n)}, O1-Pruner {round(o1['accuracy'] * n)}.{why_best} In the paper the base "
            f"model solves ~75 % of MATH, where the same AES takes a far larger gain of accuracy."
        )
    return reasons


def setup_kept(setup: Setup) -> int:
    """Samples kept per problem as training examples (``sampling.samplesPerProblem`` of the job)."""
    return setup.job("probe", Path("."))["spec"]["sampling"]["samplesPerProblem"]


def report(rows: list[dict], setup: Setup, ref: dict, infos: dict, missing: list[str], meta: dict) -> dict:
    """Targets, notes, table and plot of one Table 2 run (fresh or re-rendered from its JSON)."""
    by_title = {r["method"]: r for r in rows}
    o1 = by_title.get(METHODS[-1][0]) or rows[-1]
    best = max((r for r in rows if r["aes"] is not None), key=lambda r: r["aes"], default=None)
    base_acc = rows[0]["accuracy"]
    targets = {"length_change": LENGTH_TARGET, "length_met": o1["length_change"] <= LENGTH_TARGET,
               "accuracy_met": o1["accuracy"] >= base_acc, "best_aes_met": best is o1}

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        names = [r["method"].replace(" (", "\n(") for r in rows]
        colors = ["#999999", "#bbbbbb"] + [{"SFT": "#8fbf8f", "DPO": "#e0a060"}.get(r["method"], "#2b7bba") for r in rows[2:]]
        for ax, key, title in zip(axes, ["accuracy", "mean_length", "aes"],
                                  ["accuracy (held-out)", "mean length (tokens)", "AES (higher is better)"]):
            vals = [r[key] if r[key] is not None else 0.0 for r in rows]
            bars = ax.bar(range(len(rows)), vals, color=colors[: len(rows)])
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}" if key != "mean_length" else f"{v:.0f}",
                        ha="center", va="bottom" if v >= 0 else "top", fontsize=8)
            ax.set_xticks(range(len(rows)), names, fontsize=7)
            ax.set_title(title)
            ax.axhline(0, color="black", lw=0.5)
        fig.suptitle("O1-Pruner Table 2 at small scale: SmolLM2-135M-Instruct on arithmetic")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    length_msg = ("met" if targets["length_met"]
                  else f"missed by {(o1['length_change'] - LENGTH_TARGET) * 100:.1f} points")
    acc_msg = "met" if targets["accuracy_met"] else f"missed by {base_acc - o1['accuracy']:.3f}"
    aes_msg = "met" if targets["best_aes_met"] else "missed (best: " + (best["method"] if best else "none") + ")"
    if missing:
        aes_msg += f" among the rows measured; NOT RUN: {', '.join(missing)}"
    verdict = (
        f"Targets for O1-Pruner: mean length -40 % or better -> {o1['length_change']:+.1%} ({length_msg}); "
        f"accuracy >= baseline -> {o1['accuracy']:.3f} vs {base_acc:.3f} ({acc_msg}); "
        f"best AES of the five -> {aes_msg}."
    )
    reasons = missed_target_reasons(rows, o1, best, setup, ref, infos, targets)
    notes = "\n\n".join([
        verdict, *reasons, setup_text(setup),
        f"Reference samples: {ref.get('samples_total')} ({ref.get('problems')} problems), mean length "
        f"{ref.get('mean_length', 0):.1f}, accuracy {ref.get('mean_accuracy', 0):.3f}. "
        f"Held-out accuracy is over {rows[0]['n']} problems, so one problem is {1 / rows[0]['n']:.3f} of accuracy.",
    ])
    write_results(
        "table2",
        "Paper Table 2 at small scale (SmolLM2-135M-Instruct, arithmetic)",
        rows,
        [("method", "method"), ("accuracy", "accuracy"), ("accuracy_change", "Δacc"), ("mean_length", "mean_length"),
         ("length_ratio", "length_ratio"), ("aes", "aes"), ("truncated_fraction", "truncated")],
        {**meta, "setup": setup.__dict__, "reference": ref, "training": infos, "methods_not_run": missing,
         "targets": targets},
        plot,
        notes,
    )
    return targets


def rerender(path: Path = RESULTS / "table2.json") -> dict:
    """Rewrite table2.md/.png from the committed JSON (same numbers, machine, command and wall
    time) after a change to how results are explained; no model is run."""
    data = json.loads(path.read_text())
    meta = {k: data[k] for k in ("machine", "command", "git_commit", "seed", "wall_seconds", "timings") if k in data}
    meta["rerendered_at_commit"] = git_commit()
    return report(data["rows"], Setup(**data["setup"]), data["reference"], data["training"],
                  data.get("methods_not_run", []), meta)


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--methods", default=",".join(m[1] for m in METHODS),
                     help="trained methods to include (a partial table is marked as such)")
    pre.add_argument("--rerender", action="store_true",
                     help="rewrite the markdown and PNG from bench/results/table2.json without running anything")
    known, rest = pre.parse_known_args(argv)
    if known.rerender:
        print(json.dumps(rerender(), indent=2))
        return 0
    wanted = known.methods.split(",")
    setup, _ = setup_from_args(rest, __doc__)
    wall = Timer()
    shared, timings = shared_reference(setup)
    base = shared.store.read_json("eval/base/summary.json")
    fast = shared.store.read_json("eval/fast-prompt/summary.json")
    rows = [
        row("Baseline", base, base, shared.store, "base"),
        row("Fast-solving prompt", fast, base, shared.store, "fast-prompt"),
    ]
    infos, trained = {}, {}
    methods = [m for m in METHODS if m[1] in wanted]
    for title, name, training in sorted(methods, key=lambda m: m[1] != "o1-lam2"):  # O1-Pruner first
        summary, info = trained_method(setup, shared, name, training)
        infos[name] = info
        trained[name] = row(title, summary, base, None, None, train_steps=info.get("train_steps"),
                            train_examples=info.get("train_examples"), truncated_fraction=info.get("truncated_fraction"))
        log.info("%s: %s", title, trained[name])
    rows += [trained[name] for _, name, _ in methods]
    missing = [title for title, name, _ in METHODS if name not in wanted]
    report(rows, setup, shared.manifest.outputs("sample"), infos, missing,
           {"seed": setup.seed, "wall_seconds": wall.seconds(), "timings": timings})
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
