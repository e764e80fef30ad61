"""Integration: real Prometheus + Pushgateway scrape a tiny pipeline; every dashboard query returns data.

Starts Debian's ``prometheus`` and ``prometheus-pushgateway`` on loopback ports (scrape interval
1 s), then runs a tiny pipeline that drives :class:`o1pruner.metrics.PipelineMetrics` the way
``o1pruner.pipeline`` does (sampling -> reference stats -> training steps -> base/pruned evaluation
-> AES), twice:

* ``demo-push``: one instance per phase pushing to the Pushgateway (the cluster's default when
  ``spec.metrics.pushgatewayUrl`` is set: sampling, training and evaluation pods);
* ``demo-serve``: one instance serving ``/metrics`` on a port (what the chart's PodMonitor
  scrapes when nothing is pushed).

Two more targets stand in for what other tiers exercise for real: a static exposition that
MIMICS vLLM's metric names (``vllm:generation_tokens_total`` ...; the real server runs in the
``vllm`` tier) with the ``pruningjob``/``pod`` target labels the sampler PodMonitor adds, and the
operator's three metrics (names, labels and buckets from ``o1pruner_operator.metrics``, in a
fresh registry). The chart's PrometheusRule (rendered by Helm) is
loaded as a rule file and must evaluate without errors.

Then every PromQL ``expr`` of every panel of every dashboard is run, with ``$pruningjob`` set to
each job, and must return data. (docs/dashboards.png is NOT drawn from this scripted data but from a
real run: scripts/dashboards_from_run.py, tested end to end by the last test here.)
"""

from __future__ import annotations

import importlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from o1pruner.metrics import PipelineMetrics
from o1pruner.rewards import aes as aes_score
from o1pruner.spec import MetricsSpec

from .conftest import CHART, dashboards_script, free_port, helm_install, start_prom_stack, stop_prom_stack

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(300)]

JOBS = ("demo-push", "demo-serve")
TRAIN_SET = "arith-train"
#: Grafana's $__rate_interval for a 1 s scrape interval (4 x scrape interval, plus margin).
RATE = "5s"
EVAL_SETS = {"arith": (0.62, 212.0), "gsm-mini": (0.41, 388.0)}  # base accuracy, base mean length


# ----------------------------------------------------------------------------- stand-ins
class _VllmMimic(BaseHTTPRequestHandler):
    """NOT vLLM: a static exposition with vLLM's metric names, values growing with time."""

    started = time.time()

    def do_GET(self):  # noqa: N802
        t = time.time() - self.started
        running = 6 + int(2 * math.sin(t))
        body = "\n".join([
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f'vllm:generation_tokens_total{{model_name="reference"}} {170.0 * t:.1f}',
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f'vllm:prompt_tokens_total{{model_name="reference"}} {55.0 * t:.1f}',
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{model_name="reference"}} {running}',
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f'vllm:num_requests_waiting{{model_name="reference"}} {max(0, 12 - int(t))}',
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f'vllm:kv_cache_usage_perc{{model_name="reference"}} {0.35 + 0.1 * math.sin(t / 3):.3f}',
            "",
        ]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _operator_registry() -> tuple[CollectorRegistry, callable]:
    """A fresh registry with the operator's three dashboard metrics, returning it and ``set_phase(job, phase)``.

    Names, help, label names and buckets are taken from ``o1pruner_operator.metrics`` when it is
    importable (without touching its process-global registry, which the operator tests use), else
    the contracted names.
    """
    jobs_def = ("o1pruner_operator_jobs", "PruningJobs by phase.", ("phase",))
    err_def = ("o1pruner_operator_reconcile_errors", "Reconcile errors.", ("handler",))
    dur_def = ("o1pruner_operator_phase_duration_seconds", "Phase durations.", ("phase",))
    buckets: tuple[float, ...] = (1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600)
    phases: tuple[str, ...] = ("Pending", "Sampling", "Training", "Evaluating", "Succeeded", "Failed")
    try:
        mod = importlib.import_module("o1pruner_operator.metrics")
    except ImportError:
        mod = None
    if mod is not None:
        def spec(m):
            return (m._name, m._documentation, tuple(m._labelnames))

        jobs_def, err_def, dur_def = spec(mod.JOBS), spec(mod.RECONCILE_ERRORS), spec(mod.PHASE_DURATION)
        buckets = tuple(b for b in mod.PHASE_DURATION._upper_bounds if b != float("inf"))
        phases = tuple(mod.PHASES)
    registry = CollectorRegistry()
    jobs = Gauge(*jobs_def, registry=registry)
    errors = Counter(*err_def, registry=registry)
    durations = Histogram(*dur_def, registry=registry, buckets=buckets)
    errors.labels("reconcile").inc(0)
    errors.labels("delete").inc(1)
    for phase, secs in (("Sampling", 6.0), ("Training", 10.0), ("Evaluating", 1.0)):
        durations.labels(phase).observe(secs)
    current: dict[str, str] = {}

    def set_phase(job: str, phase: str) -> None:
        current[job] = phase
        for p in phases:
            jobs.labels(p).set(sum(1 for v in current.values() if v == p))

    for p in phases:
        jobs.labels(p).set(0)
    return registry, set_phase


