"""Paper Table 2 and the λ ablation (Table 3) on the long-thought testbed, with statistics.

The reference model is ``embedded:longthought-arith`` (:mod:`o1pruner.testbed`): it reasons at
length with redundancy of known kinds, and every problem's minimal correct trace is known, so
L_min is a measured lower bound and the share of the redundancy gap a method closes,
(L_base − L_model) / (L_base − L_min), is measurable.

For each training seed: K reference samples per training problem (a seed of its own), the base
model's greedy evaluation, then every method trained from the reference model on those samples
for the same number of optimizer steps and evaluated greedily on the same held-out problems.
Everything goes through the pipeline's phases (what ``o1pruner run`` does) and resumes.

Statistics: per-problem differences (method − base), averaged over seeds, with 95 % paired
bootstrap intervals over problems; McNemar's exact test per seed; each seed's own figures.

    python bench/testbed.py              # run (resumes) and write bench/results/testbed.*
    python bench/testbed.py --rerender   # rewrite testbed.md / testbed.png from the committed JSON
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, WORK, finish, machine_line, pyplot, stamp_png, start  # noqa: E402

log = logging.getLogger("bench.testbed")
NAME = "testbed"
TITLE = "O1-Pruner on the long-thought testbed (paper Tables 2 and 3, small scale)"
#: Labels of the length rewards of :mod:`o1pruner.length_rewards` (``Config.rewards``).
REWARD_LABELS = {"kimi-length": "Kimi k1.5 length penalty", "efficient-reasoning": "Efficient reasoning (RLOO, α=0.2)"}
MODEL = "embedded:longthought-arith"
TARGETS = {"length_change": -0.45, "gap_closed": 0.75, "accuracy_ci_low": -0.02}
#: Reference samples per training problem that become training examples (the authors' 2 of K).
SAMPLES_PER_PROBLEM = 2


@dataclass(frozen=True)
class Config:
    seeds: tuple[int, ...] = (0, 1, 2)
    train_count: int = 256
    eval_count: int = 600
    k: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 192
    steps: int = 96  # optimizer steps, the same for every method
    batch_size: int = 32
    learning_rate: float = 3e-5
    max_length: int = 256
    lambdas: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0)
    tag: str = "v1"
    model: str = MODEL
    work: str = str(WORK)
    baselines: bool = True  # SFT and DPO (they need correct reference samples)
    rewards: tuple[str, ...] = ()  # length rewards other than O1-Pruner's (each trained at λ's place, see methods)
    only: tuple[str, ...] = ()  # run names to run (tuning); empty: all
    #: Who samples and evaluates: in-process ``transformers`` (the testbed model: 5 M parameters)
    #: or a local ``vllm`` server per model (a pretrained model, where it is 5x faster).
    backend: str = "transformers"
    concurrency: int = 32  # vLLM requests in flight
    threads: int = 1  # torch threads per seed (part of the result: float reductions split per thread)

    @property
    def root(self) -> Path:
        """The work directory; named by the testbed recipe's hash too, so that a changed recipe
        never resumes the samples and checkpoints of another model."""
        from o1pruner.testbed.build import TESTBED_RECIPES

        name = self.model.removeprefix("embedded:")
        recipe = f"-{TESTBED_RECIPES[name].digest()}" if name in TESTBED_RECIPES else ""
        return Path(self.work) / f"testbed-{self.tag}{recipe}"


#: run name -> (table label, training overrides)
def methods(cfg: Config) -> dict[str, tuple[str, dict]]:
    out = {"sft": ("SFT (shortest correct)", {"method": "sft"}),
           "dpo": ("DPO (shortest vs longest)", {"method": "dpo"})} if cfg.baselines else {}
    for lam in cfg.lambdas:
        out[f"o1-lam{lam:g}"] = (f"O1-Pruner (λ={lam:g})", {"method": "o1-pruner", "lambda": lam})
    for reward in cfg.rewards:  # the same off-policy surrogate, samples and steps; only the reward differs
        out[reward] = (REWARD_LABELS.get(reward, reward), {"method": "o1-pruner", "reward": reward})
    return {k: v for k, v in out.items() if not cfg.only or k in cfg.only}


def job(cfg: Config, seed: int, name: str, storage: Path, training: dict | None = None) -> dict:
    return {
        "apiVersion": "o1pruner.dev/v1alpha1", "kind": "PruningJob", "metadata": {"name": name},
        "spec": {
            "model": {"source": cfg.model, "servedName": "longthought", "dtype": "float32"},
            "datasets": {
                "train": {"name": "longthought-train", "source": "builtin:longthought",
                          "generator": {"count": cfg.train_count, "seed": 100 + seed, "minSteps": 2, "maxSteps": 4}},
                "eval": [{"name": "longthought-heldout", "source": "builtin:longthought",
                          "generator": {"count": cfg.eval_count, "seed": 1001, "minSteps": 2, "maxSteps": 4}}],
            },
            "prompt": {"system": ""},
            "sampling": {"k": cfg.k, "temperature": cfg.temperature, "topP": cfg.top_p, "maxTokens": cfg.max_tokens,
                         "seed": seed, "samplesPerProblem": SAMPLES_PER_PROBLEM, "backend": cfg.backend,
                         "batchSize": 64, "concurrency": cfg.concurrency},
            "training": {"deepspeed": {"enabled": False}, "learningRate": cfg.learning_rate, "epochs": 1,
                         "batchSize": cfg.batch_size, "microBatchSize": cfg.batch_size, "maxLength": cfg.max_length,
                         "lrScheduler": "cosine", "warmupRatio": 0.1, "checkpointEverySteps": 100000, "seed": seed,
                         **(training or {})},
            "evaluation": {"maxTokens": cfg.max_tokens, "temperature": 0.0},
            "storage": {"uri": str(storage)},
        },
    }


def _ctx(job_obj: dict):
    from o1pruner.pipeline import open_context
    from o1pruner.spec import parse_job

    return open_context(parse_job(job_obj), with_metrics=False)


def _sampler(ctx, path: str):
    """The sampler of ``ctx``'s backend for the model at ``path`` (a vLLM server is started)."""
    if ctx.spec.sampling.backend == "vllm":
        from o1pruner.vllm_server import local_vllm_sampler

        return local_vllm_sampler(ctx.spec, path)
    from o1pruner.sampling.hf import HFSampler

    return HFSampler.from_pretrained(path, batch_size=64)


