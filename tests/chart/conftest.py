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
# The stack itself lives in scripts/promstack.py (scripts/dashboards_from_run.py starts it too).
sys.path.insert(0, str(ROOT / "scripts"))
from promstack import PromStack, PromStackUnavailable, free_port, stop_prom_stack  # noqa: E402
from promstack import start_prom_stack as _start_prom_stack  # noqa: E402

__all__ = ["PromStack", "dashboards_script", "free_port", "start_prom_stack", "stop_prom_stack"]


def dashboards_script():
    """scripts/dashboards_from_run.py as a module (the dashboards' panels, queries and drawing)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashboards_from_run", ROOT / "scripts" / "dashboards_from_run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def start_prom_stack(tmp: Path, scrape_configs: list[dict], rule_files: list[str] | None = None) -> PromStack:
    """:func:`promstack.start_prom_stack`, skipping the test when a binary is not installed."""
    try:
        return _start_prom_stack(tmp, scrape_configs, rule_files)
    except PromStackUnavailable as exc:
        pytest.skip(str(exc))
