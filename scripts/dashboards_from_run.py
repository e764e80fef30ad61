#!/usr/bin/env python3
"""Run a PruningJob against a real Prometheus + Pushgateway and draw every dashboard panel from it.

    python scripts/dashboards_from_run.py [--job examples/local.yaml] [--set spec.sampling.k=2 ...]

1. starts Debian's ``prometheus`` and ``prometheus-pushgateway`` on free loopback ports
   (scripts/promstack.py; ``scripts/install-prometheus.sh`` installs them), stopped at the end;
2. runs the job with ``o1pruner run`` (a subprocess, the real pipeline) with
   ``spec.metrics.pushgatewayUrl`` set to that Pushgateway (the pipeline then pushes and serves
   nothing), its storage under ``--work``;
3. asks Prometheus every PromQL ``expr`` of every panel of every dashboard in
   ``charts/o1-pruner/dashboards/`` - read from the dashboard JSON now, its template variables
   substituted as Grafana would (``$pruningjob`` = the job, ``$dataset`` = All = ``.*``,
   ``$__interval`` = the step, ``$__rate_interval`` = max(step + scrape interval, 4 x scrape
   interval)): a range query over the run for time-series panels, an instant query at its end
   for the others;
4. writes the answers with the job, model, commit and date to ``--sidecar``
   (docs/dashboards.json) and draws ``--out`` (docs/dashboards.png) from that JSON only, one
   chart per panel titled as in the dashboard, a note on each panel without data saying why.
   The PNG carries the SHA-256 of the JSON (bench/common.py ``stamp_png``), so
   tests/chart/test_dashboards_png.py can tell the picture was drawn from that record.

``--render-only`` redraws the PNG from an existing sidecar.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "charts" / "o1-pruner" / "dashboards"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402  (bench/common.py: git facts, PNG stamp)
from promstack import SCRAPE_INTERVAL_SECONDS, start_prom_stack, stop_prom_stack  # noqa: E402
from o1pruner.testbed.build import cpu_model  # noqa: E402

#: Seconds to wait after the run for the last pushes to be scraped.
FINAL_SCRAPE_WAIT_SECONDS = 30.0
#: Points per range query (Grafana asks for about one per horizontal pixel; a small chart has few).
MAX_POINTS = 240


# ----------------------------------------------------------------------------- dashboards
def load_dashboards(directory: Path = DASHBOARDS) -> dict[str, dict]:
    """``{file name: dashboard JSON}`` of every dashboard, sorted by file name."""
    return {f.name: json.loads(f.read_text()) for f in sorted(directory.glob("*.json"))}


def panels(dashboard: dict) -> list[dict]:
    """All panels, including those nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana variables (``$name`` and ``${name}``), longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def default_variables(pruningjob: str = ".*", dataset: str = ".*", rate_interval: str = "15s",
                      interval: str = "1s", range_: str = "5m") -> dict[str, str]:
    """Values of the dashboards' variables: ``.*`` is their ``allValue`` (All)."""
    return {"pruningjob": pruningjob, "dataset": dataset, "__rate_interval": rate_interval,
            "__interval": interval, "__range": range_}


def grafana_intervals(start: float, end: float, scrape_interval: float = SCRAPE_INTERVAL_SECONDS,
                      max_points: int = MAX_POINTS) -> tuple[int, int]:
    """(step = ``$__interval``, ``$__rate_interval``) in whole seconds for a time range, as Grafana
    derives them: the interval from the range and the points asked for (at least the scrape
    interval), the rate interval max(interval + scrape interval, 4 x scrape interval)."""
    step = max(math.ceil(scrape_interval), math.ceil((end - start) / max_points))
    return step, max(step + math.ceil(scrape_interval), 4 * math.ceil(scrape_interval))


def legend(fmt: str, labels: dict[str, str]) -> str:
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    return out.strip() or json.dumps(labels, sort_keys=True)


def is_range_panel(panel: dict) -> bool:
    """Time-series panels draw a range; stat and bar-gauge panels show a value at the end."""
    return panel.get("type") == "timeseries"


# ----------------------------------------------------------------------------- querying
def why_empty(expr: str, job: dict, report: dict | None) -> str:
    """Why a query of this run returned nothing (the note drawn on its panel)."""
    if "vllm:" in expr:
        backend = job["spec"].get("sampling", {}).get("backend", "transformers")
        return f"no vLLM server in this run (sampling.backend: {backend}): vLLM's own metrics do not exist"
    if "o1pruner_operator_" in expr:
        return "no operator in this run (`o1pruner run` runs the phases itself): operator metrics do not exist"
    if "o1pruner_eval_aes" in expr and report is not None:
        rows = report.get("results", {}).get("datasets", {}).values()
        if rows and all(r.get("aes") is None for r in rows):
            return "AES undefined: the base model's accuracy is 0 on every eval set"
    return "no data returned"


