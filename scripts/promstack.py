"""Debian's ``prometheus`` + ``prometheus-pushgateway`` on loopback ports, with a generated config.

Shared by the ``prometheus`` test tier (tests/chart/conftest.py) and
scripts/dashboards_from_run.py. Scrape and evaluation interval 1 s; state (TSDB, Pushgateway
persistence, logs) in the caller's directory. ``scripts/install-prometheus.sh`` installs both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

#: Prometheus' scrape interval in every stack (Grafana's ``$__rate_interval`` depends on it).
SCRAPE_INTERVAL_SECONDS = 1.0
BINARIES = ("prometheus", "prometheus-pushgateway")


class PromStackUnavailable(RuntimeError):
    """A binary of the stack is not installed."""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001 - connection refused while starting
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


@dataclass
class PromStack:
    """Debian's prometheus + prometheus-pushgateway on loopback, with a generated config."""

    prometheus_url: str
    pushgateway_url: str
    config_path: Path
    procs: list[subprocess.Popen]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """An instant query (``/api/v1/query``): the result vector."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._api("/api/v1/query", params)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        """A range query (``/api/v1/query_range``): the result matrix."""
        return self._api("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:g}"})

    def _api(self, path: str, params: dict[str, str]) -> list[dict]:
        import urllib.parse
        import urllib.request

        url = f"{self.prometheus_url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"{url}: {body}")
        return body["data"]["result"]

    def reload(self) -> None:
        import signal

        self.procs[0].send_signal(signal.SIGHUP)


def start_prom_stack(tmp: Path, scrape_configs: list[dict], rule_files: list[str] | None = None) -> PromStack:
    """Start pushgateway and prometheus (scrape interval 1 s); the caller must call stop_prom_stack."""
    missing = missing_binaries()
    if missing:
        raise PromStackUnavailable(f"{', '.join(missing)} not installed (scripts/install-prometheus.sh)")
    pg_port, prom_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    log_pg = open(tmp / "pushgateway.log", "wb")
    procs.append(subprocess.Popen(
        # Debian's build persists to /var/lib/prometheus by default: keep state in the temp dir.
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pg_port}",
         f"--persistence.file={tmp / 'pushgateway.data'}"],
        stdout=log_pg, stderr=subprocess.STDOUT, start_new_session=True))
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_SECONDS:g}s", "evaluation_interval": "1s",
                   "scrape_timeout": "900ms"},
        "rule_files": rule_files or [],
        "scrape_configs": [
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{pg_port}"]}]},
            *scrape_configs,
        ],
    }
    config_path = tmp / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp / "tsdb").mkdir(exist_ok=True)
    log_prom = open(tmp / "prometheus.log", "wb")
    procs.insert(0, subprocess.Popen(
        ["prometheus", f"--config.file={config_path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h"],
        stdout=log_prom, stderr=subprocess.STDOUT, start_new_session=True))
    stack = PromStack(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{pg_port}", config_path, procs)
    try:
        _wait_http(f"{stack.pushgateway_url}/-/ready", 30, procs[1])
        _wait_http(f"{stack.prometheus_url}/-/ready", 60, procs[0])
    except Exception:
        stop_prom_stack(stack)
        raise
    return stack


def stop_prom_stack(stack: PromStack) -> None:
    for proc in stack.procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in stack.procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