def _epochs_for(n_examples: int, cfg: Config) -> int:
    """Whole epochs that cover ``cfg.steps`` optimizer steps (training stops at ``cfg.steps``)."""
    return max(1, math.ceil(cfg.steps * cfg.batch_size / max(1, n_examples)))


def epochs(config: dict) -> float:
    """How many passes over the training examples (``SAMPLES_PER_PROBLEM`` per training problem)
    a results JSON's ``config`` made of its optimizer steps."""
    return config["steps"] * config["batch_size"] / (SAMPLES_PER_PROBLEM * config["train_count"])


def _set_threads(threads: int = 1) -> None:
    """Every seed trains and samples on ``Config.threads`` torch threads, so its figures do not
    depend on ``--jobs``."""
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_seeds(fn, cfg: Config, jobs: int = 0) -> None:
    """``fn(cfg, seed)`` for every seed, ``jobs`` side by side (0: one per ``cfg.threads`` cores, at
    most one per seed), each process on ``cfg.threads`` torch threads; ``fn`` must be a
    module-level function."""
    jobs = jobs or max(1, min(len(cfg.seeds), (os.cpu_count() or 1) // cfg.threads))
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_set_threads, initargs=(cfg.threads,)) as pool:
            for seed, out in zip(cfg.seeds, pool.map(fn, [cfg] * len(cfg.seeds), cfg.seeds)):
                log.info("seed %s: %s", seed, out)
    else:
        _set_threads(cfg.threads)
        for seed in cfg.seeds:
            log.info("seed %s: %s", seed, fn(cfg, seed))


def run_seed(cfg: Config, seed: int) -> dict:
    """Reference samples, base evaluation and every method for one seed (resumes)."""
    from o1pruner.pipeline import base_model_path, phase_evaluate, phase_sample, phase_train, pruned_model_path, \
        training_examples

    timings: dict[str, float] = {}
    shared = _ctx(job(cfg, seed, f"testbed-s{seed}", cfg.root / f"seed-{seed}" / "shared"))
    if not (shared.manifest.is_done("sample") and shared.manifest.is_done("evaluate-base")):
        sampler = _sampler(shared, base_model_path(shared))
        try:
            t = time.monotonic()
            phase_sample(shared, sampler=sampler)
            timings["sample"] = time.monotonic() - t
            t = time.monotonic()
            phase_evaluate(shared, "base", sampler=sampler)
            timings["evaluate_base"] = time.monotonic() - t
        finally:
            sampler.close()
    for run, (_, training) in methods(cfg).items():
        ctx_dir = cfg.root / f"seed-{seed}" / run
        probe = _ctx(job(cfg, seed, f"testbed-s{seed}-{run}", ctx_dir, training))
        if not probe.manifest.is_done("sample"):
            for key in ("reference/samples.jsonl", "reference/stats.jsonl"):
                probe.store.write_bytes(key, shared.store.read_bytes(key))
            probe.manifest.mark_done("sample", {**shared.manifest.outputs("sample"), "copied_from": shared.store.uri()})
        _, examples = training_examples(probe)
        ctx = _ctx(job(cfg, seed, f"testbed-s{seed}-{run}", ctx_dir,
                       {**training, "epochs": _epochs_for(len(examples), cfg)}))
        t = time.monotonic()
        phase_train(ctx, max_steps=cfg.steps)
        timings[f"train_{run}"] = time.monotonic() - t
        if not ctx.manifest.is_done("evaluate-pruned"):
            sampler = _sampler(ctx, pruned_model_path(ctx))
            try:
                t = time.monotonic()
                phase_evaluate(ctx, "pruned", sampler=sampler)
                timings[f"evaluate_{run}"] = time.monotonic() - t
            finally:
                sampler.close()
    return timings


# --------------------------------------------------------------------------- collecting


def _records(store, label: str) -> dict[str, dict]:
    return {r["problem_id"]: r for r in store.read_jsonl(f"eval/{label}/longthought-heldout.jsonl")}


def collect(cfg: Config) -> dict:
    """Per-problem outcomes of the base model and every method x seed, in problem order."""
    from o1pruner.data import generate_longthought, lower_bounds
    from o1pruner.models import resolve_model

    problems = generate_longthought(cfg.eval_count, 1001, 2, 4, name="longthought-heldout")
    ids = [p.id for p in problems]
    l_min = lower_bounds(problems, resolve_model(cfg.model))  # in the model's own tokens
    out: dict = {"problem_ids": ids, "difficulty": [p.difficulty for p in problems],
                 "l_min": [l_min[i] for i in ids], "base": {}, "methods": {}, "train": {}}
    for seed in cfg.seeds:
        shared = _ctx(job(cfg, seed, f"testbed-s{seed}", cfg.root / f"seed-{seed}" / "shared"))
        base = _records(shared.store, "base")
        out["base"][str(seed)] = _arrays(base, ids)
        out.setdefault("reference", {})[str(seed)] = shared.manifest.outputs("sample")
        ref_stats = {r["problem_id"]: r for r in shared.store.read_jsonl("reference/stats.jsonl")}
        out.setdefault("anatomy", {})[str(seed)] = reference_anatomy(
            list(shared.store.read_jsonl("reference/samples.jsonl")), ref_stats)
        for run, (_, training) in methods(cfg).items():
            ctx = _ctx(job(cfg, seed, f"testbed-s{seed}-{run}", cfg.root / f"seed-{seed}" / run, training))
            out["methods"].setdefault(run, {})[str(seed)] = _arrays(_records(ctx.store, "pruned"), ids)
            outputs = ctx.manifest.outputs("train")
            out["train"].setdefault(run, {})[str(seed)] = {
                k: outputs.get(k) for k in ("examples", "correct_examples", "steps", "final_loss", "seconds")}
    return out


def _arrays(records: dict[str, dict], ids: list[str]) -> dict:
    missing = [i for i in ids if i not in records]
    if missing:
        raise RuntimeError(f"{len(missing)} held-out problems have no output (e.g. {missing[:3]}): "
                           "base and method must be scored on the same problems")
    from o1pruner.testbed.traces import REDUNDANCY_MARKERS, redundancy_profile

    profiles = [redundancy_profile(records[i]["text"]) for i in ids]
    return {"correct": [int(bool(records[i]["correct"])) for i in ids],
            "length": [int(records[i]["length"]) for i in ids],
            "truncated": [int(records[i].get("finish_reason") == "length") for i in ids],
            "profile": {kind: [p[kind] for p in profiles] for kind in REDUNDANCY_MARKERS}}


def reference_anatomy(samples: list[dict], stats: dict[str, dict], lambdas: tuple[float, ...] = (0.0, 2.0)) -> dict:
    """What each kind of redundancy is worth in the reference samples the methods train on.

    For every kind (restate, check, …): the samples that contain it and those that do not, with
    their count, accuracy, mean length and mean O1-Pruner reward (paper Eq. 4, clipped to
    [−2, 4]) at each λ. A kind whose samples earn more reward than those without it is one the
    method keeps; this is how the benchmark explains what O1-Pruner prunes and what it does not.
    Guesses are a kind of their own; every other kind is compared among the samples that solve
    the problem (no guess), so that "without a check" does not mostly mean "a guess".
    """
    from o1pruner.rewards import clip_reward, length_harmonizing_reward
    from o1pruner.testbed.traces import REDUNDANCY_MARKERS, redundancy_profile

    rows = []
    for s in samples:
        st = stats[s["problem_id"]]
        prof = redundancy_profile(s["text"])
        rewards = {f"{lam:g}": clip_reward(length_harmonizing_reward(st["mean_length"], st["mean_accuracy"],
                                                                     s["length"], s["correct"], lam))
                   for lam in lambdas}
        rows.append((prof, bool(s["correct"]), int(s["length"]), rewards))
    out = {}
    for kind in REDUNDANCY_MARKERS:
        for present in (True, False):
            pool = rows if kind == "guess" else [r for r in rows if not r[0]["guess"]]
            sel = [r for r in pool if (r[0][kind] > 0) == present]
            out.setdefault(kind, {})["with" if present else "without"] = {
                "n": len(sel), "share": len(sel) / max(1, len(pool)),
                "accuracy": sum(r[1] for r in sel) / len(sel) if sel else None,
                "mean_length": sum(r[2] for r in sel) / len(sel) if sel else None,
                "mean_reward": {k: sum(r[3][k] for r in sel) / len(sel) if sel else None for k in rows[0][3]},
            }
    return out


# --------------------------------------------------------------------------- statistics


def summarize(per_problem: dict) -> dict:
    """Every figure of the tables, computed from the per-problem outcomes alone."""
    import numpy as np

    from o1pruner.paired import bootstrap_mean_ci, bootstrap_ratio_ci, gap_closed, mcnemar_exact
    from o1pruner.rewards import aes as eq8

    def aes(base_acc: float, base_len: float, acc: float, length: float) -> float | None:
        return eq8(base_acc, base_len, acc, length) if base_acc > 0 else None  # relative Δacc needs base > 0

    seeds = sorted(per_problem["base"])
    l_min = np.array(per_problem["l_min"], float)
    difficulty = np.array(per_problem["difficulty"])
    base_c = np.mean([per_problem["base"][s]["correct"] for s in seeds], axis=0)
    base_l = np.mean([per_problem["base"][s]["length"] for s in seeds], axis=0)
    base = {"accuracy": float(base_c.mean()), "mean_length": float(base_l.mean()),
            "mean_l_min": float(l_min.mean()), "length_over_l_min": float(base_l.mean() / l_min.mean()),
            "truncated": float(np.mean([per_problem["base"][s]["truncated"] for s in seeds])),
            "n": int(base_c.size), "seeds_identical": all(per_problem["base"][s] == per_problem["base"][seeds[0]]
                                                         for s in seeds)}
    base["profile"] = _mean_profile(per_problem["base"], seeds)
    rows = {}
    for run, by_seed in per_problem["methods"].items():
        c = np.mean([by_seed[s]["correct"] for s in seeds], axis=0)
        ln = np.mean([by_seed[s]["length"] for s in seeds], axis=0)
        acc_ci = bootstrap_mean_ci(c - base_c)
        len_ci = bootstrap_ratio_ci(ln, base_l)
        per_seed = []
        for s in seeds:
            sc, sl = np.array(by_seed[s]["correct"]), np.array(by_seed[s]["length"])
            bc, bl = np.array(per_problem["base"][s]["correct"]), np.array(per_problem["base"][s]["length"])
            per_seed.append({
                "seed": int(s), "accuracy": float(sc.mean()), "mean_length": float(sl.mean()),
                "length_change": float(sl.mean() / bl.mean() - 1),
                "gap_closed": gap_closed(bl.mean(), sl.mean(), l_min.mean()),
                "aes": aes(bc.mean(), bl.mean(), sc.mean(), sl.mean()),
                "mcnemar": mcnemar_exact(bc.astype(bool).tolist(), sc.astype(bool).tolist()),
                "truncated": float(np.mean(by_seed[s]["truncated"])),
            })
        by_diff = {}
        for d in sorted(set(difficulty.tolist())):
            m = difficulty == d
            by_diff[str(d)] = {"n": int(m.sum()), "base_accuracy": float(base_c[m].mean()),
                               "accuracy": float(c[m].mean()), "delta_accuracy": bootstrap_mean_ci(c[m] - base_c[m]).to_dict(),
                               "base_length": float(base_l[m].mean()), "length": float(ln[m].mean()),
                               "l_min": float(l_min[m].mean())}
        rows[run] = {
            "accuracy": float(c.mean()), "mean_length": float(ln.mean()),
            "delta_accuracy": acc_ci.to_dict(), "length_change": len_ci.to_dict(),
            "gap_closed": gap_closed(base_l.mean(), ln.mean(), l_min.mean()),
            "aes": aes(base_c.mean(), base_l.mean(), c.mean(), ln.mean()),
            "per_seed": per_seed, "by_difficulty": by_diff, "profile": _mean_profile(by_seed, seeds),
        }
    out = {"base": base, "rows": rows}
    if per_problem.get("anatomy"):
        out["anatomy"] = pool_anatomy(list(per_problem["anatomy"].values()))
    return out


def _mean_profile(by_seed: dict, seeds: list[str]) -> dict[str, float] | None:
    """Mean occurrences per answer of each kind of redundancy, over problems and seeds."""
    if any("profile" not in by_seed[s] for s in seeds):
        return None
    kinds = by_seed[seeds[0]]["profile"]
    return {k: sum(sum(by_seed[s]["profile"][k]) for s in seeds) / sum(len(by_seed[s]["profile"][k]) for s in seeds)
            for k in kinds}


def pool_anatomy(per_seed: list[dict]) -> dict:
    """Per-seed :func:`reference_anatomy` tables pooled (count-weighted means)."""
    out: dict = {}
    for kind in per_seed[0]:
        for side in ("with", "without"):
            cells = [a[kind][side] for a in per_seed if a[kind][side]["n"]]
            n = sum(c["n"] for c in cells)
            total = sum(a[kind]["with"]["n"] + a[kind]["without"]["n"] for a in per_seed)

            def mean(get):
                return sum(c["n"] * get(c) for c in cells) / n if n else None

            out.setdefault(kind, {})[side] = {
                "n": n, "share": n / total if total else 0.0,
                "accuracy": mean(lambda c: c["accuracy"]), "mean_length": mean(lambda c: c["mean_length"]),
                "mean_reward": {lam: mean(lambda c, lam=lam: c["mean_reward"][lam])
                                for lam in per_seed[0][kind][side]["mean_reward"]},
            }
    return out


def _targets(stats: dict) -> list[dict]:
    main = stats["rows"].get("o1-lam2")
    if main is None:
        return []
    baselines = {k: stats["rows"][k] for k in ("sft", "dpo") if k in stats["rows"]}
    checks = [
        ("length change ≤ −45 %", main["length_change"]["mean"] <= TARGETS["length_change"],
         f"{100 * main['length_change']['mean']:.1f} % (95 % CI {100 * main['length_change']['low']:.1f} to "
         f"{100 * main['length_change']['high']:.1f})"),
        ("redundancy gap closed ≥ 75 %", (main["gap_closed"] or 0) >= TARGETS["gap_closed"],
         f"{100 * (main['gap_closed'] or 0):.1f} %"),
        ("accuracy not below base (CI low ≥ −2 points)", main["delta_accuracy"]["low"] >= TARGETS["accuracy_ci_low"],
         f"Δacc {100 * main['delta_accuracy']['mean']:+.1f} points (CI {100 * main['delta_accuracy']['low']:+.1f} to "
         f"{100 * main['delta_accuracy']['high']:+.1f})"),
    ]
    if baselines:
        checks.append(("AES ≥ every baseline's", main["aes"] is not None and all(main["aes"] >= (b["aes"] or -math.inf)
                                                                                 for b in baselines.values()),
                       ", ".join(f"{k} {_num(v['aes'])}" for k, v in baselines.items())
                       + f"; O1-Pruner {_num(main['aes'])}"))
    d = stats.get("lambda0_vs_lambda2")  # None unless both λ=0 and λ=2 ran
    if d is not None:
        checks.append(("λ=0 loses accuracy against λ=2 (CI excludes 0)", d["high"] < 0,
                       f"acc(λ=0) − acc(λ=2) = {100 * d['mean']:+.1f} points (CI {100 * d['low']:+.1f} to "
                       f"{100 * d['high']:+.1f})"))
    return [{"target": t, "met": bool(ok), "measured": m} for t, ok, m in checks]


def lambda_contrast(per_problem: dict) -> dict | None:
    import numpy as np

    from o1pruner.paired import bootstrap_mean_ci

    m = per_problem["methods"]
    if "o1-lam0" not in m or "o1-lam2" not in m:
        return None
    seeds = sorted(m["o1-lam0"])
    a = np.mean([m["o1-lam0"][s]["correct"] for s in seeds], axis=0)
    b = np.mean([m["o1-lam2"][s]["correct"] for s in seeds], axis=0)
    return bootstrap_mean_ci(a - b).to_dict()


# --------------------------------------------------------------------------- rendering


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None, digits: int = 1, sign: bool = True) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:+.{digits}f}" if sign else f"{100 * x:.{digits}f}"


