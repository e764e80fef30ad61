"""docs/reliability.md §8 shows exactly what bench/operator_latency.py measured (the committed
JSON), and the figures say what the section claims: watches react faster and idle cheaper."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

RESULTS = REPO_ROOT / "bench" / "results" / "operator" / "latency.json"


def _bench():
    spec = importlib.util.spec_from_file_location("operator_latency", REPO_ROOT / "bench" / "operator_latency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_docs_table_is_rendered_from_the_committed_json():
    results = json.loads(RESULTS.read_text())
    assert _bench().render(results) in (REPO_ROOT / "docs" / "reliability.md").read_text()


def test_watches_react_at_once_and_cost_less_while_idle():
    results = json.loads(RESULTS.read_text())
    polling, watches = results["polling"], results["watches"]
    assert watches["resync_seconds"] > polling["resync_seconds"]
    assert watches["latency"]["all"]["max"] < 1.0 < polling["latency"]["all"]["median"]
    per_job = "operator_client_per_job_per_minute"
    assert watches["idle"][per_job] < polling["idle"][per_job] / 5
