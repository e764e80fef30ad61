"""Benchmark 4: trainer efficiency, an O1-Pruner training step vs the raw forward+backward.

The O1-Pruner step is the pipeline's own loop (``o1pruner.training.train``): length-bucketed
micro-batches, policy forward, sequence log-probs, the clipped surrogate (paper Eq. 7),
backward, gradient clipping, AdamW and the scheduler. The reference log-probs are computed once
before training (timed separately, a one-off cost). Right after each optimizer step, in the
``on_step`` callback, the raw baseline runs on the very same micro-batches: a plain
``model(input_ids, attention_mask, labels).loss.backward()``, gradients dropped afterwards.
Interleaving the two per step keeps load changes on the shared machine from favouring either.
Tokens are real (non-padding) tokens of the step in both; the first step of each is a warm-up
and is excluded. A third row runs the raw pass on the same step's examples *without* length
bucketing (the loop's padding before the fix), to show what bucketing is worth.

Reference samples: ``runs/bench/trainer-samples.jsonl``, sampled by this script on first use
(transformers, 16 arithmetic problems x K=4, max 128 tokens, graded with the pipeline's
default rules), so a run does not depend on what another benchmark left behind.

    python bench/trainer_efficiency.py [--steps 8 --batch-size 8 --micro-batch-size 4]

The JSON describes exactly one run: ``make bench`` replays the arguments recorded in it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, WORK, Timer, finish, fmt, pyplot, start, write_json, write_rendered  # noqa: E402

log = logging.getLogger("bench.trainer_efficiency")
TARGET = 0.9
SAMPLES = WORK / "trainer-samples.jsonl"
#: How the reference samples are drawn when the samples file does not exist yet.
REFERENCE_SAMPLING = {"backend": "transformers", "problems": 16, "problem_seed": 2024, "k": 4, "temperature": 0.7,
                      "top_p": 0.9, "max_tokens": 128, "seed": 0, "batch_size": 4}
COLUMNS = [("method", "method"), ("tokens_per_second", "tokens/s"), ("efficiency_ratio", "efficiency_ratio"),
           ("padding_waste", "padding waste")]


def reference_records(model: str, path: Path) -> list[dict]:
    """Graded reference samples (written by the throughput benchmark; sampled here if missing)."""
    if path.exists():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    from o1pruner.data import generate_arithmetic
    from o1pruner.sampling.collect import sample_problems
    from o1pruner.sampling.base import GenerationParams
    from o1pruner.sampling.hf import HFSampler
    from o1pruner.spec import PromptSpec
    from o1pruner.storage import LocalStorage

    r = REFERENCE_SAMPLING
    problems = generate_arithmetic(r["problems"], seed=r["problem_seed"], name="bench")
    with tempfile.TemporaryDirectory() as tmp:
        outcome = sample_problems(
            HFSampler.from_pretrained(model, batch_size=r["batch_size"]), problems, PromptSpec(),
            GenerationParams(n=r["k"], temperature=r["temperature"], top_p=r["top_p"], max_tokens=r["max_tokens"],
                             seed=r["seed"]),
            store=LocalStorage(tmp), prefix="ref", dataset="bench",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in outcome.records))
    return outcome.records


def plot_for(data: dict):
    rows, ratio, per_step = data["rows"], data["efficiency_ratio"], data["per_step_ratio"]
    target = data["target_ratio"]

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
        names = ["O1-Pruner step", "raw fwd+bwd\n(same batches)", "raw fwd+bwd\n(unbucketed)"]
        vals = [r["tokens_per_second"] for r in rows]
        bars = a1.bar(names, vals, color=["#2b7bba", "#999999", "#cccccc"])
        for b, v in zip(bars, vals):
            a1.text(b.get_x() + b.get_width() / 2, v, f"{v:.0f}", ha="center", va="bottom")
        a1.set_ylabel("real tokens / s")
        a1.set_title(f"Training throughput: {ratio:.2f}x of raw (target {target}x)")
        a2.plot(range(2, 2 + len(per_step)), per_step, "o-")
        a2.axhline(target, color="red", ls="--", lw=1)
        a2.set_xlabel("step")
        a2.set_ylabel("O1 step / raw")
        a2.set_title("per step")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return plot


def notes_for(data: dict) -> str:
    rows, ratio, per_step, target = data["rows"], data["efficiency_ratio"], data["per_step_ratio"], data["target_ratio"]
    p, ref_s, ref_tokens = data["params"], data["reference_logprobs_seconds"], data["reference_logprobs_tokens"]
    met = ratio >= target
    notes = (
        f"Target: O1-Pruner step >= {target}x the raw forward+backward. Measured: {ratio:.2f}x "
        f"({'met' if met else f'missed by {target - ratio:.2f}'}); per step: "
        + ", ".join(f"{r:.2f}" for r in per_step)
        + f".\n\nThe O1 step also pays for gradient clipping, AdamW and the scheduler, which the raw pass does "
        f"not. The frozen reference's log-probs are computed once before training (not per step): "
        f"{ref_s:.1f} s for {ref_tokens} tokens ({ref_tokens / ref_s:.0f} tok/s forward only), "
        "amortised over all epochs.\n\nPadding: the loop sorts each optimizer step's examples by length "
        f"before cutting micro-batches (`training.bucket_micro`): padding waste {rows[0]['padding_waste']:.1%} "
        f"vs {rows[2]['padding_waste']:.1%} without bucketing, same gradient (each micro-batch loss is "
        f"weighted by its share of the step). {data['examples']} examples from {data['reference_samples']} reference "
        f"samples (K samples of {data['reference_problems']} arithmetic problems), batch {p['batch_size']}, "
        f"micro-batch {p['micro_batch_size']}, cutoff {p['max_length']}, {data['steps']} steps (first excluded), fp32 CPU."
    )
    if data.get("samples_note"):
        notes += f"\n\nReference samples: {data['samples_note']}"
    return notes


def render_results(data: dict, out_dir: Path | None = None) -> None:
    """Write trainer_efficiency.md/.png from its JSON alone."""
    write_rendered(data, COLUMNS, notes_for(data), plot_for(data), out_dir)


def docs_summary(data: dict) -> dict:
    """The docs/benchmarks.md row: setup, target, measured, verdict."""
    p, rows, ratio, per_step = data["params"], data["rows"], data["efficiency_ratio"], data["per_step_ratio"]
    return {
        "setup": (f"{data['examples']} O1-Pruner examples ({data['reference_problems']} arithmetic problems), batch "
                  f"{p['batch_size']}, micro-batch {p['micro_batch_size']}, cutoff {p['max_length']}, {data['steps']} "
                  "steps (first excluded), fp32 CPU"),
        "target": f"O1-Pruner step >= {data['target_ratio']}x raw fwd+bwd",
        "measured": (f"**{ratio:.2f}x** ({rows[0]['tokens_per_second']:.1f} vs {rows[1]['tokens_per_second']:.1f} real "
                     f"tok/s, {len(per_step)} measured steps, per step {min(per_step):.2f}-{max(per_step):.2f}); "
                     f"padding waste {rows[0]['padding_waste']:.1%} bucketed vs {rows[2]['padding_waste']:.1%} not"),
        "verdict": "met" if ratio >= data["target_ratio"] else f"missed by {fmt(data['target_ratio'] - ratio, 2)}",
    }


def main(argv: list[str] | None = None) -> int:
    run = start(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--micro-batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=320)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch

    from o1pruner import training as tr
    from o1pruner.data import generate_arithmetic
    from o1pruner.models import ensure_embedded
    from o1pruner.spec import PromptSpec, TrainingSpec
    from o1pruner.stats import reference_stats
    from o1pruner.storage import LocalStorage
    from o1pruner.trainset import o1_pruner_examples

    model_path = str(ensure_embedded("smollm2-135m-instruct"))
    records = reference_records(model_path, args.samples)
    problems = {p.id: p.problem for p in generate_arithmetic(
        REFERENCE_SAMPLING["problems"], seed=REFERENCE_SAMPLING["problem_seed"], name="bench")}
    records = [r for r in records if r["problem_id"] in problems]
    t = TrainingSpec(
        method="o1-pruner", learning_rate=1e-5, batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
        max_length=args.max_length, epochs=1, warmup_ratio=0.0, checkpoint_every_steps=10**6, seed=args.seed,
        deepspeed={"enabled": False},
    )
    examples = o1_pruner_examples(records, reference_stats(records), t, samples_per_problem=8, seed=args.seed)
    device, dtype = tr.pick_device_dtype()
    model, tok = tr.load_policy(model_path, t, dtype, device)
    units = tr.build_units("o1-pruner", examples, tok, PromptSpec(), t.max_length, problems)
    steps = min(args.steps, len(units) // args.batch_size)
    # only the examples the measured steps use (a seeded subset keeps the length mix)
    import random

    random.Random(args.seed).shuffle(units)
    units = units[: steps * args.batch_size]
    pad = tok.pad_token_id

    timer = Timer()
    tr.compute_reference(model, units, "o1-pruner", pad, device, args.micro_batch_size)
    ref_seconds = timer.seconds()
    ref_tokens = sum(u.n_tokens for u in units)

    def raw_pass(groups: list[list[int]]) -> tuple[float, int]:
        timer = Timer()
        tokens = 0
        for g in groups:
            ids, att, mask = tr.collate([s for i in g for s in units[i].seqs], pad)
            labels = ids.masked_fill(mask == 0, -100)
            out = model(input_ids=ids.to(device), attention_mask=att.to(device), labels=labels.to(device), use_cache=False)
            out.loss.backward()
            tokens += int(att.sum())
        seconds = timer.seconds()
        model.zero_grad(set_to_none=True)
        return seconds, tokens

    batches = tr.step_batches(len(units), t.batch_size, t.seed, 0)
    raw, unbucketed, waste_bucketed, waste_plain = [], [], [], []

    def on_step(rec: dict) -> None:
        idx = batches[rec["step"] - 1]
        groups = tr.bucket_micro(idx, units, t.micro_batch_size)
        plain = [idx[i : i + t.micro_batch_size] for i in range(0, len(idx), t.micro_batch_size)]
        waste_bucketed.append(tr.padding_waste(groups, units))
        waste_plain.append(tr.padding_waste(plain, units))
        raw.append(raw_pass(groups))
        unbucketed.append(raw_pass(plain))
        log.info("step %d: o1 %.0f tok/s, raw %.0f tok/s, raw unbucketed %.0f tok/s", rec["step"],
                 rec["tokens_per_second"], raw[-1][1] / raw[-1][0], unbucketed[-1][1] / unbucketed[-1][0])

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        store = LocalStorage(tmp)
        store.write_json(tr.REF_LOGPROBS, [u.ref for u in units])
        result = tr.train(model, tok, units, t, store, method="o1-pruner", max_steps=steps, on_step=on_step)

    hist = result.history[1:]
    o1_tps = sum(h["tokens"] for h in hist) / sum(h["tokens"] / h["tokens_per_second"] for h in hist)
    raw_tps = sum(tk for _, tk in raw[1:]) / sum(s for s, _ in raw[1:])
    plain_tps = sum(tk for _, tk in unbucketed[1:]) / sum(s for s, _ in unbucketed[1:])
    ratio = o1_tps / raw_tps
    per_step = [h["tokens_per_second"] / (tk / s) for h, (s, tk) in zip(hist, raw[1:])]
    rows = [
        {"method": "O1-Pruner training step (loop: fwd+bwd, surrogate, clip, AdamW)", "tokens_per_second": o1_tps,
         "padding_waste": statistics.mean(waste_bucketed[1:]), "efficiency_ratio": ratio,
         "accuracy": None, "mean_length": statistics.mean(u.length for u in units), "aes": None},
        {"method": "raw forward+backward, same micro-batches", "tokens_per_second": raw_tps,
         "padding_waste": statistics.mean(waste_bucketed[1:]), "efficiency_ratio": 1.0,
         "accuracy": None, "mean_length": None, "aes": None},
        {"method": "raw forward+backward, unbucketed micro-batches", "tokens_per_second": plain_tps,
         "padding_waste": statistics.mean(waste_plain[1:]), "efficiency_ratio": plain_tps / raw_tps,
         "accuracy": None, "mean_length": None, "aes": None},
    ]

    data = {
        "benchmark": "trainer_efficiency",
        "title": "Trainer efficiency: O1-Pruner step vs raw forward+backward (CPU)",
        "rows": rows,
        **finish(run),
        "seed": args.seed,
        "target_ratio": TARGET,
        "efficiency_ratio": ratio,
        "per_step_ratio": per_step,
        "reference_logprobs_seconds": ref_seconds,
        "reference_logprobs_tokens": ref_tokens,
        "examples": len(units),
        "reference_samples": len(records),
        "reference_problems": len({r["problem_id"] for r in records}),
        "steps": steps,
        "params": {**vars(args), "samples": str(args.samples)},
        "reference_sampling": REFERENCE_SAMPLING,
    }
    write_json(data, RESULTS)
    render_results(data, RESULTS)
    print(json.dumps({"efficiency_ratio": ratio, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