def _ci(d: dict, scale: float = 100) -> str:
    return f"{scale * d['mean']:+.1f} [{scale * d['low']:+.1f}, {scale * d['high']:+.1f}]"


def table_sections(result: dict) -> list[tuple[str, list[str], bool]]:
    """The tables of a results JSON: (title, run names, whether the base row comes first) each. A
    JSON may name its own (``sections``, e.g. bench/rounds.py); else from its config: Table 2 and
    the λ ablation (bench/testbed.py), or the length rewards (bench/length_rewards.py)."""
    if result.get("sections"):
        return [(title, list(runs), True) for title, runs in result["sections"]]
    cfg = result["config"]
    if cfg.get("rewards"):
        return [("Length rewards (the same samples, surrogate and steps; only the reward differs)",
                 ["o1-lam2", *cfg["rewards"]], True)]
    out = [("Table 2: methods", ["sft", "dpo", "o1-lam2"], True)]
    if len(cfg["lambdas"]) > 1:
        out.append(("Table 3: λ ablation (O1-Pruner)", [f"o1-lam{x:g}" for x in cfg["lambdas"]], False))
    return out


def render_markdown(result: dict) -> str:
    cfg, stats, base = result["config"], result["stats"], result["stats"]["base"]
    labels = result["labels"]
    head = ("| method | accuracy | Δacc, points [95 % CI] | mean length | Δlength % [95 % CI] | gap closed | AES | "
            "seeds: Δlength % | seeds: Δacc points |\n|---|---|---|---|---|---|---|---|---|")

    def line(run: str) -> str:
        r = stats["rows"][run]
        seeds_len = " / ".join(_pct(s["length_change"], 1) for s in r["per_seed"])
        seeds_acc = " / ".join(f"{100 * (s['accuracy'] - base['accuracy']):+.1f}" for s in r["per_seed"])
        return (f"| {labels[run]} | {r['accuracy']:.3f} | {_ci(r['delta_accuracy'])} | {r['mean_length']:.1f} | "
                f"{_ci(r['length_change'])} | {_pct(r['gap_closed'], 1, False)} % | {_num(r['aes'])} | {seeds_len} | "
                f"{seeds_acc} |")

    base_line = (f"| Base (reference model) | {base['accuracy']:.3f} | — | {base['mean_length']:.1f} | — | 0 % | — | — | — |")
    sections = [(title, [*([base_line] if with_base else []), *(line(r) for r in runs if r in stats["rows"])])
                for title, runs, with_base in table_sections(result)]
    m = result["machine"]
    out = [
        f"# {result['title']}",
        "",
        f"Reference model `{result['model']['source']}` ({result['model']['parameters'] / 1e6:.2f} M parameters, "
        f"{_origin(result['model']['recipe'])} recipe `{result['model']['digest']}`). Held-out: {base['n']} problems (2–4 operations). Base model: accuracy "
        f"{base['accuracy']:.3f}, mean length {base['mean_length']:.1f} tokens, mean L_min {base['mean_l_min']:.1f} "
        f"({base['length_over_l_min']:.2f}× L_min), {100 * base['truncated']:.1f} % of answers at the "
        f"{cfg['max_tokens']}-token cap.",
        "",
        *(x for title, rows in sections for x in (f"## {title}", "", head, *rows, "")),
        *_profile_section(stats, labels),
        "## Targets",
        "",
        *(f"- {'met' if t['met'] else 'MISSED'}: {t['target']} — {t['measured']}" for t in result["targets"]),
        "",
        "## How",
        "",
        result["setup_text"],
        "",
        "- The 95 % CIs are over problems, each problem's outcome averaged over the seeds: they do not "
        "include the spread between training seeds, which the two seeds columns show. A claim needs both.",
        f"- seeds: {', '.join(str(s) for s in cfg['seeds'])} (reference sampling and training); held-out set seed 1001",
        machine_line(m),
        f"- commit {result['git_commit']}{' with uncommitted changes' if result.get('git_dirty') else ''}; started "
        f"{result.get('started_at')}; command: `{result['command']}`; wall time {result['wall_seconds']:.0f} s",
        f"- per-problem outcomes: `{result['per_problem_file']}`; re-render: "
        f"`python bench/{result['benchmark']}.py --rerender`",
        "",
        f"![{result['benchmark']}]({result['benchmark']}.png)",
    ]
    return "\n".join(out) + "\n"


