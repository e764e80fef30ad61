"""Benchmark 3: sampler throughput, vLLM server vs in-process transformers ``generate``.

Same model (embedded SmolLM2-135M-Instruct, float32 in both), same prompts (built-in arithmetic,
the pipeline's chat prompt), same K, max tokens, temperature and top-p. Both go through the
pipeline's own samplers (``o1pruner.sampling.openai.OpenAISampler`` against a server started by
``o1pruner.vllm_server.local_vllm_server`` with the Deployment's arguments, and
``o1pruner.sampling.hf.HFSampler``). Throughput = generated tokens (up to and including EOS, as
the pipeline counts them) per second of wall time; server start-up and model loading are
timed separately, outside the throughput window. One warm-up request per backend is excluded.
Accuracy is graded with the pipeline's default rules (a boxed answer of a sample that did not
stop at the cap).

    python bench/sampler_throughput.py [--problems 4 --k 8 --max-tokens 128 --concurrency 4 ...]

The JSON describes exactly one run: ``make bench`` replays the arguments recorded in it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS, WORK, Timer, finish, fmt, job_dict, pyplot, start, write_json, write_rendered,
)

log = logging.getLogger("bench.sampler_throughput")
TARGET = 2.5
VLLM = "vLLM server (OpenAI API, float32)"
HF = "transformers generate (in-process, float32)"
COLUMNS = [("method", "method"), ("generated_tokens", "generated tokens"), ("seconds", "seconds"),
           ("tokens_per_second", "tokens/s"), ("speedup_ratio", "speedup_ratio"), ("accuracy", "accuracy"),
           ("mean_length", "mean_length"), ("truncated_fraction", "truncated"), ("startup_seconds", "start-up s"),
           ("settings", "settings")]


def _run(sampler, prompts, params):
    t = Timer()
    outs = dict(sampler.generate(prompts, params))
    seconds = t.seconds()
    failed = {k: v for k, v in outs.items() if isinstance(v, Exception)}
    if failed:
        raise RuntimeError(f"{len(failed)} prompts failed: {next(iter(failed.values()))}")
    return outs, seconds


def _summary(name: str, outs: dict, seconds: float, answers: dict, max_tokens: int, extra: dict) -> dict:
    from o1pruner.grading import grade, is_truncated

    comps = [c for cs in outs.values() for c in cs]
    tokens = sum(c.tokens for c in comps)
    correct = sum(bool(grade(c.text, answers[k], truncated=is_truncated(c.finish_reason, c.tokens, max_tokens)).correct)
                  for k, cs in outs.items() for c in cs)
    return {
        "method": name,
        "samples": len(comps),
        "generated_tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_second": tokens / seconds,
        "accuracy": correct / len(comps),
        "mean_length": tokens / len(comps),
        "truncated_fraction": sum(c.finish_reason == "length" for c in comps) / len(comps),
        "aes": None,
        **extra,
    }


def plot_for(data: dict):
    rows, params, ratio = data["rows"], data["params"], data.get("speedup_ratio")
    n_vllm = sum(r["method"].startswith(VLLM) for r in rows)

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.7 * len(rows)))
        names = [r["method"].replace(" (", "\n(") for r in rows]
        vals = [r["tokens_per_second"] for r in rows]
        bars = ax.barh(names, vals, color=["#2b7bba"] * n_vllm + ["#999999"] * (len(rows) - n_vllm))
        ax.invert_yaxis()
        for b, v in zip(bars, vals):
            ax.text(v, b.get_y() + b.get_height() / 2, f" {v:.0f} tok/s", va="center")
        ax.set_xlabel("generated tokens per second (higher is better)")
        ax.set_title(f"Sampler throughput, SmolLM2-135M, K={params['k']}, max {params['max_tokens']} tokens"
                     + (f": {ratio:.2f}x" if ratio else ""))
        ax.set_xlim(0, max(vals) * 1.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    return plot


def notes_for(data: dict) -> str:
    params, ratio, target = data["params"], data.get("speedup_ratio"), data["target_ratio"]
    met = ratio is not None and ratio >= target
    return (
        f"Target: vLLM >= {target}x transformers. Measured: "
        + (f"{ratio:.2f}x ({'met' if met else f'missed by {target - ratio:.2f}x'})." if ratio else "n/a.")
        + " The best vLLM setting is compared; every setting measured is listed."
        + f"\n\n{params['problems']} arithmetic problems x K={params['k']} samples, max {params['max_tokens']} tokens, "
        f"temperature {params['temperature']}, top-p {params['top_p']}; "
        + ("vLLM not run" if params.get("skip_vllm") else f"vLLM at {params['concurrency']} request(s) in flight")
        + ("; transformers not run" if params.get("skip_hf") else "")
        + ". Tokens are counted up to and including EOS "
        "(the pipeline's lengths); the vLLM count is cross-checked against the server's "
        "`vllm:generation_tokens_total`. Start-up (vLLM server: compile + KV cache; transformers: "
        "model load) is not in the throughput window and is listed separately."
        + f"\n\nAccuracy grading: {data['grading']}."
    )


def render_results(data: dict, out_dir: Path | None = None) -> None:
    """Write sampler_throughput.md/.png from its JSON alone."""
    write_rendered(data, COLUMNS, notes_for(data), plot_for(data), out_dir)


def docs_summary(data: dict) -> dict:
    """The docs/benchmarks.md row: setup, target, measured, verdict."""
    p, rows, ratio = data["params"], data["rows"], data.get("speedup_ratio")
    best = rows[0] if rows else {}
    hf = next((r for r in rows if r["method"] == HF), {})
    return {
        "setup": (f"{p['problems']} arithmetic prompts x K={p['k']}, max {p['max_tokens']} tokens, temperature "
                  f"{p['temperature']}, top-p {p['top_p']}; vLLM with {p['concurrency']} request(s) in flight, "
                  f"transformers batches of {p['hf_batch_size']} prompts"),
        "target": f"vLLM >= {data['target_ratio']}x transformers",
        "measured": (f"**{fmt(ratio, 2)}x** ({fmt(best.get('tokens_per_second'), 1)} vs "
                     f"{fmt(hf.get('tokens_per_second'), 1)} generated tok/s)"),
        "verdict": "met" if ratio is not None and ratio >= data["target_ratio"] else "missed",
    }


def main(argv: list[str] | None = None) -> int:
    run = start(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", default="4",
                    help="vLLM: requests in flight (each n=K), a comma list: each is measured, the best is compared")
    ap.add_argument("--hf-batch-size", type=int, default=4, help="transformers: prompts per generate call (x K rows)")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-vllm", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import torch

    from o1pruner.data import generate_arithmetic
    from o1pruner.grading import DEFAULT_GRADING
    from o1pruner.models import ensure_embedded
    from o1pruner.prompts import build_messages
    from o1pruner.sampling.base import GenerationParams
    from o1pruner.spec import PromptSpec, parse_job

    model = str(ensure_embedded("smollm2-135m-instruct"))
    problems = generate_arithmetic(args.problems, seed=2024, min_steps=1, max_steps=4, name="bench")
    answers = {p.id: p.answer for p in problems}
    prompts = [(p.id, build_messages(p.problem, PromptSpec())) for p in problems]
    params = GenerationParams(n=args.k, temperature=args.temperature, top_p=args.top_p,
                              max_tokens=args.max_tokens, seed=args.seed)
    warm = [("warm-up", build_messages("What is 1 + 1?", PromptSpec()))]
    warm_params = GenerationParams(n=args.k, temperature=args.temperature, top_p=args.top_p, max_tokens=16, seed=1)

    concurrencies = [int(c) for c in str(args.concurrency).split(",")]
    vllm_rows: list[dict] = []
    if not args.skip_vllm:
        from o1pruner.sampling.openai import OpenAISampler
        from o1pruner.vllm_server import local_vllm_server

        spec = parse_job(job_dict("bench-throughput", str(WORK / "throughput"),
                                  sampling={"concurrency": max(concurrencies)})).spec
        t = Timer()
        server = local_vllm_server(spec, model, log_path=WORK / "throughput-vllm.log")
        startup = t.seconds()
        try:
            for conc in concurrencies:
                with OpenAISampler(server.base_url, server.served_name, concurrency=conc, timeout=900) as sampler:
                    _run(sampler, warm, warm_params)
                    before = server.metrics()
                    outs, seconds = _run(sampler, prompts, params)
                    after = server.metrics()
                counted = after["vllm:generation_tokens_total"] - before["vllm:generation_tokens_total"]
                row = _summary(f"{VLLM} c={conc}", outs, seconds, answers, args.max_tokens, {
                    "startup_seconds": round(startup, 1), "server_counted_tokens": int(counted),
                    "settings": f"{conc} requests x n={args.k} in flight ({conc * args.k} sequences); "
                                f"VLLM_CPU_NUM_OF_RESERVED_CPU={os.environ.get('VLLM_CPU_NUM_OF_RESERVED_CPU', 'unset (1)')}, "
                                f"KV cache {os.environ.get('VLLM_CPU_KVCACHE_SPACE')} GiB",
                })
                assert row["generated_tokens"] == int(counted), (row["generated_tokens"], counted)
                vllm_rows.append(row)
                log.info("vLLM: %s", row)
        finally:
            server.stop()

    hf_row = None
    if not args.skip_hf:
        from o1pruner.sampling.hf import HFSampler

        torch.manual_seed(args.seed)
        t = Timer()
        sampler = HFSampler.from_pretrained(model, batch_size=args.hf_batch_size)
        load = t.seconds()
        _run(sampler, warm, warm_params)
        outs, seconds = _run(sampler, prompts, params)
        hf_row = _summary(HF, outs, seconds, answers, args.max_tokens, {
            "startup_seconds": round(load, 1), "server_counted_tokens": None,
            "settings": f"batch {args.hf_batch_size} prompts x {args.k} return sequences, torch threads {torch.get_num_threads()}",
        })
        log.info("HF: %s", hf_row)

    vllm_rows.sort(key=lambda r: -r["tokens_per_second"])
    rows = vllm_rows + ([hf_row] if hf_row else [])
    ratio = None
    if hf_row and vllm_rows:
        for r in vllm_rows:
            r["speedup_ratio"] = r["tokens_per_second"] / hf_row["tokens_per_second"]
        hf_row["speedup_ratio"] = 1.0
        ratio = vllm_rows[0]["speedup_ratio"]

    data = {
        "benchmark": "sampler_throughput",
        "title": "Sampler throughput: vLLM server vs transformers generate (CPU)",
        "rows": rows,
        **finish(run),
        "seed": args.seed,
        "target_ratio": TARGET,
        "speedup_ratio": ratio,
        "params": vars(args),
        "grading": f"the pipeline's defaults ({json.dumps(DEFAULT_GRADING.to_wire(), sort_keys=True)})",
    }
    write_json(data, RESULTS)
    render_results(data, RESULTS)
    print(json.dumps({"speedup_ratio": ratio, "rows": rows}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
