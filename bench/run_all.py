"""Run every benchmark in order (``make bench``) with exactly the arguments its committed
results were produced with (``argv`` in ``bench/results/<name>.json``; older JSONs: parsed from
their ``command``), then re-render docs/benchmarks.md (``bench/render.py``). Sampler
throughput, trainer efficiency, the long-thought testbed (paper Tables 2 and 3 with statistics),
the length rewards and the pruning rounds on the testbed (which reuse its runs), the decode-time redundancy oracle
of the reference model, then the pretrained path (SmolLM2 warmed up on the testbed's traces). Every one resumes from
``runs/bench/``. Results: ``bench/results/*.{md,json,png}``; see docs/benchmarks.md.

    python bench/run_all.py [--only testbed,length_rewards] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
ORDER = ["sampler_throughput", "trainer_efficiency", "testbed_build", "testbed", "length_rewards", "rounds", "redundancy_oracle",
         "concise", "smollm2"]


def recorded_argv(name: str) -> list[str]:
    """The arguments ``bench/<name>.py`` was run with for its committed results ([] if none)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if "argv" in data:
        return list(data["argv"])
    words = shlex.split(data["command"])
    script = f"bench/{name}.py"
    if len(words) < 2 or Path(words[1]).as_posix() != script:
        raise SystemExit(f"{path}: command {data['command']!r} does not run {script}")
    return words[2:]


def plan(names: list[str]) -> list[list[str]]:
    """The command lines ``make bench`` runs (from the repository root)."""
    return [[sys.executable, f"bench/{name}.py", *recorded_argv(name)] for name in names]


def main() -> int:
    sys.path.insert(0, str(HERE))
    from common import BENCH_ENV

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(ORDER))
    ap.add_argument("--dry-run", action="store_true", help="print the command lines and stop")
    args = ap.parse_args()
    names = [n for n in ORDER if n in args.only.split(",")]
    env = {**BENCH_ENV, **os.environ}
    failed = []
    for cmd in plan(names):
        print("=== " + shlex.join(["python", *cmd[1:]]), flush=True)
        if args.dry_run:
            continue
        t0 = time.monotonic()
        rc = subprocess.call(cmd, cwd=REPO, env=env)
        print(f"=== {cmd[1]}: exit {rc} after {time.monotonic() - t0:.0f}s", flush=True)
        if rc:
            failed.append(cmd[1])
    if not args.dry_run:
        subprocess.call([sys.executable, "bench/render.py", "--docs-only"], cwd=REPO, env=env)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
