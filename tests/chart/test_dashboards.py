"""Static checks of the Grafana dashboards and alert rules (no Prometheus needed).

Every metric a panel or an alert queries must be one that is produced: by
o1pruner.metrics.PipelineMetrics, by the operator (the contracted names), or by vLLM. The
Prometheus tier (test_prometheus.py) then checks that each query really returns data.
"""

from __future__ import annotations

import json
import re

import pytest

from o1pruner.metrics import PipelineMetrics

from .conftest import CHART

OPERATOR_METRICS = {
    "o1pruner_operator_jobs",
    "o1pruner_operator_reconcile_errors_total",
    "o1pruner_operator_phase_duration_seconds_bucket",
    "o1pruner_operator_phase_duration_seconds_sum",
    "o1pruner_operator_phase_duration_seconds_count",
}
#: What vLLM's V1 engine exports (the vllm tier checks each dashboard name against the real
#: server's /metrics: tests/vllm/test_a_server.py). Not here: vllm:gpu_cache_usage_perc,
#: deprecated for vllm:kv_cache_usage_perc, hidden in 0.11 and removed in 0.12 (vLLM #29330).
VLLM_METRICS = {
    "vllm:generation_tokens_total", "vllm:prompt_tokens_total", "vllm:num_requests_running",
    "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
}
_METRIC = re.compile(r"\b(o1pruner_[a-z0-9_]+|vllm:[a-z0-9_:]+)")


def _pipeline_metrics() -> set[str]:
    m = PipelineMetrics("j", "m")
    names = set()
    for collector in m.registry.collect():
        names.add(collector.name)
        if collector.type == "counter":
            names.add(collector.name + "_total")
    return names


def _operator_metrics() -> set[str]:
    """The contracted names, checked against the operator's registry when it is importable."""
    try:
        from o1pruner_operator.metrics import REGISTRY
    except ImportError:
        return OPERATOR_METRICS
    exposed = set()
    for fam in REGISTRY.collect():
        exposed.add(fam.name + ("_total" if fam.type == "counter" else ""))
        if fam.type == "histogram":
            exposed |= {fam.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    missing = OPERATOR_METRICS - exposed
    assert not missing, f"operator does not expose {missing}"
    return OPERATOR_METRICS | exposed


KNOWN = _pipeline_metrics() | _operator_metrics() | VLLM_METRICS
BOARDS = {f.name: json.loads(f.read_text()) for f in sorted((CHART / "dashboards").glob("*.json"))}


def _panels(board):
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])


def test_two_dashboards_with_unique_uids():
    assert set(BOARDS) == {"length-accuracy.json", "pipeline.json"}
    uids = [b["uid"] for b in BOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert {b["title"] for b in BOARDS.values()} == {"O1-Pruner / Length and accuracy", "O1-Pruner / Pipeline"}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_templated_by_job_and_dataset(name):
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    assert {"datasource", "pruningjob", "dataset"} <= variables.keys()
    assert variables["datasource"]["type"] == "datasource"
    for var in ("pruningjob", "dataset"):
        assert variables[var]["includeAll"] and variables[var]["multi"]
        assert variables[var]["query"]["query"].startswith("label_values(")


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_queries_known_metrics(name):
    board = BOARDS[name]
    ids = [p["id"] for p in _panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(board):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for t in panel["targets"]:
            expr = t["expr"]
            assert t["datasource"]["uid"] == "${datasource}"
            metrics = set(_METRIC.findall(expr))
            assert metrics, (panel["title"], expr)
            assert metrics <= KNOWN, (panel["title"], metrics - KNOWN)
            if not all(m.startswith("o1pruner_operator_") for m in metrics):
                assert 'pruningjob=~"$pruningjob"' in expr, (panel["title"], expr)
            assert expr.count("(") == expr.count(")"), expr
            assert "[$__rate_interval]" in expr if "rate(" in expr else True


def test_required_panels_exist():
    la = {p["title"] for p in _panels(BOARDS["length-accuracy.json"])}
    assert {"Accuracy: base vs pruned", "Mean length: base vs pruned", "Length reduction", "AES",
            "Reward during training", "Length during training"} <= la
    pl = {p["title"] for p in _panels(BOARDS["pipeline.json"])}
    assert {"PruningJobs by phase", "Samples per second", "Sampler throughput (vLLM)", "Sampler queue (vLLM)",
            "Trainer tokens per second"} <= pl


def test_alerts_query_known_metrics(rendered):
    rule = rendered["monitoring-on"].get("PrometheusRule", "o1-o1-pruner")
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            metrics = set(_METRIC.findall(r["expr"]))
            assert metrics <= KNOWN, (r["alert"], metrics - KNOWN)
