"""Length rewards compared on the long-thought testbed: O1-Pruner's against two from the literature.

The same reference samples, the same off-policy PPO-clipped surrogate, the same optimizer steps
and seeds as ``bench/testbed.py`` (whose work directories it shares, so the base model and
O1-Pruner λ = 2 are the very runs of that benchmark); only the reward that becomes the advantage
differs (:mod:`o1pruner.length_rewards`):

- ``o1-pruner`` — paper Eq. 4, L̄_ref/L − 1 + λ(A − Ā_ref), clipped to [−2, 4], standardised;
- ``kimi-length`` — Kimi k1.5's length penalty (arXiv 2501.12599, Sec. 2.3.3): within the K
  samples of a problem, 0.5 − (L − L_min)/(L_max − L_min) for a correct sample, min(0, ·) for a
  wrong one, added to the correctness reward, centred per problem;
- ``efficient-reasoning`` — Arora & Zanette (arXiv 2502.04463): 1{correct}·(1 − α·σ((L − mean
  of the correct samples' L) / their std)), with the leave-one-out baseline (RLOO).

Statistics as in the testbed benchmark: per-problem differences against the base, averaged over
seeds, 95 % paired bootstrap intervals; McNemar per seed; the share of the redundancy gap closed.

    python bench/length_rewards.py              # run (resumes) and write bench/results/length_rewards.*
    python bench/length_rewards.py --rerender   # rewrite the md / png from the committed JSON
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import testbed  # noqa: E402
from testbed import Config, render_results, run_cell  # noqa: E402,F401  (render_results: bench/render.py)

NAME = "length_rewards"
TITLE = "Length rewards on the long-thought testbed (same samples, surrogate and steps)"
REWARDS = ("kimi-length", "efficient-reasoning")
DEFAULTS = Config(lambdas=(2.0,), baselines=False, rewards=REWARDS)


def docs_summary(data: dict) -> dict:
    """The docs/benchmarks.md row: each reward's length change, accuracy change and gap closed."""
    rows = data["stats"]["rows"]

    base = data["stats"]["base"]
    return {
        "setup": (f"long-thought testbed, {base['n']} held-out problems, {len(data['seed'])} seeds, "
                  f"{data['config']['steps']} optimizer steps per reward"),
        "target": "a table with CIs (issue 14); no target on the figures",
        "measured": "; ".join(run_cell(data, r) for r in ("o1-lam2", *data["config"]["rewards"]) if r in rows),
        "verdict": "recorded",
    }


def main(argv: list[str] | None = None) -> int:
    return testbed.main(argv, defaults=DEFAULTS, name=NAME, title=TITLE, doc=__doc__, script=__file__)


if __name__ == "__main__":
    raise SystemExit(main())