def query_panels(stack, boards: dict[str, dict], job: dict, start: float, end: float,
                 report: dict | None = None) -> dict[str, Any]:
    """Every target of every panel of ``boards``, asked of ``stack``'s Prometheus for ``job``."""
    step, rate_interval = grafana_intervals(start, end)
    variables = default_variables(pruningjob=job["metadata"]["name"], rate_interval=f"{rate_interval}s",
                                  interval=f"{step}s", range_=f"{math.ceil(end - start)}s")
    out = []
    for file_name, board in boards.items():
        for panel in panels(board):
            if not panel.get("targets"):
                continue  # rows
            targets = []
            for target in panel["targets"]:
                query = substitute(target["expr"], variables)
                if is_range_panel(panel):
                    result = stack.query_range(query, start, end, step)
                    data = [{"legend": legend(target.get("legendFormat", ""), s["metric"]),
                             "values": [[round(float(t) - start, 3), float(v)] for t, v in s["values"]]}
                            for s in result]
                else:
                    result = stack.query(query, at=end)
                    data = [{"legend": legend(target.get("legendFormat", ""), s["metric"]),
                             "value": float(s["value"][1])} for s in result]
                targets.append({"refId": target.get("refId"), "expr": target["expr"], "query": query,
                                "legendFormat": target.get("legendFormat", ""),
                                "kind": "range" if is_range_panel(panel) else "instant",
                                "series": len(data), "data": data})
            entry = {"dashboard": file_name, "dashboardTitle": board["title"], "title": panel["title"],
                     "type": panel["type"], "unit": panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""),
                     "targets": targets}
            if not any(t["series"] for t in targets):
                entry["note"] = why_empty(" ".join(t["expr"] for t in targets), job, report)
            out.append(entry)
    return {"step_seconds": step, "variables": variables, "scrape_interval_seconds": SCRAPE_INTERVAL_SECONDS,
            "panels": out}


# ----------------------------------------------------------------------------- the run
def set_path(obj: dict, dotted: str, value: Any) -> None:
    """``obj[a][b][0][c] = value`` for ``dotted`` = ``a.b.0.c`` (list items by index)."""
    keys = dotted.split(".")
    for key in keys[:-1]:
        obj = obj[int(key)] if isinstance(obj, list) else obj.setdefault(key, {})
    if isinstance(obj, list):
        obj[int(keys[-1])] = value
    else:
        obj[keys[-1]] = value


def prepare_job(job: dict, overrides: list[str], pushgateway_url: str, storage: Path) -> dict:
    """The job as run: ``overrides`` (``dotted.path=YAML value``) applied, metrics pushed to the
    Pushgateway, storage under ``storage``."""
    job = copy.deepcopy(job)
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected dotted.path=value")
        set_path(job, path.strip(), yaml.safe_load(raw))
    job["spec"]["metrics"] = {"pushgatewayUrl": pushgateway_url}
    job["spec"].setdefault("storage", {})["uri"] = str(storage)
    return job


def run_job(job: dict, work: Path, log_path: Path) -> int:
    """``o1pruner run`` of ``job`` in a subprocess; its output goes to ``log_path`` and stdout."""
    from o1pruner.spec import dump_job, parse_job

    path = work / "job.yaml"
    path.write_text(dump_job(parse_job(job)))  # validated as the CLI would
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "o1pruner.cli", "run", str(path)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        return proc.wait()


