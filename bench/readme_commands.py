"""Time the README's two commands on a fresh clone and render the README's figures from the record.

    python bench/readme_commands.py                # fresh clone of HEAD, empty model cache: `make local`, then `make test`
    python bench/readme_commands.py --only local   # only `make local` (keeps the record's `make test` entry)
    python bench/readme_commands.py --only test    # only `make test` (a fresh clone too; its set-up included)
    python bench/readme_commands.py --rerender     # rewrite the README blocks from the record

What a new user runs, as they run it: `git clone`, then `make local` (set-up, the testbed model's
build into an empty cache, the run) and `make test` in the same clone (every tier). The record,
``bench/results/readme/commands.json``, holds for each command its wall time, the commit, the
machine and the 1-min load average at its start and at its end; for `make local` the run's report
figures and the model build time; for `make test` each tier's test counts and seconds (from the
``tests/tier_times.py`` plugin, enabled by an environment variable that changes nothing else).

The README's paragraphs between ``<!-- local-run:begin/end -->`` and ``<!-- test-run:begin/end -->``
are rendered from it; tests/core/test_readme_commands.py fails when they differ, so the README
never states a time no run produced.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, RESULTS, git_commit, machine  # noqa: E402

RECORD = RESULTS / "readme" / "commands.json"
README = REPO / "README.md"
BLOCKS = {"local": ("<!-- local-run:begin -->", "<!-- local-run:end -->"),
          "test": ("<!-- test-run:begin -->", "<!-- test-run:end -->")}
TIER_ORDER = ("default", "slow", "prometheus", "vllm")


def _timed(cmd: list[str], cwd: Path, env: dict) -> dict:
    load_start = list(os.getloadavg())
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env)
    wall = time.monotonic() - t0
    m = machine(load_at_start=load_start)
    return {"command": " ".join(cmd), "exit_status": proc.returncode, "wall_seconds": round(wall, 1),
            "started_at": started, "machine": m}


def measure(only: set[str]) -> dict:
    """Clone HEAD into a temporary directory and run the README's commands there."""
    out: dict = {}
    commit = git_commit()
    with tempfile.TemporaryDirectory(prefix="o1pruner-fresh-") as tmp:
        clone = Path(tmp) / "o1-pruner"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        shared = REPO.parent / "shared"  # the Kubeflow schemas the strict-validation tests read
        if shared.is_dir() and not (clone.parent / "shared").exists():
            (clone.parent / "shared").symlink_to(shared)
        cache = Path(tmp) / "cache"
        env = {**os.environ, "O1PRUNER_CACHE": str(cache)}
        env.pop("VIRTUAL_ENV", None)
        if "local" in only:
            rec = _timed(["make", "local"], clone, env)
            rec["git_commit"] = commit
            if rec["exit_status"] == 0:
                report = json.loads((clone / "runs" / "local-testbed" / "report" / "report.json").read_text())
                build = json.loads(next((cache / "models").glob("longthought-arith-*/testbed.json")).read_text())
                rec.update({"model": {"digest": build["digest"], "build_seconds": build["build"]["train_seconds"],
                                      "parameters": build["build"]["parameters"],
                                      "weights_sha256": build["build"].get("weights_sha256"),
                                      "cpu_capability": build["build"].get("cpu_capability")},
                            "average": report["results"]["average"], "paired": report["paired"],
                            "tokens": report["tokens"]})
            out["local"] = rec
        if "test" in only:
            times = Path(tmp) / "tier-times.json"
            rec = _timed(["make", "test"], clone, {**env, "O1PRUNER_TIER_TIMES": str(times)})
            rec["git_commit"] = commit
            rec["after"] = "make local in the same clone" if "local" in only else "a fresh clone"
            if times.exists():
                rec["pytest"] = json.loads(times.read_text())
            out["test"] = rec
    return out


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


def _load(m: dict) -> str:
    return (f"1-min load average {m['load_average_at_start'][0]:.1f} at its start and "
            f"{m['load_average_at_end'][0]:.1f} at its end")


