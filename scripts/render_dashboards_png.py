#!/usr/bin/env python3
"""Render the main panels of the Grafana dashboards to one PNG, from a Prometheus' data.

The PromQL of each panel is read from charts/o1-pruner/dashboards/*.json (so the picture shows
what the dashboards query), its template variables substituted, and the result drawn with
matplotlib in a Grafana-like dark style. Used by tests/chart/test_prometheus.py to produce
docs/dashboards.png; also usable against any Prometheus:

    python scripts/render_dashboards_png.py --prometheus http://localhost:9090 \\
        --pruningjob demo --minutes 30 --out dashboards.png
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[1] / "charts" / "o1-pruner" / "dashboards"

#: (dashboard file, panel title, how to draw it)
MAIN_PANELS = [
    ("length-accuracy.json", "Accuracy: base vs pruned", "bars"),
    ("length-accuracy.json", "Mean length: base vs pruned", "bars"),
    ("length-accuracy.json", "Length reduction", "bars"),
    ("length-accuracy.json", "AES", "bars"),
    ("length-accuracy.json", "Reward during training", "lines"),
    ("length-accuracy.json", "Length during training", "lines"),
    ("pipeline.json", "Sampler throughput (vLLM)", "lines"),
    ("pipeline.json", "Trainer tokens per second", "lines"),
    ("pipeline.json", "PruningJobs by phase", "lines"),
]


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana variables ($name and ${name}), longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def default_variables(pruningjob: str = ".*", dataset: str = ".*", rate_interval: str = "15s") -> dict[str, str]:
    return {"pruningjob": pruningjob, "dataset": dataset, "__rate_interval": rate_interval,
            "__interval": "1s", "__range": "5m"}


def panels(dashboard: dict) -> list[dict]:
    """All panels, including those nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _get(prom: str, path: str, params: dict[str, Any]) -> Any:
    url = f"{prom}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=20) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]["result"]


def legend(fmt: str, labels: dict[str, str]) -> str:
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    return out.strip() or json.dumps(labels)


def render(prometheus: str, out: Path, pruningjob: str, start: float, end: float, step: float = 1.0,
           rate_interval: str = "1m") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variables = default_variables(pruningjob=pruningjob, rate_interval=rate_interval)
    boards = {f.name: json.loads(f.read_text()) for f in DASHBOARDS.glob("*.json")}
    plt.rcParams.update({"figure.facecolor": "#111217", "axes.facecolor": "#181b1f", "axes.edgecolor": "#2c3235",
                         "axes.labelcolor": "#ccccdc", "xtick.color": "#9fa7b3", "ytick.color": "#9fa7b3",
                         "text.color": "#ccccdc", "axes.titlecolor": "#ccccdc", "grid.color": "#2c3235",
                         "font.size": 8, "legend.fontsize": 7, "legend.frameon": False})
    palette = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]
    fig, axes = plt.subplots(3, 3, figsize=(15, 10.5))
    fig.suptitle(f"O1-Pruner dashboards — pruningjob {pruningjob}", fontsize=13, color="#ccccdc")
    for ax, (board_file, title, kind) in zip(axes.flat, MAIN_PANELS):
        board = boards[board_file]
        panel = next(p for p in panels(board) if p.get("title") == title)
        ax.set_title(f"{board['title'].split('/')[-1].strip()} · {title}", fontsize=9, loc="left")
        ax.grid(True, linewidth=0.5)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        if kind == "bars":
            names, values = [], []
            for t in panel["targets"]:
                for series in _get(prometheus, "/api/v1/query", {"query": substitute(t["expr"], variables), "time": end}):
                    names.append(legend(t.get("legendFormat", ""), series["metric"]))
                    values.append(float(series["value"][1]))
            order = sorted(range(len(names)), key=lambda i: names[i])
            names, values = [names[i] for i in order], [values[i] for i in order]
            colors = [palette[0] if "pruned" in n else palette[2] if "base" in n else palette[1 + i % 3]
                      for i, n in enumerate(names)]
            ax.barh(names, values, color=colors)
            for i, v in enumerate(values):
                text = f"{v:.0%}" if unit == "percentunit" else f"{v:.1f}%" if unit == "percent" else f"{v:.3g}"
                ax.text(v, i, " " + text, va="center", fontsize=7)
            ax.invert_yaxis()
            ax.margins(x=0.25)
        else:
            n = 0
            for t in panel["targets"]:
                result = _get(prometheus, "/api/v1/query_range", {
                    "query": substitute(t["expr"], variables), "start": start, "end": end, "step": step})
                for series in result:
                    xs = [float(x) - start for x, _ in series["values"]]
                    ys = [float(y) for _, y in series["values"]]
                    ax.plot(xs, ys, color=palette[n % len(palette)], linewidth=1.6,
                            label=legend(t.get("legendFormat", ""), series["metric"]))
                    n += 1
            ax.set_xlabel("seconds since start")
            if n:
                ax.legend(loc="best")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", default="http://localhost:9090")
    ap.add_argument("--pruningjob", default=".*")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--out", type=Path, default=Path("dashboards.png"))
    args = ap.parse_args()
    end = time.time()
    render(args.prometheus, args.out, args.pruningjob, end - 60 * args.minutes, end, step=max(1.0, args.minutes * 60 / 300))
    print(args.out)


if __name__ == "__main__":
    main()