def wait_for_final_push(stack, job_name: str, timeout: float = FINAL_SCRAPE_WAIT_SECONDS) -> None:
    """Until Prometheus has scraped the evaluation's push (or ``timeout``), then 3 more scrapes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stack.query(f'o1pruner_eval_accuracy{{pruningjob="{job_name}"}}'):
        time.sleep(1)
    time.sleep(3 * SCRAPE_INTERVAL_SECONDS)


def record(job_file: str, overrides: list[str], job: dict, work: Path) -> dict[str, Any]:
    """Start the stack, run the job, query every panel: the sidecar's content."""
    boards = load_dashboards()
    stack = start_prom_stack(work, [])
    try:
        job = prepare_job(job, overrides, stack.pushgateway_url, work / "run")
        started = time.time()
        rc = run_job(job, work, work / "run.log")
        if rc != 0:
            raise SystemExit(f"o1pruner run exited with {rc}; see {work / 'run.log'}")
        wait_for_final_push(stack, job["metadata"]["name"])
        ended = time.time()
        report_path = work / "run" / "report" / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        answers = query_panels(stack, boards, job, started, ended, report)
    finally:
        stop_prom_stack(stack)
    return {
        "title": "O1-Pruner dashboards, drawn from a real run",
        "command": common.command_line(),
        "commit": common.git_commit(),
        "dirty": common.git_dirty(),
        "date": datetime.datetime.fromtimestamp(ended, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "job": {"file": job_file, "overrides": overrides, "name": job["metadata"]["name"],
                "model": job["spec"]["model"]["source"],
                "datasets": {"train": job["spec"]["datasets"]["train"]["name"],
                             "eval": [d["name"] for d in job["spec"]["datasets"].get("eval", [])]}},
        "run": {"seconds": round(ended - started, 1), "returncode": rc},
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "baseModel": (report or {}).get("baseModel"),
        "accepted": (report or {}).get("accepted"),
        "results": (report or {}).get("results", {}).get("datasets"),
        "prometheus": {"version": _version("prometheus"), "pushgateway": _version("prometheus-pushgateway")},
        **answers,
    }


def _version(binary: str) -> str | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


# ----------------------------------------------------------------------------- drawing
def label(data: dict) -> str:
    """The run the picture shows, in one line."""
    job = data["job"]
    commit = f"{data['commit']}{' (+ uncommitted changes)' if data.get('dirty') else ''}"
    head = (f"PruningJob {job['name']} ({job['file']}) · model {job['model']} · commit {commit} · {data['date']} · "
            f"run {data['run']['seconds'] / 60:.1f} min")
    if data.get("machine"):
        build = data.get("baseModel") or {}
        where = "built there" if build.get("cpu") == data["machine"]["cpu"] else "build"
        built = (f" · model {where}: final loss {build['final_loss']}, weights {build['weights_sha256'][:12]}"
                 if build.get("weights_sha256") else "")
        verdict = {True: "accepted", False: "refused by the accuracy guard"}.get(data.get("accepted"), "not judged")
        head += (f"\non {data['machine']['cpu']}, {data['machine']['cores']} cores{built} · "
                 f"pruned model {verdict}")
    if not job["overrides"]:
        return head
    return head + "\n" + _wrap("overrides of the job file: " + ", ".join(job["overrides"]), 200)


def _format(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value:.0%}"
    if unit == "percent":
        return f"{value:.1f}%"
    return f"{value:.3g}"


def render(data: dict, out: Path) -> Path:
    """Draw ``out`` from the sidecar ``data`` alone, then stamp it with the data's hash."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.facecolor": "#111217", "axes.facecolor": "#181b1f", "axes.edgecolor": "#2c3235",
                         "axes.labelcolor": "#ccccdc", "xtick.color": "#9fa7b3", "ytick.color": "#9fa7b3",
                         "text.color": "#ccccdc", "axes.titlecolor": "#ccccdc", "grid.color": "#2c3235",
                         "font.size": 7, "legend.fontsize": 6, "legend.frameon": False})
    palette = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]
    items = data["panels"]
    ncols = 4
    nrows = math.ceil(len(items) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.7 * nrows + 0.8), squeeze=False)
    fig.suptitle(f"{data['title']}\n{label(data)}", fontsize=8, color="#ccccdc")
    for ax in axes.flat[len(items):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, items):
        ax.set_title(f"{panel['dashboardTitle'].split('/')[-1].strip()} · {panel['title']}", fontsize=8, loc="left")
        ax.grid(True, linewidth=0.5)
        ax.set_axisbelow(True)
        if panel.get("note"):
            ax.text(0.5, 0.5, "no data:\n" + _wrap(panel["note"], 40), ha="center", va="center", fontsize=7,
                    color="#9fa7b3", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        series = [s for t in panel["targets"] for s in t["data"]]
        if panel["targets"][0]["kind"] == "instant":
            series = sorted(series, key=lambda s: s["legend"])
            names, values = [s["legend"] for s in series], [s["value"] for s in series]
            colors = [palette[0] if "pruned" in n else palette[2] if "base" in n else palette[1 + i % 3]
                      for i, n in enumerate(names)]
            ax.barh(names, values, color=colors)
            for i, v in enumerate(values):
                ax.text(v, i, " " + _format(v, panel["unit"]), va="center", fontsize=7)
            ax.invert_yaxis()
            ax.margins(x=0.3)
        else:
            for i, s in enumerate(series):
                xs = [t / 60 for t, _ in s["values"]]
                ys = [v for _, v in s["values"]]
                ax.plot(xs, ys, color=palette[i % len(palette)], linewidth=1.4, label=s["legend"])
            ax.set_xlabel("minutes since the run started")
            ax.legend(loc="best")
            if all(v == 0 for s in series for _, v in s["values"]):
                ax.text(0.5, 0.6, "every value is 0", ha="center", fontsize=7, color="#9fa7b3", transform=ax.transAxes)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.8 / (2.7 * nrows + 0.8)))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    common.stamp_png(out, data)
    return out


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job", default="examples/local.yaml", help="PruningJob YAML (default: examples/local.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                    help="override a field of the job, e.g. spec.datasets.eval.0.generator.count=8 (repeatable)")
    ap.add_argument("--work", type=Path, default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboards.png")
    ap.add_argument("--sidecar", type=Path, default=None, help="default: --out with .json")
    ap.add_argument("--render-only", action="store_true", help="redraw --out from an existing --sidecar")
    args = ap.parse_args(argv)
    sidecar = args.sidecar or args.out.with_suffix(".json")
    if args.render_only:
        print(render(json.loads(sidecar.read_text()), args.out))
        return 0
    job_path = Path(args.job) if Path(args.job).exists() else ROOT / args.job
    job = yaml.safe_load(job_path.read_text())
    with tempfile.TemporaryDirectory(prefix="o1pruner-dashboards-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = record(args.job, args.overrides, job, work)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.write_text(json.dumps(data, indent=1) + "\n")
    render(data, args.out)
    print(f"{sidecar}\n{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
