"""Benchmark 2: paper Table 3, the lambda ablation (lambda in {0, 1, 2, 5}) on Table 2's setup.

Same shared reference samples, evaluations and training budget as ``bench/table2.py``; the
lambda = 2 run *is* Table 2's O1-Pruner run (reused, not retrained). lambda weighs accuracy
against length in the reward (paper Eq. 4): R = L_ref/L - 1 + lambda (A - A_ref).

    python bench/lambda_ablation.py [same options as table2.py]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Timer, pyplot, write_results  # noqa: E402
from pruning_runs import row, shared_reference, trained_method  # noqa: E402
from table2 import setup_from_args, setup_text  # noqa: E402

LAMBDAS = [0.0, 1.0, 2.0, 5.0]
PAPER = {0.0: (74.8, 527, 0.49), 1.0: (76.0, 532, 0.54), 2.0: (76.8, 554, 0.55), 5.0: (76.3, 656, 0.45)}


def run_name(lam: float) -> str:
    return f"o1-lam{lam:g}"


def main(argv: list[str] | None = None) -> int:
    setup, _ = setup_from_args(argv, __doc__)
    wall = Timer()
    shared, _ = shared_reference(setup)
    base = shared.store.read_json("eval/base/summary.json")
    rows = [row("Baseline", base, base, shared.store, "base")]
    for lam in LAMBDAS:
        summary, info = trained_method(setup, shared, run_name(lam), {"method": "o1-pruner", "lambda": lam})
        acc, length, aes_ = PAPER[lam]
        rows.append(row(f"O1-Pruner (lambda={lam:g})", summary, base, lam=lam, train_steps=info.get("train_steps"),
                        truncated_fraction=info.get("truncated_fraction"),
                        paper_marco_accuracy=acc, paper_marco_length=length, paper_marco_aes=aes_))

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        lam_rows = rows[1:]
        xs = [r["lam"] for r in lam_rows]
        for ax, key, title in zip(axes, ["accuracy", "mean_length", "aes"],
                                  ["accuracy (held-out)", "mean length (tokens)", "AES"]):
            ys = [r[key] if r[key] is not None else float("nan") for r in lam_rows]
            ax.plot(range(len(xs)), ys, "o-", color="#2b7bba", label="O1-Pruner")
            if rows[0][key] is not None:
                ax.axhline(rows[0][key], color="#999999", ls="--", label="baseline")
            ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
            ax.set_xlabel("lambda")
            ax.set_title(title)
        axes[0].legend(fontsize=8)
        fig.suptitle("Lambda ablation (paper Table 3) at small scale: SmolLM2-135M-Instruct, arithmetic")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    notes = (
        "Paper (Marco-o1-7B, MATH): lambda 0/1/2/5 -> accuracy 74.8/76.0/76.8/76.3, length 527/532/554/656, "
        "AES 0.49/0.54/0.55/0.45 (columns paper_marco_*; a different model and data set, shown for the trend: "
        "a larger lambda buys accuracy with length).\n\n" + setup_text(setup)
    )
    write_results(
        "lambda_ablation",
        "Paper Table 3 at small scale: lambda ablation (SmolLM2-135M-Instruct, arithmetic)",
        rows,
        [("method", "method"), ("accuracy", "accuracy"), ("accuracy_change", "Δacc"), ("mean_length", "mean_length"),
         ("length_ratio", "length_ratio"), ("aes", "aes"), ("paper_marco_accuracy", "paper acc"),
         ("paper_marco_length", "paper length"), ("paper_marco_aes", "paper AES")],
        {"seed": setup.seed, "wall_seconds": wall.seconds(), "setup": setup.__dict__, "lambdas": LAMBDAS},
        plot,
        notes,
    )
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
