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

from common import Timer, pyplot, write_results  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--methods", default=",".join(m[1] for m in METHODS),
                     help="trained methods to include (a partial table is marked as such)")
    known, rest = pre.parse_known_args(argv)
    wanted = known.methods.split(",")
    setup, _ = setup_from_args(rest, __doc__)
    wall = Timer()
    shared, timings = shared_reference(setup)
    base = shared.store.read_json("eval/base/summary.json")
    fast = shared.store.read_json("eval/fast-prompt/summary.json")
    ref = shared.manifest.outputs("sample")
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

    o1 = trained.get("o1-lam2") or rows[-1]
    best = max((r for r in rows if r["aes"] is not None), key=lambda r: r["aes"], default=None)
    length_ok = o1["length_change"] <= LENGTH_TARGET
    acc_ok = o1["accuracy"] >= rows[0]["accuracy"]
    aes_ok = best is o1

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

    base_acc = rows[0]["accuracy"]
    length_msg = "met" if length_ok else f"missed by {(o1['length_change'] - LENGTH_TARGET) * 100:.1f} points"
    acc_msg = "met" if acc_ok else f"missed by {base_acc - o1['accuracy']:.3f}"
    aes_msg = "met" if aes_ok else "missed (best: " + (best["method"] if best else "none") + ")"
    if missing:
        aes_msg += f" among the rows measured; NOT RUN: {', '.join(missing)}"
    verdict = (
        f"Targets for O1-Pruner: mean length -40 % or better -> {o1['length_change']:+.1%} ({length_msg}); "
        f"accuracy >= baseline -> {o1['accuracy']:.3f} vs {base_acc:.3f} ({acc_msg}); "
        f"best AES of the five -> {aes_msg}."
    )
    notes = (
        verdict + "\n\n" + setup_text(setup)
        + f"\n\nReference samples: {ref.get('samples_total')} ({ref.get('problems')} problems), mean length "
        f"{ref.get('mean_length', 0):.1f}, accuracy {ref.get('mean_accuracy', 0):.3f}. "
        f"Held-out accuracy is over {rows[0]['n']} problems, so one problem is {1 / rows[0]['n']:.3f} of accuracy."
    )
    write_results(
        "table2",
        "Paper Table 2 at small scale (SmolLM2-135M-Instruct, arithmetic)",
        rows,
        [("method", "method"), ("accuracy", "accuracy"), ("accuracy_change", "Δacc"), ("mean_length", "mean_length"),
         ("length_ratio", "length_ratio"), ("aes", "aes"), ("truncated_fraction", "truncated")],
        {"seed": setup.seed, "wall_seconds": wall.seconds(), "setup": setup.__dict__, "reference": ref,
         "timings": timings, "training": infos,
         "methods_not_run": missing,
         "targets": {"length_change": LENGTH_TARGET, "length_met": length_ok, "accuracy_met": acc_ok, "best_aes_met": aes_ok}},
        plot,
        notes,
    )
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
