"""What the testbed's reference model can do when it is kept from writing some kinds of redundancy.

The testbed's redundancy comes in known kinds (restate, check, recompute, again), each opened by
its own word (:data:`o1pruner.testbed.traces.REDUNDANCY_MARKERS`). Greedy decoding of the
reference model with the opening words of a chosen set of kinds banned (transformers'
``bad_words_ids``, passed through :class:`o1pruner.sampling.hf.HFSampler`) gives the model's own
answers without that redundancy: no training, nothing else changed. Over all 16 sets of kinds
this is the length–accuracy frontier that pruning by *structure* can reach on this model, an
oracle no training method has (it needs to know what the redundancy looks like):

* which kinds of redundancy carry accuracy for this model and which cost it (the greedy
  answers' accuracy with and without each kind, paired on the same problems);
* whether the targets of the testbed issue (length −45 % or better, 75 % of the redundancy gap
  closed, accuracy CI low ≥ −2 points) are reachable at all by leaving redundancy out;
* how far a trained model is from the oracle of the same structure, i.e. how much accuracy
  training cost beyond what the structure itself costs (the O1-Pruner λ = 2 runs of the same
  build, from the committed testbed results, are set beside it).

The guess short-cut is banned in every row except the base: it is not redundancy but a wrong
path, and greedy decoding of the base model never takes it. Every row is scored with the
pipeline's own evaluation (:func:`o1pruner.pipeline.phase_evaluate`, the testbed benchmark's
held-out set and grading), and compared with the unmodified model on the same problems (95 %
paired bootstrap CIs, McNemar). Greedy decoding is deterministic, so there are no seeds: the
CIs over problems are the whole noise.

    python bench/redundancy_oracle.py              # run (resumes) and write bench/results/redundancy_oracle.*
    python bench/redundancy_oracle.py --rerender   # rewrite the md / png from the committed JSON
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import testbed  # noqa: E402
from common import RESULTS, finish, machine_line, pyplot, stamp_png, start  # noqa: E402

log = logging.getLogger("bench.redundancy_oracle")
NAME = "redundancy_oracle"
TITLE = "The reference model kept from writing chosen kinds of redundancy (decode-time oracle)"
KINDS = ("restate", "check", "recompute", "again")
#: Short codes of the kinds, for job names (at most 40 characters).
CODES = {"restate": "rs", "check": "ck", "recompute": "rc", "again": "ag", "nothing": "none"}
SHORT_CUT = "guess"
#: The rounds issue's target: 2 rounds close ≥ 90 % of the redundancy gap with the guard passing.
ROUNDS_GAP = 0.90
#: Committed testbed results whose O1-Pruner λ = 2 row is set beside the oracle when they were
#: measured on the same build of the model.
O1_RESULTS = ("bench/results/testbed.json", "bench/results/tuning/testbed-intel.json",
              "bench/results/tuning/testbed-intel-t1536.json")


def left_out_sets() -> list[tuple[str, ...]]:
    """Every set of kinds to leave out, smallest first (the empty set: only the guess is banned)."""
    return [combo for size in range(len(KINDS) + 1) for combo in itertools.combinations(KINDS, size)]


def run_name(left_out: tuple[str, ...]) -> str:
    return "without-" + "-".join(left_out) if left_out else "without-nothing"


def label(left_out: tuple[str, ...]) -> str:
    return "without " + " + ".join(left_out) if left_out else "without nothing (guess banned)"


def banned_words(left_out: tuple[str, ...]) -> list[str]:
    """The opening words to ban for ``left_out`` (and the guess's, always)."""
    from o1pruner.testbed.traces import REDUNDANCY_MARKERS

    return [REDUNDANCY_MARKERS[k] for k in (*left_out, SHORT_CUT)]


def _job(cfg: testbed.Config, run: str) -> dict:
    short = "-".join(CODES[w] for w in run.split("-")[1:]) if run != "base" else "base"  # names: ≤ 40 chars
    return testbed.job(cfg, 0, f"oracle-{short}", cfg.root / run)


def evaluate(cfg: testbed.Config) -> None:
    """The base model's greedy evaluation, then one per set of kinds left out (resumes)."""
    from o1pruner.pipeline import base_model_path, phase_evaluate
    from o1pruner.sampling.hf import HFSampler

    loaded = None  # the model, loaded once, shared by every structure's sampler
    try:
        for run, words in [("base", [])] + [(run_name(s), banned_words(s)) for s in left_out_sets()]:
            ctx = testbed._ctx(_job(cfg, run))
            if ctx.manifest.is_done("evaluate-base"):
                continue
            loaded = loaded or HFSampler.from_pretrained(base_model_path(ctx), batch_size=64)
            ids = [[loaded.tokenizer.convert_tokens_to_ids(w)] for w in words]
            sampler = HFSampler(loaded.model, loaded.tokenizer, batch_size=64,
                                generate_kwargs={"bad_words_ids": ids} if ids else None)
            log.info("%s: banning %s", run, words or "nothing")
            phase_evaluate(ctx, "base", sampler=sampler)
    finally:
        if loaded is not None:
            loaded.close()


def collect(cfg: testbed.Config) -> dict:
    """Per-problem outcomes in the testbed benchmark's layout (one "seed": greedy decoding)."""
    from o1pruner.data import generate_longthought

    from o1pruner.testbed.traces import ERROR_CAUSES, error_cause

    problems = generate_longthought(cfg.eval_count, 1001, 2, 4, name="longthought-heldout")
    ids = [p.id for p in problems]
    records = {run: testbed._records(testbed._ctx(_job(cfg, run)).store, "base")
               for run in ["base", *map(run_name, left_out_sets())]}
    causes = {}
    for run, recs in records.items():
        counts = dict.fromkeys(ERROR_CAUSES, 0)
        for p in problems:
            if not recs[p.id]["correct"]:
                counts[error_cause(p.meta["ops"], int(p.answer), recs[p.id]["text"])] += 1
        causes[run] = counts
    rec = lambda run: testbed._arrays(records[run], ids)  # noqa: E731
    return {"problem_ids": ids, "difficulty": [p.difficulty for p in problems],
            "l_min": [p.meta["l_min"] for p in problems], "base": {"0": rec("base")},
            "methods": {run_name(s): {"0": rec(run_name(s))} for s in left_out_sets()}, "error_causes": causes}


def o1_pruner_beside(identity: dict, repo: Path = RESULTS.parents[1]) -> list[dict]:
    """The O1-Pruner λ = 2 rows of committed testbed results measured on the same build."""
    from o1pruner.testbed.build import same_build

    out = []
    for file in O1_RESULTS:
        data = json.loads((repo / file).read_text())
        model = data["model"]
        theirs = model.get("identity") or {**model["build"], "digest": model["digest"]}
        if not same_build(identity, theirs):
            continue
        r = data["stats"]["rows"]["o1-lam2"]
        c = data["config"]
        out.append({"file": file, "seeds": len(r["per_seed"]), "train_count": c["train_count"],
                    "epochs": testbed.epochs(c), "accuracy": r["accuracy"],
                    "mean_length": r["mean_length"], "length_change": r["length_change"],
                    "delta_accuracy": r["delta_accuracy"], "gap_closed": r["gap_closed"], "profile": r["profile"],
                    "per_seed_accuracy": [s["accuracy"] for s in r["per_seed"]]})
    return out


def verdicts(stats: dict) -> list[dict]:
    """Which rows reach the testbed issue's targets for a pruned model (length, gap, accuracy)."""
    t = testbed.TARGETS
    out = []
    for run, r in stats["rows"].items():
        out.append({"run": run, "length": bool(r["length_change"]["mean"] <= t["length_change"]),
                    "gap": bool((r["gap_closed"] or 0) >= t["gap_closed"]),
                    "gap_rounds": bool((r["gap_closed"] or 0) >= ROUNDS_GAP),
                    "accuracy": bool(r["delta_accuracy"]["low"] >= t["accuracy_ci_low"])})
    return out


def bracket(profile: dict[str, float], base_profile: dict[str, float]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The oracle structures around a trained model's: the kinds it no longer writes at all, and
    those plus the kinds it writes less often than the base (each left-out set in KINDS order)."""
    gone = tuple(k for k in KINDS if profile.get(k, 0) < 0.05)
    fewer = tuple(k for k in KINDS if k in gone or profile.get(k, 0) < base_profile.get(k, 0) - 0.05)
    return gone, fewer


def difficulty_mixture(per_problem: dict, target_gap: float = ROUNDS_GAP, max_drop: float = 0.01) -> dict | None:
    """The best oracle a model could be that picks its structure by difficulty (the number of
    operations is in the prompt): one structure per difficulty, every combination, of those whose
    pooled length closes ≥ ``target_gap`` of the redundancy gap the one whose worst difficulty
    loses the least accuracy (point estimates; ties: shorter). Its per-problem outcomes go
    through the accuracy guard like a trained model's. None when no combination closes the gap."""
    from o1pruner.guard import accuracy_guard
    from o1pruner.paired import gap_closed

    diff = np.asarray([str(d) for d in per_problem["difficulty"]])
    buckets = sorted(set(diff.tolist()))
    masks = [diff == b for b in buckets]
    base = per_problem["base"]["0"]
    base_c, base_l = np.asarray(base["correct"], float), np.asarray(base["length"], float)
    l_min = float(np.mean(per_problem["l_min"]))
    runs = {run: (np.asarray(v["0"]["correct"], float), np.asarray(v["0"]["length"], float))
            for run, v in per_problem["methods"].items()}
    # per (run, bucket): summed length and Δacc, so that each combination is a few additions
    length = {(r, i): float(ln[m].sum()) for r, (_, ln) in runs.items() for i, m in enumerate(masks)}
    delta = {(r, i): float((c[m] - base_c[m]).mean()) for r, (c, _) in runs.items() for i, m in enumerate(masks)}
    best = None
    for combo in itertools.product(runs, repeat=len(buckets)):
        mean_len = sum(length[r, i] for i, r in enumerate(combo)) / base_c.size
        if gap_closed(base_l.mean(), mean_len, l_min) < target_gap:
            continue
        key = (min(delta[r, i] for i, r in enumerate(combo)), -mean_len)
        if best is None or key > best[0]:
            best = (key, combo, mean_len)
    if best is None:
        return None
    _, combo, mean_len = best
    correct = np.zeros_like(base_c)
    for m, run in zip(masks, combo):
        correct[m] = runs[run][0][m]
    guard = accuracy_guard(base_c.astype(bool).tolist(), correct.astype(bool).tolist(), diff.tolist(), max_drop=max_drop)
    return {"structures": dict(zip(buckets, combo)), "mean_length": mean_len,
            "gap_closed": gap_closed(base_l.mean(), mean_len, l_min), "accuracy": float(correct.mean()),
            "delta_accuracy": {b: delta[r, i] for i, (b, r) in enumerate(zip(buckets, combo))},
            "guard": {"passed": guard["passed"], "failed": guard["failed"],
                      "buckets": {b: g["deltaAccuracy"] for b, g in guard["buckets"].items()}}}


def build_result(cfg: testbed.Config, record: dict, results_dir: Path = RESULTS) -> dict:
    per_problem = collect(cfg)
    path = results_dir / f"{NAME}_per_problem.json.gz"
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(json.dumps(per_problem, separators=(",", ":")).encode())
    stats = testbed.summarize(per_problem)
    labels = {run_name(s): label(s) for s in left_out_sets()}
    model = testbed.model_record(cfg.model)
    return {
        "benchmark": NAME, "title": TITLE, "seed": None, "config": {"eval_count": cfg.eval_count,
                                                                   "max_tokens": cfg.max_tokens, "model": cfg.model},
        "labels": labels, "left_out": {run_name(s): list(s) for s in left_out_sets()},
        "rows": testbed.table_rows(stats, labels), "model": model, "stats": stats,
        "verdicts": verdicts(stats), "o1_pruner_same_build": o1_pruner_beside(model["identity"]),
        "error_causes": per_problem["error_causes"],
        "per_problem_file": f"bench/results/{path.name}", **record,
    }


# --------------------------------------------------------------------------- rendering


def _row(label_text: str, r: dict) -> str:
    a, ln, (seed,) = r["delta_accuracy"], r["length_change"], r["per_seed"]  # greedy: one "seed"
    m = seed["mcnemar"]
    mc = f"{m['gained']} / {m['lost']} (p {m['p_value']:.2g})"
    prof = r.get("profile") or {}
    return (f"| {label_text} | {r['accuracy']:.3f} | {100 * a['mean']:+.1f} [{100 * a['low']:+.1f}, {100 * a['high']:+.1f}] "
            f"| {mc} | {r['mean_length']:.1f} | {100 * ln['mean']:+.1f} | {100 * (r['gap_closed'] or 0):.0f} % | "
            + " | ".join(f"{prof.get(k, 0):.2f}" for k in KINDS) + " |")


def _points(d: dict) -> str:
    """A paired difference in accuracy points with its CI, ``+3.5 points [+0.7, +6.3]``."""
    return f"{100 * d['mean']:+.1f} points [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def targets_text() -> str:
    t = testbed.TARGETS
    return (f"length ≤ {100 * t['length_change']:.0f} %, gap closed ≥ {100 * t['gap_closed']:.0f} %, "
            f"Δacc CI low ≥ {100 * t['accuracy_ci_low']:.0f} points")


def best_within_accuracy(rows: dict, runs: list[str] | None = None) -> str:
    """Of ``runs`` (default: every row whose Δacc CI low keeps the accuracy target), the one that
    closes the most of the redundancy gap."""
    runs = runs or [run for run, r in rows.items() if r["delta_accuracy"]["low"] >= testbed.TARGETS["accuracy_ci_low"]]
    return max(runs, key=lambda run: rows[run]["gap_closed"] or 0)


def findings(data: dict) -> list[str]:
    """The sentences the md states, each computed from the JSON."""
    stats, rows = data["stats"], data["stats"]["rows"]
    meets = [v["run"] for v in data["verdicts"] if v["length"] and v["gap"] and v["accuracy"]]
    lines = []
    for kind in KINDS:
        r = rows[run_name((kind,))]
        a = r["delta_accuracy"]
        effect = "costs" if a["high"] < 0 else ("raises" if a["low"] > 0 else "does not change (CI contains 0)")
        lines.append(f"- Leaving out only `{kind}` {effect} accuracy: {_points(a)}, length "
                     f"{100 * r['length_change']['mean']:+.1f} %.")
    best = best_within_accuracy(rows, meets or None)
    r = rows[best]
    closes = (f"*{data['labels'][best]}*: length {100 * r['length_change']['mean']:+.1f} %, gap closed "
              f"{100 * (r['gap_closed'] or 0):.0f} %, Δacc {_points(r['delta_accuracy'])}")
    if meets:
        lines.append(f"- {len(meets)} of {len(rows)} structures reach all three targets ({targets_text()}); the one "
                     f"that closes the most of the gap is {closes}. So the targets are reachable on this model by "
                     "leaving redundancy out; a method that misses them has not found that structure, or has cost "
                     "accuracy on the way.")
    else:
        lines.append(f"- No structure reaches all three targets ({targets_text()}). The most of the gap any structure "
                     f"closes within the accuracy bound: {closes}; every structure that closes more loses accuracy "
                     "beyond it. The length target alone is reachable with accuracy kept: "
                     + "; ".join(f"*{data['labels'][v['run']]}* {100 * rows[v['run']]['length_change']['mean']:+.1f} %, "
                                 f"Δacc {100 * rows[v['run']]['delta_accuracy']['mean']:+.1f}"
                                 for v in data["verdicts"] if v["length"] and v["accuracy"]) + ".")
    far = [v["run"] for v in data["verdicts"] if v["gap_rounds"]]
    kept = [v["run"] for v in data["verdicts"] if v["gap_rounds"] and v["accuracy"]]
    most = max((r for r in rows if r in data["left_out"]), key=lambda r: rows[r]["gap_closed"] or 0)
    lines.append(f"- Closing ≥ {100 * ROUNDS_GAP:.0f} % of the gap (the rounds target) takes "
                 + (" or ".join(f"*{data['labels'][run]}* (Δacc {_points(rows[run]['delta_accuracy'])})" for run in far)
                    + (": on this model leaving redundancy out reaches it with the accuracy kept (the testbed's "
                       "bound on the CI's low end)." if kept else
                       ": on this model no way of leaving redundancy out reaches it without losing accuracy")
                    if far else
                    f"more than any structure gives: the most any closes is {100 * rows[most]['gap_closed']:.1f} % "
                    f"(*{data['labels'][most]}*, accuracy {rows[most]['accuracy']:.3f}), so on this model it is out of "
                    "reach at any accuracy")
                 + ("" if kept else "; a pruned model would have to compute better than its reference, which pruning "
                    "does not ask of it."))
    causes, base_c = data["error_causes"], data["error_causes"]["base"]
    lines.append(f"- Why answers are wrong (`error_cause` in `o1pruner.testbed.traces`, read off the first solve): of the "
                 f"base model's {sum(base_c.values())} wrong answers, {base_c['after-first-solve']} had a right first solve "
                 f"(the answer takes the second solve's result, and that is wrong) and {base_c['operand']} copied a wrong "
                 f"operand; without the restatement, {causes[run_name(('restate',))]['operand']} answers copy a wrong "
                 f"operand; without the second solve, {sum(causes[run_name(('again',))].values())} answers are wrong in all.")
    everything = rows[run_name(KINDS)]
    operand = causes[run_name(KINDS)]["operand"]
    lines.append(f"- Every kind left out (the minimal trace's structure): length {everything['mean_length']:.1f} against "
                 f"mean L_min {stats['base']['mean_l_min']:.1f}, accuracy {everything['accuracy']:.3f} "
                 f"(Δ {100 * everything['delta_accuracy']['mean']:+.1f} points); {operand} answers copy a wrong operand"
                 + (" (the model loses its place in the chain without the structure it was trained with)."
                    if everything["mean_length"] > 1.2 * stats["base"]["mean_l_min"] else "."))
    return lines


def beside_lines(data: dict) -> list[str]:
    """Each O1-Pruner result against the oracle rows of the structure it writes."""
    rows, base = data["stats"]["rows"], data["stats"]["base"]
    out = []
    for o in data["o1_pruner_same_build"]:
        gone, fewer = bracket(o["profile"], base["profile"] or {})
        runs = list(dict.fromkeys(run_name(s) for s in (gone, fewer)))
        around = " and ".join(f"*{data['labels'][run]}* (accuracy {rows[run]['accuracy']:.3f}, length "
                              f"{rows[run]['mean_length']:.1f})" for run in runs)
        worst = min(rows[run]["accuracy"] for run in runs)
        writes = ", ".join(f"{k} {o['profile'].get(k, 0):.2f}" for k in KINDS)
        out.append(f"- `{o['file']}`: it writes {writes} per answer, "
                   f"between the oracle structures {around}. Its accuracy, {o['accuracy']:.3f} at length "
                   f"{o['mean_length']:.1f}, is {100 * (worst - o['accuracy']):.1f} points below the lower of them: "
                   "what training cost beyond what leaving that redundancy out costs the reference model itself.")
    return out


def render_markdown(data: dict) -> str:
    stats, base = data["stats"], data["stats"]["base"]
    m = data["model"]
    head = ["| structure | accuracy | Δacc, points [95 % CI] | McNemar gained / lost | mean length | Δlength % "
            "| gap closed | " + " | ".join(KINDS) + " |", "|---" * (7 + len(KINDS)) + "|",
            f"| base (nothing banned) | {base['accuracy']:.3f} | — | — | {base['mean_length']:.1f} | — | 0 % | "
            + " | ".join(f"{(base['profile'] or {}).get(k, 0):.2f}" for k in KINDS) + " |"]
    table = head + [_row(data["labels"][run], r) for run, r in stats["rows"].items()]
    beside = ["| results | seeds | training problems (epochs) | accuracy | Δacc, points [95 % CI] | mean length | "
              "Δlength % | gap closed | " + " | ".join(KINDS) + " |", "|---" * (8 + len(KINDS)) + "|"]
    for o in data["o1_pruner_same_build"]:
        a = o["delta_accuracy"]
        beside.append(f"| `{o['file']}` | {o['seeds']} | {o['train_count']} ({o['epochs']:.1f}) | {o['accuracy']:.3f} | {100 * a['mean']:+.1f} [{100 * a['low']:+.1f}, "
                      f"{100 * a['high']:+.1f}] | {o['mean_length']:.1f} | {100 * o['length_change']['mean']:+.1f} | "
                      f"{100 * (o['gap_closed'] or 0):.0f} % | " + " | ".join(f"{o['profile'].get(k, 0):.2f}" for k in KINDS)
                      + " |")
    lines = [
        f"# {data['title']}", "",
        f"Reference model `{m['source']}` (recipe `{m['digest']}`), the build of {m['build'].get('cpu') or data['machine']['cpu']} "
        f"(final build loss {m['build']['final_loss']}, weights SHA-256 `{(m['identity'] or {}).get('weights_sha256', '?')[:12]}`). "
        f"Held-out: {base['n']} problems (2–4 operations), greedy, max {data['config']['max_tokens']} tokens; mean L_min "
        f"{base['mean_l_min']:.1f}. Each row bans the opening words of the kinds it names (and the guess's) while "
        "decoding; the last four columns are the mean occurrences of each kind per answer.", "",
        *table, "",
        "Wrong answers by cause (`error_cause`): a step with another operand than the problem's, a wrong result, "
        "a first solve that ended right, anything else.", "",
        "| structure | wrong | operand | arithmetic | after-first-solve | other |", "|---|---|---|---|---|---|",
        *(f"| {'base (nothing banned)' if run == 'base' else data['labels'][run]} | {sum(c.values())} | "
          + " | ".join(str(c[k]) for k in ("operand", "arithmetic", "after-first-solve", "other")) + " |"
          for run, c in data["error_causes"].items()), "",
        "## What it shows", "", *findings(data), "",
        "## O1-Pruner (λ = 2) on the same build", "",
        ("The O1-Pruner λ = 2 rows of the testbed benchmark's runs on this build (settings in "
         "`bench/results/tuning/README.md`), each pooled over its seeds (per-seed accuracy: "
         + "; ".join(f"`{o['file']}` " + " / ".join(f"{a:.3f}" for a in o["per_seed_accuracy"])
                     for o in data["o1_pruner_same_build"]) + ").") if data["o1_pruner_same_build"]
        else "No committed testbed result was measured on this build.", "",
        *(beside if data["o1_pruner_same_build"] else []), "", *beside_lines(data), "",
        "## How", "",
        "Every row is the pipeline's evaluation phase (`phase_evaluate`) of the unmodified reference model with "
        "transformers' `bad_words_ids` set on the in-process sampler; answers count only with a final \\boxed{} "
        "and when they stopped before the cap. CIs: 95 % percentile bootstrap over problems (10 000 resamples) of "
        "per-problem differences from the base; McNemar's exact test on the discordant problems. Gap closed: "
        "(L_base − L) / (L_base − L_min). Targets (the testbed issue's, for a pruned model): length ≤ −45 %, "
        "gap closed ≥ 75 %, Δacc CI low ≥ −2 points.", "",
        machine_line(data["machine"]),
        f"- commit {data['git_commit']}{' with uncommitted changes' if data.get('git_dirty') else ''}; started "
        f"{data['started_at']}; command: `{data['command']}`; wall time {data['wall_seconds']:.0f} s",
        f"- per-problem outcomes: `{data['per_problem_file']}`; re-render: `python bench/redundancy_oracle.py --rerender`",
        "", f"![{NAME}]({NAME}.png)",
    ]
    return "\n".join(lines) + "\n"


def render_png(data: dict, path: Path) -> None:
    plt = pyplot()
    stats = data["stats"]
    fig, ax = plt.subplots(figsize=(8, 5))
    base = stats["base"]
    ax.scatter([base["mean_length"]], [base["accuracy"]], marker="*", s=160, color="black", label="base", zorder=3)
    for run, r in stats["rows"].items():
        a = r["delta_accuracy"]
        ax.errorbar([r["mean_length"]], [r["accuracy"]], yerr=[[a["mean"] - a["low"]], [a["high"] - a["mean"]]],
                    fmt="o", color="tab:blue", capsize=2)
        ax.annotate(data["left_out"][run] and "−" + ",".join(k[:3] for k in data["left_out"][run]) or "−guess",
                    (r["mean_length"], r["accuracy"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    for o in data["o1_pruner_same_build"]:
        ax.scatter([o["mean_length"]], [o["accuracy"]], marker="s", color="tab:red", label=f"O1-Pruner λ=2 ({o['file'].split('/')[-1]})")
    ax.axvline(base["mean_l_min"], color="gray", ls=":", label="mean L_min")
    ax.axvline(base["mean_length"] * (1 + testbed.TARGETS["length_change"]), color="tab:green", ls="--",
               label="length target (−45 %)")
    ax.axvline(base["mean_length"] - testbed.TARGETS["gap_closed"] * (base["mean_length"] - base["mean_l_min"]),
               color="tab:purple", ls="--", label="gap target (75 % closed)")
    ax.axhline(base["accuracy"] + testbed.TARGETS["accuracy_ci_low"], color="tab:orange", ls="--", label="base − 2 points")
    ax.set_xlabel("mean greedy answer length (tokens)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title("Leaving kinds of redundancy out at decode time (95 % CI of Δacc)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


DOCS = RESULTS.parents[1] / "docs" / "testbed.md"
DOCS_BEGIN = "<!-- BEGIN generated by `python bench/redundancy_oracle.py --rerender` from its JSON; do not edit by hand -->"
DOCS_END = "<!-- END generated -->"


def docs_text(current: str, data: dict) -> str:
    """docs/testbed.md with its oracle sentences (:func:`findings`, :func:`beside_lines`) rendered from ``data``."""
    head, rest = current.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    return head + "\n".join([DOCS_BEGIN, *findings(data), *beside_lines(data), DOCS_END]) + tail


def render_results(data: dict, out_dir: Path | None = None) -> None:
    out = out_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.md").write_text(render_markdown(data))
    render_png(data, out / f"{NAME}.png")
    stamp_png(out / f"{NAME}.png", data)


def docs_summary(data: dict) -> dict:
    base = data["stats"]["base"]
    meets = [v for v in data["verdicts"] if v["length"] and v["gap"] and v["accuracy"]]
    r = data["stats"]["rows"][run_name(("again",))]
    best = best_within_accuracy(data["stats"]["rows"])
    return {
        "setup": f"reference model (testbed), {base['n']} held-out problems, greedy with kinds of redundancy banned, "
                 f"{len(data['stats']['rows'])} structures",
        "target": "none (an oracle: which structures reach the pruning targets)",
        "measured": (f"{len(meets)} of {len(data['stats']['rows'])} structures reach length ≤ −45 %, gap ≥ 75 % and "
                     f"Δacc CI low ≥ −2 together; the most gap closed within the accuracy bound: "
                     f"{100 * (data['stats']['rows'][best]['gap_closed'] or 0):.0f} % ({data['labels'][best]}); "
                     f"without `again` alone: Δacc {100 * r['delta_accuracy']['mean']:+.1f} points"),
        "verdict": "recorded",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerender", action="store_true", help="only rewrite the md/png from the committed JSON")
    ap.add_argument("--eval-count", type=int, default=testbed.Config().eval_count)
    ap.add_argument("--tag", default="oracle-v1")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--model", default=testbed.MODEL,
                    help="the reference model; docs/testbed.md is rewritten for the default one only")
    args = ap.parse_args(argv)
    if args.rerender:
        data = json.loads((RESULTS / f"{NAME}.json").read_text())
        render_results(data)
        DOCS.write_text(docs_text(DOCS.read_text(), data))
        return 0
    record = start(argv, script=__file__)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    cfg = replace(testbed.Config(), seeds=(0,), eval_count=args.eval_count, tag=args.tag, model=args.model)
    evaluate(cfg)
    result = build_result(cfg, finish(record))
    testbed.publish(result, render=render_results)
    if cfg.model == testbed.MODEL:
        DOCS.write_text(docs_text(DOCS.read_text(), result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
