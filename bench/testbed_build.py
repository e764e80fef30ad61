"""What the testbed model's build gains from length buckets and two threads, side by side.

The build (:mod:`o1pruner.testbed.build`) trains the reference model for ``Recipe.steps`` steps.
This benchmark trains the first ``--steps`` of them three ways in one run, each from scratch on
its own model, in the order A B C C B A (so that a change of load on the shared machine does not
favour one), and compares the time per step:

- **unbucketed, 1 thread**: the previous recipe's batching (32 random traces padded to the
  longest) on one thread;
- **bucketed, 1 thread**: traces drawn ``length_buckets`` steps at a time, sorted by length and
  cut into batches, so a batch pads to its own length;
- **bucketed, 2 threads**: the current recipe.

It also records each variant's padding share and the SHA-256 of the weights after the measured
steps, which says whether the thread count changed the weights on this CPU (it is part of the
recipe either way). The build's own full time is in every testbed benchmark's ``model.build``.

    python bench/testbed_build.py [--steps 30]
    python bench/testbed_build.py --rerender   # rewrite the md / png from the committed JSON
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, Timer, finish, pyplot, start, write_json, write_rendered  # noqa: E402

log = logging.getLogger("bench.testbed_build")
NAME = "testbed_build"
TITLE = "Building the testbed model: length buckets and threads, side by side"
#: run name -> (label, recipe overrides)
VARIANTS = {
    "unbucketed-1t": ("unbucketed, 1 thread (previous recipe's batching)", {"length_buckets": 1, "threads": 1}),
    "bucketed-1t": ("bucketed, 1 thread", {"threads": 1}),
    "bucketed-2t": ("bucketed, 2 threads (current recipe)", {}),
}
ORDER = ["unbucketed-1t", "bucketed-1t", "bucketed-2t", "bucketed-2t", "bucketed-1t", "unbucketed-1t"]
COLUMNS = [("method", "variant"), ("seconds_per_step", "s / step"), ("speedup", "speed-up vs unbucketed, 1 thread"),
           ("padding_fraction", "padding share"), ("weights", "weights after the steps (SHA-256, 12)")]


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for _, p in sorted(model.state_dict().items()):
        h.update(p.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def measure(name: str, steps: int) -> dict:
    """Train the first ``steps`` steps of the testbed recipe with ``name``'s overrides."""
    from o1pruner.testbed.build import TESTBED_RECIPES, train_model

    recipe = replace(TESTBED_RECIPES["longthought-arith"], **VARIANTS[name][1])
    # the recipe's own schedule, stopped after ``steps`` (a shorter recipe would decay sooner)
    timer = Timer()
    model, _tok, figures = train_model(recipe, progress=False, max_steps=steps)
    seconds = timer.seconds()
    return {"seconds": seconds, "padding_fraction": figures["padding_fraction"], "weights": weights_digest(model),
            "threads": recipe.threads, "length_buckets": recipe.length_buckets}


def summarize(runs: dict[str, list[dict]], steps: int) -> list[dict]:
    """One row per variant: mean seconds per step over its runs, speed-up, padding, weights."""
    per_step = {n: sum(r["seconds"] for r in rs) / (len(rs) * steps) for n, rs in runs.items()}
    base = per_step["unbucketed-1t"]
    rows = []
    for n, (label, _) in VARIANTS.items():
        rs = runs[n]
        digests = sorted({r["weights"] for r in rs})
        rows.append({"method": label, "variant": n, "seconds_per_step": per_step[n], "speedup": base / per_step[n],
                     "padding_fraction": rs[0]["padding_fraction"], "weights": " / ".join(digests),
                     "runs_seconds": [r["seconds"] for r in rs], "accuracy": None, "mean_length": None, "aes": None})
    return rows


def notes_for(data: dict) -> str:
    rows = {r["variant"]: r for r in data["rows"]}
    one, two = rows["bucketed-1t"], rows["bucketed-2t"]
    same = one["weights"] == two["weights"]
    return (
        f"The first {data['steps']} of the recipe's {data['recipe_steps']} steps, each variant twice "
        f"(order {' '.join(ORDER)}), each run a fresh model. Length buckets cut the padding share from "
        f"{rows['unbucketed-1t']['padding_fraction']:.1%} to {one['padding_fraction']:.1%} and the time per step "
        f"{rows['unbucketed-1t']['seconds_per_step'] / one['seconds_per_step']:.2f}x; two threads make it "
        f"{one['seconds_per_step'] / two['seconds_per_step']:.2f}x faster again: "
        f"{two['speedup']:.2f}x in all. On this CPU one and two threads "
        + ("gave the same weights after these steps (bitwise): the thread count did not change the rounding here; "
           "on another CPU it can (reductions split per thread), which is why the recipe fixes it."
           if same else "gave different weights (reductions split per thread): the recipe fixes the thread count.")
        + f"\n\nThe full build of the current recipe on the machine of the testbed benchmark: "
        f"{data['build']['train_seconds']:.0f} s ({data['build']['cpu']}, {data['build']['cpu_capability']})."
    )


def plot_for(data: dict):
    def plot(path: Path) -> None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 3.4))
        rows = data["rows"]
        vals = [r["seconds_per_step"] for r in rows]
        bars = ax.bar([r["variant"] for r in rows], vals, color=["#cccccc", "#999999", "#2b7bba"])
        for b, r in zip(bars, rows):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{r['seconds_per_step']:.3f} s\n{r['speedup']:.2f}x",
                    ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("seconds per build step")
        ax.set_ylim(0, max(vals) * 1.3)
        ax.set_title(f"Testbed build, first {data['steps']} steps")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return plot


def render_results(data: dict, out_dir: Path | None = None) -> None:
    write_rendered(data, COLUMNS, notes_for(data), plot_for(data), out_dir)


def docs_summary(data: dict) -> dict:
    rows = {r["variant"]: r for r in data["rows"]}
    return {
        "setup": f"first {data['steps']} steps of the testbed build, three variants, each twice (A B C C B A)",
        "target": "none (what the build's batching and threads are worth)",
        "measured": (f"**{rows['bucketed-2t']['speedup']:.2f}x** per step (bucketed, 2 threads vs unbucketed, 1 thread); "
                     f"padding {rows['unbucketed-1t']['padding_fraction']:.1%} → {rows['bucketed-2t']['padding_fraction']:.1%}"),
        "verdict": "recorded",
    }


def main(argv: list[str] | None = None) -> int:
    run = start(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rerender", action="store_true")
    args = ap.parse_args(argv)
    if args.rerender:
        data = json.loads((RESULTS / f"{NAME}.json").read_text())
        render_results(data, RESULTS)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from o1pruner.models import ensure_embedded
    from o1pruner.testbed.build import TESTBED_RECIPES

    build = json.loads((ensure_embedded("longthought-arith") / "testbed.json").read_text())["build"]
    runs: dict[str, list[dict]] = {n: [] for n in VARIANTS}
    for name in ORDER:
        runs[name].append(measure(name, args.steps))
        log.info("%s: %.1f s for %d steps", name, runs[name][-1]["seconds"], args.steps)
    data = {"benchmark": NAME, "title": TITLE, "rows": summarize(runs, args.steps), **finish(run),
            "seed": TESTBED_RECIPES["longthought-arith"].seed,
            "steps": args.steps, "recipe_steps": TESTBED_RECIPES["longthought-arith"].steps,
            "recipe": TESTBED_RECIPES["longthought-arith"].digest(), "build": build}
    write_json(data, RESULTS)
    render_results(data, RESULTS)
    print(json.dumps(data["rows"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