# ----------------------------------------------------------------------------- the tiny pipeline
def _run_pipeline(job: str, pushgateway: str | None, serve_port: int | None, set_phase) -> list[PipelineMetrics]:
    """Drive PipelineMetrics like o1pruner.pipeline: sample -> stats -> train -> evaluate -> report."""
    def metrics(phase: str) -> PipelineMetrics:
        spec = MetricsSpec(pushgatewayUrl=pushgateway) if pushgateway else MetricsSpec(port=serve_port)
        m = PipelineMetrics(job, "reference", spec, phase=phase)
        m.start()
        return m

    served = metrics("local") if not pushgateway else None
    pick = (lambda phase: served) if served else metrics
    made = [served] if served else []

    set_phase(job, "Sampling")
    m = pick("sampling")
    made.append(m)
    total, k = 30, 16
    for done in range(1, total + 1):
        m.sampling_progress(TRAIN_SET, done, total)
        m.samples_generated(TRAIN_SET, n_samples=k, n_tokens=k * (240 - done))
        m.push()
        time.sleep(0.2)
    m.reference_stats(TRAIN_SET, mean_length=228.5, mean_accuracy=0.57)
    m.reference_diagnostics(TRAIN_SET, truncation_rate=0.004, zero_reward_variance_share=0.12)
    m.reference_length_by_correctness(TRAIN_SET, correct=201.0, incorrect=262.5)
    m.push()

    set_phase(job, "Training")
    m = pick("training")
    made.append(m)
    steps, step_seconds = 40, 0.25
    for step in range(1, steps + 1):
        frac = step / steps
        tokens = 480 + int(40 * math.sin(step))
        m.train_step(step=step, epoch=frac, loss=-0.05 - 0.1 * frac, reward_mean=0.05 + 0.45 * frac,
                     clip_fraction=0.02 + 0.02 * abs(math.sin(step)), mean_length=228.5 * (1 - 0.35 * frac),
                     accuracy=0.57 + 0.04 * frac, learning_rate=2e-7 * math.cos(math.pi * frac / 2),
                     tokens=tokens, tokens_per_second=tokens / step_seconds,
                     clip_fraction_positive=0.01 + 0.01 * frac, clip_fraction_negative=0.01 + 0.01 * abs(math.sin(step)))
        m.push()
        time.sleep(step_seconds)

    set_phase(job, "Evaluating")
    m = pick("evaluation")
    made.append(m)
    for dataset, (base_acc, base_len) in EVAL_SETS.items():
        acc, length = base_acc + 0.01, base_len * 0.66
        m.eval_result("base", dataset, base_acc, base_len)
        m.eval_result("pruned", dataset, acc, length)
        m.aes(dataset, aes_score(base_acc, base_len, acc, length), (base_len - length) / base_len)
    for model, acc in (("base", 0.57), ("pruned", 0.58)):
        m.accuracy_by_difficulty(model, {"1": {"accuracy": acc + 0.2}, "2": {"accuracy": acc}, "3": {"accuracy": acc - 0.2}})
    for round_, (length, accuracy) in enumerate([(228.5, 0.57), (150.8, 0.58), (131.0, 0.58)]):  # 0: the base
        m.round_result(round_, length, accuracy)
    m.savings(tokens_per_million=77.7e6, sampler_hours_per_million=1.9)
    m.push()
    set_phase(job, "Succeeded")
    return [x for x in made if x is not None]