def render_local(rec: dict | None) -> str:
    if rec is None:
        return ("Not yet measured from a fresh clone: `python bench/readme_commands.py` times `make local` on a "
                "fresh clone, records it in `bench/results/readme/commands.json` and renders this paragraph from it.")
    m = rec["machine"]
    if rec["exit_status"] != 0:
        return (f"`make local` FAILED (exit {rec['exit_status']}) on a fresh clone of commit {rec['git_commit']} "
                f"after {_minutes(rec['wall_seconds'])}.")
    avg, paired = rec["average"], rec["paired"]
    d, lc = paired["deltaAccuracy"], paired["lengthChange"]
    bench = json.loads((RESULTS / "testbed.json").read_text())
    return (
        f"Measured from a fresh clone of commit {rec['git_commit']} on a {m['cores']}-core {m['cpu']}, "
        f"{m['memory_gib']} GiB machine with an empty model cache: `make local` took **{_minutes(rec['wall_seconds'])}** (set-up, the "
        f"testbed model's build — {rec['model']['build_seconds']:.0f} s, {rec['model']['parameters'] / 1e6:.2f} M "
        f"parameters — and the run; {_load(m)}). Its report, {paired['problems']} held-out problems, greedy "
        f"decoding: mean length **{avg['baseLength']:.1f} → {avg['prunedLength']:.1f} tokens "
        f"({100 * lc['mean']:+.1f} %, 95 % CI {100 * lc['low']:+.1f} to {100 * lc['high']:+.1f})** against a lower "
        f"bound of {paired['meanLMin']:.1f} (L_min), so {100 * paired['gapClosed']:.0f} % of the redundancy gap "
        f"closed; accuracy {avg['baseAccuracy']:.3f} → {avg['prunedAccuracy']:.3f} (Δ {100 * d['mean']:+.1f} "
        f"points, 95 % CI {100 * d['low']:+.1f} to {100 * d['high']:+.1f}; McNemar p = "
        f"{paired['mcnemar']['p_value']:.2g}); AES {avg['aes']:.3f}; {rec['tokens']['saved']:,} tokens saved. One "
        f"seed and one configuration: `bench/results/testbed.md` has three seeds and the baselines "
        f"({_bench_seeds(bench)}). The "
        f"model is built where it runs, and its weights depend on the kind of CPU (docs/testbed.md, *One recipe, "
        f"two builds*): {_which_build(rec['model'], m, bench['model'].get('identity', {}))}"
    )


def _bench_seeds(data: dict) -> str:
    """The testbed benchmark's O1-Pruner λ = 2 accuracy change per training seed and pooled."""
    stats, base = data["stats"]["rows"]["o1-lam2"], data["stats"]["base"]["accuracy"]  # one base for every seed
    per_seed = " / ".join(f"{100 * (s['accuracy'] - base):+.1f}" for s in stats["per_seed"])
    d = stats["delta_accuracy"]
    return (f"O1-Pruner λ = 2 there: Δacc {per_seed} points on its three seeds, {100 * d['mean']:+.1f} "
            f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] pooled; one seed is never a result")


def _which_build(model: dict, m: dict, bench: dict) -> str:
    """Whether the local run's build is the one the testbed benchmark measured (``bench``, its
    build identity), by weights hash."""
    sha, bench_sha = model.get("weights_sha256"), bench.get("weights_sha256")
    where = f"{m['cpu']}" + (f", {model['cpu_capability']}" if model.get("cpu_capability") else "")
    if sha and bench_sha and sha == bench_sha:
        return (f"these figures are for the build this {where} machine makes (weights SHA-256 {sha[:12]}), the one "
                "the benchmarks measured.")
    if sha and bench_sha:
        return (f"these figures are for the build this {where} machine makes (weights SHA-256 {sha[:12]}); the "
                f"benchmarks measured another build ({bench_sha[:12]}).")
    return f"these figures are for the build an {m['cpu']} makes."


def render_test(rec: dict | None) -> str:
    if rec is None:
        return ("The tiers' wall times are not yet measured from a fresh clone: `python bench/readme_commands.py` "
                "times `make test` there and renders this paragraph from `bench/results/readme/commands.json`.")
    m = rec["machine"]
    verdict = "passed" if rec["exit_status"] == 0 else f"FAILED (exit {rec['exit_status']})"
    text = (f"Measured on a fresh clone of commit {rec['git_commit']} ({rec['after']}), {m['cores']} cores "
            f"({m['cpu']}): "
            f"`make test` {verdict} in **{_minutes(rec['wall_seconds'])}** wall, set-up of the Prometheus binaries "
            f"and the vLLM environment included ({_load(m)}).")
    py = rec.get("pytest")
    if py:
        text += f" pytest ran {_minutes(py['wall_seconds'])}: {_counts(py['outcomes'])}"
        if py.get("tiers"):
            text += "; by tier: " + "; ".join(f"{t} {_counts(py['tiers'][t])} in {_minutes(py['tiers'][t]['seconds'])}"
                                              for t in TIER_ORDER if t in py["tiers"]) + " (a tier: its tests' own time)"
        text += "."
    return text


def _counts(c: dict) -> str:
    return ", ".join(f"{c[k]} {k}" for k in ("passed", "failed", "skipped", "error") if c.get(k)) or "no test"


def render(record: dict) -> dict[str, str]:
    return {"local": render_local(record.get("local")), "test": render_test(record.get("test"))}


def readme_block(text: str, which: str) -> str:
    begin, end = BLOCKS[which]
    return text[text.index(begin) + len(begin):text.index(end)].strip()


def write_readme(record: dict, readme: Path = README) -> None:
    text = readme.read_text()
    for which, body in render(record).items():
        begin, end = BLOCKS[which]
        text = text[:text.index(begin) + len(begin)] + "\n" + body + "\n" + text[text.index(end):]
    readme.write_text(text)


def load_record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerender", action="store_true", help="only rewrite the README blocks from the record")
    ap.add_argument("--only", choices=("local", "test"), help="time one command (the other entry is kept)")
    args = ap.parse_args(argv)
    record = load_record()
    if not args.rerender:
        record.update(measure({args.only} if args.only else {"local", "test"}))
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(record, indent=2) + "\n")
    write_readme(record)
    for body in render(record).values():
        print(body, end="\n\n")
    return 0 if all(r.get("exit_status", 0) == 0 for r in record.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
