"""A pytest plugin that records how long each test tier took, for bench/readme_commands.py.

Active only when ``O1PRUNER_TIER_TIMES`` names a file: at the end of the session it writes, per
tier (the marker ``vllm``, ``prometheus`` or ``slow`` a test carries, else ``default``), the
number of tests by outcome and the seconds spent in their set-up, call and tear-down, plus the
session's wall time. It changes nothing about how tests run.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

TIERS = ("vllm", "prometheus", "slow")
ENV = "O1PRUNER_TIER_TIMES"


def tier_of(keywords) -> str:
    """The tier of a test from its keywords (markers): the first of :data:`TIERS` it has."""
    return next((t for t in TIERS if t in keywords), "default")


class TierTimes:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        self.seconds: dict[str, float] = defaultdict(float)
        self.outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        tier = tier_of(report.keywords)
        self.seconds[tier] += report.duration
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[tier][report.outcome] += 1

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        data = {"wall_seconds": round(time.monotonic() - self.started, 1), "exit_status": int(exitstatus),
                "tiers": {t: {"seconds": round(self.seconds[t], 1), **self.outcomes[t]}
                          for t in sorted(set(self.seconds) | set(self.outcomes))}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2) + "\n")


def register(config: pytest.Config) -> None:
    """Record tier times into the file ``O1PRUNER_TIER_TIMES`` names (nothing when it is unset)."""
    path = os.environ.get(ENV)
    if path:
        config.pluginmanager.register(TierTimes(Path(path)), "o1pruner-tier-times")
