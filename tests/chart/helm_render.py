"""Run ``helm install`` (helm-sdkpy) of value sets into kmock KubernetesEmulators; print JSON.

Input (stdin): {"chart", "release", "namespace", "sets": {name: values-or-null}, "kubeVersion"?}.
The emulator reports Kubernetes ``kubeVersion`` (default :data:`KUBE_VERSION`; kmock's own is 1.26,
below the chart's ``kubeVersion`` constraint).
Output (stdout): {name: {"ok": true, "release": {...}, "objects": [...]} | {"ok": false, "error": "..."}}.
Run with ``HELM_DRIVER=memory`` in the environment (tests/chart/conftest.py does).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import helm_sdkpy as helm
import kmock
import yaml

#: Kinds the chart may create: "group/version/plural" -> (kind, namespaced).
RESOURCES: dict[str, tuple[str, bool]] = {
    "v1/namespaces": ("Namespace", False),
    "v1/serviceaccounts": ("ServiceAccount", True),
    "v1/services": ("Service", True),
    "v1/configmaps": ("ConfigMap", True),
    "v1/secrets": ("Secret", True),
    "apps/v1/deployments": ("Deployment", True),
    "rbac.authorization.k8s.io/v1/clusterroles": ("ClusterRole", False),
    "rbac.authorization.k8s.io/v1/clusterrolebindings": ("ClusterRoleBinding", False),
    "rbac.authorization.k8s.io/v1/roles": ("Role", True),
    "rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
    "monitoring.coreos.com/v1/servicemonitors": ("ServiceMonitor", True),
    "monitoring.coreos.com/v1/podmonitors": ("PodMonitor", True),
    "monitoring.coreos.com/v1/prometheusrules": ("PrometheusRule", True),
}
_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
KUBE_VERSION = "1.30.0"


def _emulator(kube_version: str = KUBE_VERSION) -> Any:
    emu = kmock.KubernetesEmulator()
    major, minor, _ = kube_version.split(".")
    emu["get /version"] << {"major": major, "minor": minor, "gitVersion": f"v{kube_version}",
                            "gitTreeState": "clean", "compiler": "gc", "platform": "linux/amd64"}
    for key, (kind, namespaced) in RESOURCES.items():
        emu.resources[key] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, singular=kind.lower(), verbs=set(_VERBS))
    emu["get /api/v1"] << {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "v1",
        "resources": [
            {"name": key.split("/")[-1], "singularName": kind.lower(), "kind": kind, "namespaced": ns, "verbs": _VERBS}
            for key, (kind, ns) in RESOURCES.items()
            if key.startswith("v1/")
        ],
    }
    return emu


async def _install(values: dict[str, Any] | None, chart: str, release: str, namespace: str,
                   kube_version: str = KUBE_VERSION) -> tuple[dict, list[dict]]:
    async with _emulator(kube_version) as emu, kmock.Server(emu) as srv:
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": str(srv.url).rstrip("/")}}],
                "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "test", "namespace": namespace}}],
                "users": [{"name": "test", "user": {"token": "test"}}],
            }))
            cfg = helm.Configuration(namespace=namespace, kubeconfig=str(kubeconfig))
            release_info = await asyncio.wait_for(
                helm.Install(cfg).run(release, chart, values=values, wait=False, timeout=30), timeout=60
            )
        objects = [json.loads(json.dumps(obj.raw)) for _key, obj in emu.objects.items() if not obj.deleted]
    return release_info, objects


async def _main(request: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in request["sets"].items():
        try:
            release, objects = await _install(values, request["chart"], request["release"], request["namespace"],
                                              request.get("kubeVersion") or KUBE_VERSION)
            out[name] = {"ok": True, "release": release, "objects": objects}
        except helm.HelmError as exc:
            out[name] = {"ok": False, "error": str(exc)}
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(json.load(sys.stdin)))))
