"""Fixtures of the chart tests: render the chart with the real Helm library.

helm-sdkpy (Helm v4 Go library) has ``Lint`` but no template/dry-run call, so rendering is a real
``helm install`` into kmock's in-memory ``KubernetesEmulator``: Helm renders the chart, validates
the values against ``values.schema.json``, installs ``crds/`` and then creates every object through
the Kubernetes API, where the emulator stores them for assertions. Emulator adjustments:

* discovery of every kind the chart may create (core ``v1``, apps, rbac, apiextensions,
  monitoring.coreos.com), and ``/api/v1`` answered with ``"groupVersion": "v1"`` (kmock 0.8 says
  ``"/v1"``, which Helm's REST mapper cannot use);
* ``HELM_DRIVER=memory``: Helm keeps its release record in memory instead of a Secret (client-go
  writes that Secret as protobuf, which the emulator cannot decode).

The Go runtime of the Helm library reads the environment of the process at load time only, so
the installs run in one subprocess (``helm_render.py``) started with ``HELM_DRIVER=memory``; it
installs every value set into its own fresh emulator and prints the created objects as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy (Helm Go library) is not installed")
pytest.importorskip("kmock", reason="kmock is not installed")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "o1-pruner"
RELEASE = "o1"
NAMESPACE = "o1-system"

#: The value sets every chart test renders (name -> values; None = the chart's defaults).
VALUE_SETS: dict[str, dict[str, Any] | None] = {
    "default": None,
    "monitoring-on": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"},
                               "alertLabels": {"team": "ml"}},
            "dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "o1",
                           "annotations": {"grafana_folder": "O1-Pruner"}},
        }
    },
    "monitoring-off": {"monitoring": {"dashboards": {"enabled": False}}},
    "custom-images": {
        "image": {"repository": "registry.example.com/ml/o1-operator", "tag": "1.2.3", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "defaults": {
            "sampler": {"image": "registry.example.com/vllm/vllm-openai:v0.11.1"},
            "trainer": {"repository": "registry.example.com/ml/o1-trainer", "tag": "1.2.3"},
            "pushgatewayUrl": "http://pushgateway.monitoring:9091",
        },
    },
    "namespaced": {
        "watch": {"namespaces": ["team-a", "team-b"]},
        "monitoring": {"podMonitor": {"enabled": True}},
    },
}


@dataclass
class Rendered:
    """What one ``helm install`` created: objects as the API server received them."""

    name: str
    values: dict[str, Any] | None
    objects: list[dict[str, Any]]
    manifest: list[dict[str, Any]]
    release: dict[str, Any] = field(repr=False)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        for o in self.of_kind(kind):
            meta = o["metadata"]
            if meta["name"] == name and (namespace is None or meta.get("namespace") == namespace):
                return o
        raise KeyError(f"{kind} {namespace}/{name} not rendered; have {[o['metadata']['name'] for o in self.of_kind(kind)]}")

    @property
    def notes(self) -> str:
        info = self.release.get("info") or {}
        return info.get("notes", "")


class HelmInstallError(Exception):
    """``helm install`` failed (schema violation, template error...): the message is Helm's."""


def helm_install_many(sets: dict[str, dict[str, Any] | None], *, chart: Path = CHART, release: str = RELEASE,
                      namespace: str = NAMESPACE, kube_version: str | None = None) -> dict[str, Rendered | HelmInstallError]:
    """Install each value set into its own fresh emulator, in one subprocess (see helm_render.py);
    ``kube_version`` is the Kubernetes version the emulator reports (default: helm_render's)."""
    request = {"chart": str(chart), "release": release, "namespace": namespace, "sets": sets,
               "kubeVersion": kube_version}
    env = dict(os.environ, HELM_DRIVER="memory")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("helm_render.py"))],
        input=json.dumps(request), capture_output=True, text=True, env=env, timeout=240,
    )
    assert proc.returncode == 0, f"helm_render.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out: dict[str, Rendered | HelmInstallError] = {}
    for name, res in json.loads(proc.stdout).items():
        if not res["ok"]:
            out[name] = HelmInstallError(res["error"])
            continue
        manifest = [d for d in yaml.safe_load_all(res["release"].get("manifest", "")) if d]
        out[name] = Rendered(name=name, values=sets[name], objects=res["objects"], manifest=manifest,
                             release=res["release"])
    return out


def helm_install(values: dict[str, Any] | None = None, **kw: Any) -> Rendered:
    """One ``helm install``; raises :class:`HelmInstallError` when Helm refuses."""
    res = helm_install_many({"adhoc": values}, **kw)["adhoc"]
    if isinstance(res, HelmInstallError):
        raise res
    return res


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    """Every value set of :data:`VALUE_SETS`, installed once per session."""
    out = helm_install_many(VALUE_SETS)
    failed = {k: v for k, v in out.items() if isinstance(v, HelmInstallError)}
    assert not failed, failed
    return out  # type: ignore[return-value]


@pytest.fixture(scope="session")
def install():
    return helm_install


# --------------------------------------------------------------------------- Prometheus tier
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
        import urllib.parse
        import urllib.request

        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def reload(self) -> None:
        import signal

        self.procs[0].send_signal(signal.SIGHUP)


def start_prom_stack(tmp: Path, scrape_configs: list[dict], rule_files: list[str] | None = None) -> PromStack:
    """Start pushgateway and prometheus (scrape interval 1 s); the caller must call stop_prom_stack."""
    import shutil

    for binary in ("prometheus", "prometheus-pushgateway"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed (scripts/install-prometheus.sh)")
    pg_port, prom_port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    log_pg = open(tmp / "pushgateway.log", "wb")
    procs.append(subprocess.Popen(
        # Debian's build persists to /var/lib/prometheus by default: keep state in the temp dir.
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{pg_port}",
         f"--persistence.file={tmp / 'pushgateway.data'}"],
        stdout=log_pg, stderr=subprocess.STDOUT, start_new_session=True))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
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
