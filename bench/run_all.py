"""Run every benchmark in order (``make bench``): sampler throughput, trainer efficiency, then
paper Table 2 and the lambda ablation (which share reference samples and resume from
``runs/bench/``). Results: ``bench/results/*.{md,json,png}``; see docs/benchmarks.md.

    python bench/run_all.py [--only sampler_throughput,trainer_efficiency,table2,lambda_ablation]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["sampler_throughput", "trainer_efficiency", "table2", "lambda_ablation"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default=",".join(ORDER))
    args = ap.parse_args()
    failed = []
    for name in [n for n in ORDER if n in args.only.split(",")]:
        t0 = time.monotonic()
        print(f"=== bench/{name}.py", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"=== bench/{name}.py: exit {rc} after {time.monotonic() - t0:.0f}s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