def _wait_for_targets(stack, expected_up: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(r["value"][1] == "1" for r in stack.query("up")) >= expected_up:
            return
        time.sleep(0.25)
    raise TimeoutError(f"fewer than {expected_up} targets up after {timeout} s: {stack.query('up')}")


def _panels_without_data(stack, exprs: list[tuple[str, str]], timeout: float) -> tuple[list[str], float]:
    """``"label: expr"`` of the (label, expr) queries still empty after polling up to ``timeout`` s
    (rate() needs two scrapes and scrapes lag on a loaded machine: a bounded wait, not a fixed
    sleep), and the time the last queries were evaluated at."""
    deadline = time.monotonic() + timeout
    pending = list(exprs)
    while True:
        at = time.time()
        pending = [(label, expr) for label, expr in pending if not stack.query(expr, at=at)]
        if not pending or time.monotonic() > deadline:
            return [f"{label}: {expr}" for label, expr in pending], at
        time.sleep(1)


def _dashboards() -> dict[str, dict]:
    return {f.name: json.loads(f.read_text()) for f in sorted((CHART / "dashboards").glob("*.json"))}


def test_every_dashboard_query_returns_data(tmp_path):
    png = dashboards_script()
    # The chart's alert rules, as Helm renders them, evaluated by the same Prometheus.
    rule = helm_install({"monitoring": {"prometheusRule": {"enabled": True}}}).get("PrometheusRule", "o1-o1-pruner")
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))

    serve_port, vllm_port, op_port = free_port(), free_port(), free_port()
    vllm = ThreadingHTTPServer(("127.0.0.1", vllm_port), _VllmMimic)
    threading.Thread(target=vllm.serve_forever, daemon=True).start()
    op_registry, op_set_phase = _operator_registry()
    op_server, _ = start_http_server(op_port, addr="127.0.0.1", registry=op_registry)
    lock = threading.Lock()

    def set_phase(job: str, phase: str) -> None:
        with lock:
            op_set_phase(job, phase)

    scrape = [
        {"job_name": "o1pruner-pipeline", "static_configs": [{"targets": [f"127.0.0.1:{serve_port}"]}]},
        {"job_name": "o1pruner-operator", "static_configs": [{"targets": [f"127.0.0.1:{op_port}"]}]},
        # One mimic target per job, with the target labels the sampler PodMonitor's relabelling adds.
        *({"job_name": f"vllm-sampler-mimic-{job}", "static_configs": [
            {"targets": [f"127.0.0.1:{vllm_port}"], "labels": {"pruningjob": job, "pod": f"{job}-sampler-0"}}]}
          for job in JOBS),
    ]
    stack = start_prom_stack(tmp_path, scrape, rule_files=[str(rules_file)])
    made: list[PipelineMetrics] = []
    try:
        _wait_for_targets(stack, expected_up=4)  # pushgateway, operator, 2 vLLM mimics (the served one comes later)
        results: dict[str, list] = {}
        threads = [
            threading.Thread(target=lambda: results.__setitem__("push", _run_pipeline(JOBS[0], stack.pushgateway_url, None, set_phase))),
            threading.Thread(target=lambda: results.__setitem__("serve", _run_pipeline(JOBS[1], None, serve_port, set_phase))),
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        made = [m for ms in results.values() for m in ms]
        assert set(results) == {"push", "serve"}, "the tiny pipeline did not finish"
        time.sleep(4)  # a few more scrapes after the last push
        end = time.time()

        # Every target is up.
        ups = {r["metric"]["job"]: r["value"][1] for r in stack.query("up")}
        assert ups and all(v == "1" for v in ups.values()), ups

        # Every PromQL expression of every panel of every dashboard returns data, for each job.
        exprs = []
        for name, board in _dashboards().items():
            for panel in png.panels(board):
                for target in panel.get("targets", []):
                    for job in JOBS:
                        expr = png.substitute(target["expr"], png.default_variables(pruningjob=job, rate_interval=RATE))
                        assert "$" not in expr, expr
                        exprs.append((f"{name} / {panel['title']} [{job}]", expr))
            # template variable queries: label_values(<selector>, label) -> series API
            for var in board["templating"]["list"]:
                if var["type"] == "query":
                    q = var["query"]["query"]
                    selector, label = q[len("label_values("):-1].rsplit(",", 1)
                    selector = png.substitute(selector, png.default_variables(pruningjob="|".join(JOBS)))
                    series = stack.query(f"count by ({label.strip()}) ({selector})", at=end)
                    values = {s["metric"].get(label.strip()) for s in series}
                    expected = set(JOBS) if var["name"] == "pruningjob" else {TRAIN_SET, *EVAL_SETS}
                    assert expected <= values, (var["name"], values)
        assert len(exprs) >= 2 * 30, len(exprs)
        empty, end = _panels_without_data(stack, exprs, timeout=30)
        assert not empty, "panels without data:\n" + "\n".join(empty)

        # Spot-check values: pushed and served paths carry the same numbers.
        for job in JOBS:
            acc = {r["metric"]["model"]: float(r["value"][1]) for r in stack.query(
                f'o1pruner_eval_accuracy{{pruningjob="{job}", dataset="arith"}}', at=end)}
            assert acc == {"base": 0.62, "pruned": 0.63}, (job, acc)
            red = stack.query(f'o1pruner_eval_length_reduction_ratio{{pruningjob="{job}", dataset="gsm-mini"}}', at=end)
            assert abs(float(red[0]["value"][1]) - 0.34) < 1e-9
        pushed = stack.query(f'o1pruner_train_step{{pruningjob="{JOBS[0]}"}}', at=end)
        assert pushed[0]["metric"]["job"] == "o1pruner" and pushed[0]["metric"]["phase"] == "training"

        # The chart's alert rules load and evaluate cleanly.
        import urllib.request

        with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules", timeout=10) as resp:
            groups = json.load(resp)["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert {r["name"] for r in rules} >= {"O1PrunerJobFailed", "O1PrunerSamplerDown", "O1PrunerNoTrainingProgress"}
        assert all(r.get("health") in ("ok", "unknown") and not r.get("lastError") for r in rules), rules

    finally:
        for m in made:
            m.stop()
        stop_prom_stack(stack)
        vllm.shutdown()
        vllm.server_close()
        op_server.shutdown()
        op_server.server_close()


def test_real_pipeline_run_fills_every_pipeline_panel(tmp_path, tiny_model_dir):
    """``o1pruner run`` (the real pipeline, tiny random model) pushing to the Pushgateway: every
    panel over o1pruner_* pipeline metrics returns data for that job."""
    from o1pruner.cli import main as cli_main
    from o1pruner.spec import dump_job, parse_job

    png = dashboards_script()
    stack = start_prom_stack(tmp_path, [])
    job_name = "tiny-real"
    try:
        job = parse_job({
            "apiVersion": "o1pruner.dev/v1alpha1",
            "kind": "PruningJob",
            "metadata": {"name": job_name},
            "spec": {
                "model": {"source": str(tiny_model_dir)},
                "datasets": {
                    "train": {"name": "train", "source": "builtin:arithmetic", "generator": {"count": 6, "seed": 1}},
                    "eval": [{"name": "held-out", "source": "builtin:arithmetic", "generator": {"count": 4, "seed": 2}}],
                },
                "sampling": {"k": 3, "maxTokens": 10, "temperature": 1.0, "topP": 1.0, "backend": "transformers",
                             "batchSize": 4},
                "training": {"learningRate": 1e-3, "epochs": 2, "batchSize": 4, "microBatchSize": 2, "maxLength": 96,
                             "checkpointEverySteps": 2, "warmupRatio": 0.0},
                "evaluation": {"maxTokens": 8},
                "storage": {"uri": str(tmp_path / "run")},
                "metrics": {"pushgatewayUrl": stack.pushgateway_url},
            },
        })
        path = tmp_path / "job.yaml"
        path.write_text(dump_job(job))
        assert cli_main(["run", str(path)]) == 0
        # A random tiny model solves nothing: with base accuracy 0 the AES (relative accuracy
        # change) is undefined and the pipeline reports none; then those panels stay empty.
        report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
        rows = report["results"]["datasets"].values()
        undefined = {"AES"} if all(r["aes"] is None for r in rows) else set()
        exprs = []
        for name, board in _dashboards().items():
            for panel in png.panels(board):
                for target in panel.get("targets", []):
                    if "o1pruner_operator_" in target["expr"] or "vllm:" in target["expr"]:
                        continue  # operator and vLLM series come from other processes
                    if panel["title"] in undefined:
                        continue
                    expr = png.substitute(target["expr"], png.default_variables(pruningjob=job_name, rate_interval="1m"))
                    exprs.append((f"{name} / {panel['title']}", expr))
        assert len(exprs) >= 20, len(exprs)
        empty, _ = _panels_without_data(stack, exprs, timeout=60)
        assert not empty, "panels without data after a real run:\n" + "\n".join(empty)
    finally:
        stop_prom_stack(stack)


#: What the smoke run of scripts/dashboards_from_run.py changes in examples/local.yaml: the barely
#: trained testbed model and counts small enough for a test.
SMOKE_OVERRIDES = [
    "metadata.name=dashboards-smoke",
    "spec.model.source=embedded:longthought-smoke",
    "spec.datasets.train.generator.count=4",
    "spec.datasets.eval.0.generator.count=4",
    "spec.sampling.k=2",
    "spec.sampling.batchSize=8",
    "spec.sampling.maxTokens=48",
    "spec.evaluation.maxTokens=48",
    "spec.training.epochs=2",
    "spec.training.batchSize=4",
    "spec.training.microBatchSize=4",
]


def test_dashboards_picture_comes_from_a_real_run(tmp_path):
    """scripts/dashboards_from_run.py end to end on the smoke model: it starts Prometheus and the
    Pushgateway, runs examples/local.yaml (small counts) pushing to it, and records every panel of
    both dashboards with the dashboard's own expr; every panel the pipeline feeds got data, the
    others say why not, and the PNG carries the hash of that record."""
    pytest.importorskip("o1pruner.testbed", reason="the long-thought testbed (embedded:longthought-smoke) is not installed")
    script = dashboards_script()
    from common import data_sha256, png_stamp  # bench/common.py (the script put bench/ on sys.path)

    out, sidecar = tmp_path / "dashboards.png", tmp_path / "dashboards.json"
    argv = ["--job", "examples/local.yaml", "--work", str(tmp_path / "work"), "--out", str(out), "--sidecar", str(sidecar)]
    for item in SMOKE_OVERRIDES:
        argv += ["--set", item]
    assert script.main(argv) == 0
    data = json.loads(sidecar.read_text())

    assert data["job"]["name"] == "dashboards-smoke" and data["job"]["model"] == "embedded:longthought-smoke"
    assert data["commit"] and data["date"] and data["run"]["returncode"] == 0
    # Every panel of both dashboards, with the dashboard's own expr.
    expected = [(name, p["title"], [t["expr"] for t in p["targets"]])
                for name, board in _dashboards().items() for p in script.panels(board) if p.get("targets")]
    assert [(p["dashboard"], p["title"], [t["expr"] for t in p["targets"]]) for p in data["panels"]] == expected
    assert {p["dashboard"] for p in data["panels"]} == {"length-accuracy.json", "pipeline.json"}
    for p in data["panels"]:
        for t in p["targets"]:
            assert "$" not in t["query"], t
            if "$pruningjob" in t["expr"]:
                assert 'pruningjob=~"dashboards-smoke"' in t["query"], t
    # Panels over the pipeline's metrics got data; the others carry the reason.
    aes_undefined = all(r["aes"] is None for r in data["results"].values())
    for p in data["panels"]:
        exprs = " ".join(t["expr"] for t in p["targets"])
        fed = "o1pruner_operator_" not in exprs and "vllm:" not in exprs and not (aes_undefined and p["title"] == "AES")
        if fed:
            assert all(t["series"] > 0 for t in p["targets"]), (p["title"], p["targets"])
            assert "note" not in p
        else:
            assert p["note"].startswith(("no operator", "no vLLM server", "AES undefined")), p
    # Time series panels are ranges over the run; the picture is drawn from (and stamped with) this record.
    reward = next(p for p in data["panels"] if p["title"] == "Reward during training")
    assert reward["targets"][0]["kind"] == "range" and len(reward["targets"][0]["data"][0]["values"]) >= 2
    assert png_stamp(out) == data_sha256(data)
    assert out.stat().st_size > 20_000