def _origin(recipe: dict) -> str:
    """How the reference model was made, from its recipe: trained from scratch, or a pretrained
    model warmed up on the traces."""
    if recipe.get("init"):
        return (f"`embedded:{recipe['init']}` warmed up on {recipe['steps']} × {recipe['batch_size']} testbed traces "
                f"(lr {recipe['learning_rate']:g}) by its")
    return "built from its"


def _profile_section(stats: dict, labels: dict) -> list[str]:
    """What each model writes (greedy) and what each kind of redundancy earns in the training data."""
    if stats["base"].get("profile") is None:
        return []
    kinds = list(stats["base"]["profile"])
    out = ["## What was pruned", "",
           "Mean occurrences per greedy answer of each kind of redundancy (`recompute` is \"wait, let me "
           "recompute\", `again` a second solve, `fix` a repaired error), averaged over problems and seeds.", "",
           "| model | " + " | ".join(kinds) + " | mean length |", "|---|" + "---|" * (len(kinds) + 1),
           "| Base | " + " | ".join(f"{stats['base']['profile'][k]:.2f}" for k in kinds)
           + f" | {stats['base']['mean_length']:.1f} |"]
    for run, r in stats["rows"].items():
        if r.get("profile"):
            out.append(f"| {labels[run]} | " + " | ".join(f"{r['profile'][k]:.2f}" for k in kinds)
                       + f" | {r['mean_length']:.1f} |")
    anatomy = stats.get("anatomy")
    if anatomy:
        lams = list(next(iter(anatomy.values()))["with"]["mean_reward"])
        out += ["", "What each kind is worth in the reference samples the methods train on (all seeds pooled): "
                "share of samples that contain it (among the samples that solve the problem, except for the guess itself), then accuracy, mean length and mean clipped O1-Pruner reward "
                "of the samples with it and without it. O1-Pruner raises the probability of what earns more.", "",
                "| kind | share | acc with / without | length with / without | "
                + " | ".join(f"reward λ={lam} with / without" for lam in lams) + " |",
                "|---|---|---|---|" + "---|" * len(lams)]
        for kind, a in anatomy.items():
            w, wo = a["with"], a["without"]
            out.append(f"| {kind} | {100 * w['share']:.1f} % | {_num(w['accuracy'])} / {_num(wo['accuracy'])} | "
                       f"{_num(w['mean_length'], 1)} / {_num(wo['mean_length'], 1)} | "
                       + " | ".join(f"{_num(w['mean_reward'][lam], 2)} / {_num(wo['mean_reward'][lam], 2)}"
                                    for lam in lams) + " |")
    return out + [""]


