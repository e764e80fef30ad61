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


def tier_of(markers) -> str:
    """The tier of a test from the names of its markers: the first of :data:`TIERS` it has.

    Markers, not keywords: a test's keywords also hold its folders' names, so a fast unit test
    under ``tests/vllm/`` would count as the vllm tier."""
    return next((t for t in TIERS if t in markers), "default")


class TierTimes:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        self.seconds: dict[str, float] = defaultdict(float)
        self.outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.tiers: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.tiers.update({item.nodeid: tier_of({m.name for m in item.iter_markers()}) for item in items})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        tier = self.tiers.get(report.nodeid, "default")
        self.seconds[tier] += report.duration
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[tier][report.outcome] += 1

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        totals: dict[str, int] = defaultdict(int)
        for counts in self.outcomes.values():
            for outcome, n in counts.items():
                totals[outcome] += n
        data = {"wall_seconds": round(time.monotonic() - self.started, 1), "exit_status": int(exitstatus),
                "outcomes": dict(totals),
                "tiers": {t: {"seconds": round(self.seconds[t], 1), **self.outcomes[t]}
                          for t in sorted(set(self.seconds) | set(self.outcomes))}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2) + "\n")


def register(config: pytest.Config) -> None:
    """Record tier times into the file ``O1PRUNER_TIER_TIMES`` names (nothing when it is unset)."""
    path = os.environ.get(ENV)
    if path:
        config.pluginmanager.register(TierTimes(Path(path)), "o1pruner-tier-times")
