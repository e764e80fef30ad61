"""Strict validation of core Kubernetes objects against the published schemas of every Kubernetes
version the chart supports (PyPI ``kubernetes-validate``, strict: an unknown or misspelt field is
an error, as ``kubectl apply``'s strict field validation makes it).

The versions are those ``kubernetes-validate`` ships from the chart's minimum
(``charts/o1-pruner/Chart.yaml`` ``kubeVersion``) to its newest.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART_YAML = ROOT / "charts" / "o1-pruner" / "Chart.yaml"
CORE_API_VERSIONS = {"v1", "apps/v1", "batch/v1", "networking.k8s.io/v1", "policy/v1",
                     "rbac.authorization.k8s.io/v1", "apiextensions.k8s.io/v1"}


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2])


def chart_min_version() -> str:
    spec = yaml.safe_load(CHART_YAML.read_text())["kubeVersion"]
    match = re.search(r">=\s*v?(\d+\.\d+)", spec)
    assert match, f"kubeVersion {spec!r} has no lower bound"
    return match.group(1)


@lru_cache(maxsize=1)
def supported_versions() -> tuple[str, ...]:
    """Every Kubernetes minor version kubernetes-validate knows, from the chart's minimum on."""
    from kubernetes_validate import utils

    low = _version_key(chart_min_version())
    versions = sorted({".".join(v.split(".")[:2]) for v in utils.all_versions()}, key=_version_key)
    chosen = tuple(v for v in versions if _version_key(v) >= low)
    assert chosen, f"kubernetes-validate has no schema for Kubernetes >= {chart_min_version()}"
    return chosen


def is_core(obj: dict[str, Any]) -> bool:
    return obj.get("apiVersion") in CORE_API_VERSIONS


def strict_errors(obj: dict[str, Any], versions: tuple[str, ...] | None = None) -> list[str]:
    """``"<version>: <path>: <message>"`` for every supported version the object fails."""
    import kubernetes_validate as kv

    out = []
    for version in versions or supported_versions():
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "<root>"
            out.append(f"{version}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}: {path}: {exc.message}")
    return out
