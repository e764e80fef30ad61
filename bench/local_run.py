"""Time `make local` on a fresh clone and record what it showed; render the README's figures.

    python bench/local_run.py              # clone HEAD into a temp dir, fresh model cache, `make local`
    python bench/local_run.py --rerender   # rewrite the README block from bench/results/local_run.json

The record (``bench/results/local_run.json``) holds the wall time of `make local` (set-up, the
testbed model's build and the run), the run's report figures, the machine, the commit, and the
load average at start and end. The README's "measured" paragraph is rendered from it between
``<!-- local-run:begin -->`` and ``<!-- local-run:end -->``; tests/core/test_bench_results.py
fails when the two differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, RESULTS, git_commit, machine  # noqa: E402

RECORD = RESULTS / "local_run.json"
README = REPO / "README.md"
BEGIN, END = "<!-- local-run:begin -->", "<!-- local-run:end -->"


def measure(keep_cache: bool) -> dict:
    load_start = list(os.getloadavg())
    commit = git_commit()
    with tempfile.TemporaryDirectory(prefix="o1pruner-fresh-") as tmp:
        clone = Path(tmp) / "o1-pruner"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        env = dict(os.environ)
        if not keep_cache:
            env["O1PRUNER_CACHE"] = str(Path(tmp) / "cache")
        t0 = time.monotonic()
        proc = subprocess.run(["make", "local"], cwd=clone, env=env)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            raise SystemExit(f"make local failed with exit code {proc.returncode}")
        run_dir = clone / "runs" / "local-testbed"
        report = json.loads((run_dir / "report" / "report.json").read_text())
        model_dir = next((Path(env.get("O1PRUNER_CACHE", Path.home() / ".cache" / "o1pruner")) / "models").glob(
            "longthought-arith-*"))
        build = json.loads((model_dir / "testbed.json").read_text())
    m = machine()
    m["load_average_at_start"] = load_start
    m["load_average_at_end"] = list(os.getloadavg())
    avg = report["results"]["average"]
    return {
        "command": "make local" + ("" if keep_cache else " (fresh clone, empty model cache)"),
        "git_commit": commit, "wall_seconds": round(wall, 1), "machine": m,
        "model": {"digest": build["digest"], "build_seconds": build["build"]["train_seconds"],
                  "parameters": build["build"]["parameters"]},
        "average": avg, "paired": report["paired"], "tokens": report["tokens"],
    }


def render(rec: dict) -> str:
    avg, paired, m = rec["average"], rec["paired"], rec["machine"]
    d, lc = paired["deltaAccuracy"], paired["lengthChange"]
    minutes, seconds = divmod(round(rec["wall_seconds"]), 60)
    return (
        f"Measured from a fresh clone on this project's {m['cores']}-core CI machine (`{rec['command']}`, "
        f"commit {rec['git_commit']}): {minutes} min {seconds:02d} s wall for set-up, the testbed model's build "
        f"({rec['model']['build_seconds']:.0f} s, {rec['model']['parameters'] / 1e6:.2f} M parameters) and the run; "
        f"1-min load average {m['load_average_at_start'][0]:.1f} at start, {m['load_average_at_end'][0]:.1f} at end. "
        f"{paired['problems']} held-out problems, greedy decoding: mean length **{avg['baseLength']:.1f} → "
        f"{avg['prunedLength']:.1f} tokens ({100 * lc['mean']:+.1f} %, 95 % CI {100 * lc['low']:+.1f} to "
        f"{100 * lc['high']:+.1f})** against a lower bound of {paired['meanLMin']:.1f} (L_min), so "
        f"**{100 * paired['gapClosed']:.0f} % of the redundancy gap closed**; accuracy {avg['baseAccuracy']:.3f} → "
        f"{avg['prunedAccuracy']:.3f} (Δ {100 * d['mean']:+.1f} points, 95 % CI {100 * d['low']:+.1f} to "
        f"{100 * d['high']:+.1f}; McNemar p = {paired['mcnemar']['p_value']:.2g}); AES {avg['aes']:.3f}; "
        f"{rec['tokens']['saved']:,} tokens saved. One seed: `bench/results/testbed.md` has three seeds and the "
        f"baselines."
    )


def readme_block(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


def write_readme(rec: dict) -> None:
    text = README.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + "\n" + render(rec) + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerender", action="store_true", help="only rewrite the README block from the JSON")
    ap.add_argument("--keep-cache", action="store_true", help="reuse the built testbed model (not a fresh-clone time)")
    args = ap.parse_args(argv)
    if not args.rerender:
        rec = measure(args.keep_cache)
        RESULTS.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps(rec, indent=2) + "\n")
    write_readme(json.loads(RECORD.read_text()))
    print(render(json.loads(RECORD.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