def render_png(result: dict, path: Path) -> None:
    plt = pyplot()
    stats, labels = result["stats"], result["labels"]
    if result.get("sections"):
        runs = list(dict.fromkeys(r for _, rs, _ in table_sections(result) for r in rs if r in stats["rows"]))
    else:
        runs = [r for r in ("sft", "dpo", *(f"o1-lam{x:g}" for x in result["config"]["lambdas"]),
                            *result["config"].get("rewards", ())) if r in stats["rows"]]
    base = stats["base"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    lengths = [base["mean_length"], *(stats["rows"][r]["mean_length"] for r in runs)]
    names = ["Base", *(labels[r] for r in runs)]
    ax1.barh(names, lengths, color=["#888"] + ["#4c72b0"] * len(runs))
    ax1.axvline(base["mean_l_min"], color="#c44e52", linestyle="--", label=f"L_min (mean {base['mean_l_min']:.1f})")
    ax1.set_xlabel("mean answer length (tokens)")
    ax1.legend(loc="lower right")
    ax1.invert_yaxis()
    for i, r in enumerate(runs):
        d = stats["rows"][r]["delta_accuracy"]
        ax2.errorbar(100 * d["mean"], i, xerr=[[100 * (d["mean"] - d["low"])], [100 * (d["high"] - d["mean"])]],
                     fmt="o", color="#4c72b0", capsize=4)
    ax2.axvline(0, color="#888")
    ax2.set_yticks(range(len(runs)), [labels[r] for r in runs])
    ax2.invert_yaxis()
    ax2.set_xlabel("Δ accuracy vs base, points (95 % paired bootstrap CI)")
    fig.suptitle(f"O1-Pruner on the long-thought testbed ({base['n']} held-out problems, "
                 f"{len(result['config']['seeds'])} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _fast_prompt_note(cfg: Config) -> str:
    from o1pruner.testbed.build import TESTBED_RECIPES

    recipe = TESTBED_RECIPES.get(cfg.model.removeprefix("embedded:"))
    if recipe is not None and recipe.init:
        return (f"The fast-solving prompt baseline is not run: the warm-up trained `{recipe.init}` on traces under "
                "its default system prompt only.")
    return ("The fast-solving prompt baseline does not apply: the testbed model is not an instruction follower "
            "(its chat template shows it no system prompt).")


def _sampling_note(cfg: Config) -> str:
    if cfg.temperature == 1.0 and cfg.top_p == 1.0:
        return ("the reference model's own distribution: its redundancy, errors and short-cuts appear at the "
                "rates it learned")
    if (cfg.temperature, cfg.top_p) == (0.5, 0.8):
        return ("the authors' sampling: the low-probability tails (most wrong step results, the guess) are cut, "
                "the redundancy choices stay")
    return "a tuning setting"


def setup_text(cfg: Config) -> str:
    return (
        f"Training problems: {cfg.train_count} per seed (generator seed 100 + seed), K = {cfg.k} reference samples "
        f"each at temperature {cfg.temperature:g}, top-p {cfg.top_p:g} ({_sampling_note(cfg)}), max "
        f"{cfg.max_tokens} tokens. Every "
        f"method: {cfg.steps} AdamW optimizer steps of batch {cfg.batch_size} from the reference model, lr "
        f"{cfg.learning_rate:g}, cosine with 10 % warm-up, cutoff {cfg.max_length} tokens, fp32 on CPU, the same "
        "for all methods so that only the objective differs. O1-Pruner: 2 of the K samples per problem (seeded "
        "shuffle), reward L̄_ref/L − 1 + λ(A − Ā_ref) clipped to [−2, 4] and standardised, PPO-clipped "
        "sequence ratio ε = 0.2. SFT: the 2 shortest correct samples per problem. DPO: each of those over the "
        "problem's longest sample (β = 0.1). " + _fast_prompt_note(cfg) + " Evaluation: greedy, one "
        "answer per problem; an answer counts only with a final \\boxed{} and when it stopped before the cap. "
        "AES: paper Eq. 8 as stated (α = 1, β = 3, γ = 5). CIs: 95 % percentile bootstrap over problems "
        "(10 000 resamples) of per-problem differences averaged over seeds."
        + (" Length rewards other than O1-Pruner's (" + ", ".join(cfg.rewards) + "): the same surrogate, "
           "samples and steps, each reward formed per problem over its K samples and centred there "
           "(o1pruner.length_rewards; formulas in bench/length_rewards.py)." if cfg.rewards else "")
    )


def table_rows(stats: dict, labels: dict) -> list[dict]:
    """The rows every results JSON carries (``method``, ``accuracy``, ``mean_length``, ``aes``)."""
    base = stats["base"]
    rows = [{"method": "Baseline", "accuracy": base["accuracy"], "mean_length": base["mean_length"], "aes": None}]
    for run, r in stats["rows"].items():
        rows.append({"method": labels[run], "run": run, "accuracy": r["accuracy"], "mean_length": r["mean_length"],
                     "aes": r["aes"], "length_change": r["length_change"]["mean"],
                     "accuracy_change": r["delta_accuracy"]["mean"], "gap_closed": r["gap_closed"]})
    return rows


def build_result(cfg: Config, record: dict, results_dir: Path = RESULTS, name: str = NAME,
                 title: str = TITLE, per_problem: dict | None = None, labels: dict | None = None) -> dict:
    """The results JSON: per-problem outcomes (``collect(cfg)`` unless given), their statistics,
    the model, the run record. Other benchmarks on the testbed pass their own ``per_problem``
    (same layout) and ``labels`` (run name → table label)."""
    if per_problem is None:
        per_problem = collect(cfg)
    results_dir.mkdir(parents=True, exist_ok=True)
    per_problem_path = results_dir / f"{name}_per_problem.json.gz"
    with gzip.GzipFile(per_problem_path, "wb", mtime=0) as fh:
        fh.write(json.dumps(per_problem, separators=(",", ":")).encode())
    stats = summarize(per_problem)
    stats["lambda0_vs_lambda2"] = lambda_contrast(per_problem)
    labels = labels or {k: v[0] for k, v in methods(cfg).items()}
    result = {
        "benchmark": name, "title": title,
        "seed": list(cfg.seeds), "config": asdict(cfg), "labels": labels, "rows": table_rows(stats, labels),
        "model": model_record(cfg.model),
        "stats": stats, "train": per_problem["train"], "reference": per_problem["reference"],
        "per_problem_file": f"bench/results/{per_problem_path.name}", "setup_text": setup_text(cfg),
        **record,
    }
    result["targets"] = _targets(stats)
    return result


def model_record(source: str) -> dict:
    """The testbed model a result was measured on: its recipe, build figures and build identity."""
    from o1pruner.models import ensure_embedded
    from o1pruner.testbed.build import build_identity

    model_dir = ensure_embedded(source.split(":", 1)[1])
    info = json.loads((model_dir / "testbed.json").read_text())
    return {"source": source, "digest": info["digest"], "parameters": info["build"]["parameters"],
            "recipe": info["recipe"], "build": info["build"], "identity": build_identity(model_dir)}


def render_results(data: dict, out_dir: Path | None = None) -> None:
    """Write <benchmark>.md / <benchmark>.png from the results JSON alone."""
    out = out_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    name = data["benchmark"]
    (out / f"{name}.md").write_text(render_markdown(data))
    render_png(data, out / f"{name}.png")
    stamp_png(out / f"{name}.png", data)


def run_cell(data: dict, run: str) -> str:
    """One run's figures in a docs/benchmarks.md cell: length change, Δacc with its CI, gap closed, AES."""
    r = data["stats"]["rows"][run]
    d = r["delta_accuracy"]
    return (f"{data['labels'][run]}: length {100 * r['length_change']['mean']:+.1f} %, Δacc "
            f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}], gap closed "
            f"{100 * (r['gap_closed'] or 0):.0f} %, AES {_num(r['aes'], 2)}")


def docs_summary(data: dict) -> dict:
    """The docs/benchmarks.md row."""
    r, base = data["stats"]["rows"]["o1-lam2"], data["stats"]["base"]
    missed = [t["target"] for t in data["targets"] if not t["met"]]
    return {
        "setup": (f"long-thought testbed, {base['n']} held-out problems, {len(data['seed'])} seeds, "
                  f"{data['config']['steps']} optimizer steps per method"),
        "target": "length ≤ −45 %, gap closed ≥ 75 %, Δacc CI low ≥ −2 points, AES ≥ baselines, λ=0 < λ=2",
        "measured": (f"length {100 * r['length_change']['mean']:+.1f} %, gap closed {100 * (r['gap_closed'] or 0):.0f} %, "
                     f"Δacc {100 * r['delta_accuracy']['mean']:+.1f} points [{100 * r['delta_accuracy']['low']:+.1f}, "
                     f"{100 * r['delta_accuracy']['high']:+.1f}], AES {_num(r['aes'], 2)}"),
        "verdict": "met" if not missed else "missed: " + "; ".join(missed),
    }


def main(argv: list[str] | None = None, defaults: Config = Config(), name: str = NAME, title: str = TITLE,
         doc: str | None = __doc__, script: str = __file__) -> int:
    """Run (resuming) and write bench/results/<name>.*; other benchmarks on the testbed call it with
    their own ``defaults`` (methods), ``name`` and ``title``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerender", action="store_true", help="only rewrite the md/png from the committed JSON")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    ap.add_argument("--eval-count", type=int, default=defaults.eval_count)
    ap.add_argument("--train-count", type=int, default=defaults.train_count)
    ap.add_argument("--steps", type=int, default=defaults.steps)
    ap.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    ap.add_argument("--temperature", type=float, default=defaults.temperature,
                    help="reference sampling temperature (the authors': 0.5)")
    ap.add_argument("--top-p", type=float, default=defaults.top_p, help="reference sampling top-p (the authors': 0.8)")
    ap.add_argument("--tag", default=defaults.tag)
    ap.add_argument("--model", default=defaults.model, help="the reference model (e.g. embedded:longthought-concise)")
    ap.add_argument("--only", default="", help="comma-separated run names (e.g. o1-lam2,sft) for tuning")
    ap.add_argument("--fresh", action="store_true", help="delete this tag's working data first")
    ap.add_argument("--jobs", type=int, default=0,
                    help="seeds run side by side, one torch thread each (default: one per core, at most one per "
                         "seed); the results do not depend on it")
    args = ap.parse_args(argv)
    if args.rerender:
        render_results(json.loads((RESULTS / f"{name}.json").read_text()))
        return 0
    record = start(argv, script=script)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = replace(defaults, seeds=tuple(args.seeds), eval_count=args.eval_count, train_count=args.train_count,
                  steps=args.steps, learning_rate=args.learning_rate, tag=args.tag,
                  temperature=args.temperature, top_p=args.top_p, model=args.model,
                  only=tuple(x for x in args.only.split(",") if x))
    if args.fresh and cfg.root.exists():
        shutil.rmtree(cfg.root)
    run_seeds(run_seed, cfg, args.jobs)
    publish(build_result(cfg, finish(record), name=name, title=title))
    return 0


def build_row(data: dict, file: str, run: str = "o1-lam2") -> str:
    """One row of docs/testbed.md's *One recipe, two builds* table from a results JSON: where the
    model was built, its build's final loss, the base model and ``run``'s pooled and per-seed
    figures."""
    base, r = data["stats"]["base"], data["stats"]["rows"][run]
    a, seeds = r["delta_accuracy"], r["per_seed"]
    return (f"| `{file}` | {data['machine']['cpu']} | {data['model']['build']['final_loss']} | "
            f"{base['accuracy']:.3f} | {base['mean_length']:.1f} | {100 * r['length_change']['mean']:+.1f} % | "
            f"{100 * a['mean']:+.1f} [{100 * a['low']:+.1f}, {100 * a['high']:+.1f}] | "
            f"{' / '.join(format(100 * (s['accuracy'] - base['accuracy']), '+.1f') for s in seeds)} |")


def tuning_row(data: dict, file: str, run: str | None = None) -> str:
    """One row of bench/results/tuning/README.md from a results JSON: where the model was built,
    its build's final loss, seeds × held-out problems, training problems (and the epochs the
    optimizer steps make of their 2 samples each), steps, learning rate, the reference sampling
    (temperature / top-p), and ``run``'s figures (default: O1-Pruner λ = 2, or a rounds run's
    last round)."""
    rows, c = data["stats"]["rows"], data["config"]
    run = run or ("o1-lam2" if "o1-lam2" in rows else max((k for k in rows if k.startswith("round")),
                                                          key=lambda k: int(k[5:])))
    r, a = rows[run], rows[run]["delta_accuracy"]
    return (f"| `{file}` | {data['machine']['cpu']} | {data['model']['build']['final_loss']} | "
            f"{len(c['seeds'])} × {c['eval_count']} | {c['train_count']} ({epochs(c):.1f}) | {c['steps']} | "
            f"{c['learning_rate']:g} | {c['temperature']:g} / {c.get('top_p', 1.0):g} | {run} | "
            f"{100 * r['length_change']['mean']:+.1f} % | "
            f"{100 * a['mean']:+.1f} [{100 * a['low']:+.1f}, {100 * a['high']:+.1f}] |")


def publish(result: dict, render=None) -> None:
    """Write bench/results/<benchmark>.json, render its md / png (``render``, default
    :func:`render_results`) and print the md."""
    name = result["benchmark"]
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    (render or render_results)(result)
    print((RESULTS / f"{name}.md").read_text())


if __name__ == "__main__":
    raise SystemExit(main())
