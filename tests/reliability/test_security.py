"""Item 6 — security, with the real kopf operator against the emulator.

* every pod template the operator creates (sampler Deployments, sampling/eval Jobs, the
  PyTorchJob's Master and Worker) runs non-root with the "restricted" securityContext;
* S3 credentials reach pods only as ``secretKeyRef``; the operator never reads a Secret, and
  the key values never appear in any object, status, event or log line it produces — also
  when a job inlines them and fails validation;
* RBAC is least privilege: every request the operator makes (full lifecycle, a failed job, a
  deletion, a restart) is covered by ``o1pruner_operator.rbac.REQUIRED_RULES``, every rule is
  used, the chart grants exactly those rules, and none touches Secrets, pods' exec or RBAC;
* an optional NetworkPolicy for the sampler Service; images without shell entrypoints.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from rel_cluster import (
    ROOT, Cluster, drive_lifecycle, example_job, operator, operator_config, pod_specs, wait_for,
)

from o1pruner_operator import rbac

KEY_ID = "AKIARELIABILITYTEST1"
SECRET = "s3cr3t/Reliability+Test/KeyValue0123456789"
SECRET_VALUES = [KEY_ID, SECRET, base64.b64encode(KEY_ID.encode()).decode(), base64.b64encode(SECRET.encode()).decode()]
GPU_EXCEPTIONS: dict[str, str] = {}  # pod path -> why it needs more than "restricted" (none today)


class AllLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage() + (self.formatException(record.exc_info) if record.exc_info else ""))
        except Exception:  # pragma: no cover
            self.lines.append(str(record.msg))


@pytest.fixture
def logs():
    handler = AllLogs()
    loggers = [logging.getLogger(n) for n in ("", "kopf", "o1pruner_operator", "aiohttp")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield handler
    for lg, level in zip(loggers, old):
        lg.removeHandler(handler)
        lg.setLevel(level)


async def _secret(cluster: Cluster) -> None:
    await cluster.create("secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-credentials", "namespace": "research"},
        "data": {"AWS_ACCESS_KEY_ID": SECRET_VALUES[2], "AWS_SECRET_ACCESS_KEY": SECRET_VALUES[3]},
    })


def _operator_calls(cluster: Cluster):
    return [c for c in cluster.calls if not c.agent.startswith("kmock")]


def _everything_but_secrets(cluster: Cluster) -> str:
    kinds = ["pruningjobs", "configmaps", "deployments", "services", "jobs", "pytorchjobs", "events", "pods"]
    return json.dumps({k: cluster.all(k, None) for k in kinds})


# --------------------------------------------------------------------------- pods
def check_restricted(where: str, pod: dict) -> list[str]:
    """Violations of the Pod Security Standard "restricted" profile in one pod spec."""
    bad = []
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        bad.append(f"{where}: pod runAsNonRoot is not true")
    if psc.get("runAsUser") == 0:
        bad.append(f"{where}: pod runs as uid 0")
    if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        bad.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            bad.append(f"{where}: {host}")
    for vol in pod.get("volumes") or []:
        if "hostPath" in vol:
            bad.append(f"{where}: hostPath volume {vol.get('name')}")
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        sc = c.get("securityContext") or {}
        name = f"{where}/{c.get('name')}"
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            bad.append(f"{name}: capabilities not dropped (ALL)")
        if (sc.get("capabilities") or {}).get("add"):
            bad.append(f"{name}: adds capabilities {sc['capabilities']['add']}")
        if sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False:
            bad.append(f"{name}: runs as root")
        if c.get("command") and c["command"][:1] in (["sh"], ["bash"], ["/bin/sh"], ["/bin/bash"]):
            bad.append(f"{name}: shell command {c['command'][:2]}")
    return bad


async def test_every_pod_the_operator_creates_is_restricted(cluster):
    job = example_job("secure-pods")
    job["spec"]["training"]["trainer"]["workers"] = 3  # a Worker template too (4 nodes x 8 GPUs = batch 32)
    async with operator(operator_config(cluster)):
        await cluster.create("pruningjobs", job)
        try:
            await drive_lifecycle(cluster, "secure-pods")
        except AssertionError:
            raise AssertionError(cluster.status("secure-pods")) from None
    pods = []
    for kind in ("deployments", "jobs", "pytorchjobs"):
        for obj in cluster.all(kind):
            pods += [(f"{obj['kind']}/{obj['metadata']['name']}:{w}", p) for w, p in pod_specs(obj)]
    where = sorted(w.split(":")[0] + ":" + w.split(":")[1].replace("spec.", "") for w, _ in pods)
    assert len(pods) == 6, where  # 2 samplers, 2 Jobs, Master + Worker
    violations = [v for w, p in pods if w not in GPU_EXCEPTIONS for v in check_restricted(w, p)]
    assert not violations, violations
    gpu_pods = [w for w, p in pods if any("nvidia.com/gpu" in json.dumps(c.get("resources") or {}) for c in p["containers"])]
    assert len(gpu_pods) == 4  # GPUs come from the device plugin: no privilege needed


# --------------------------------------------------------------------------- credentials
async def test_credentials_only_by_reference_and_never_written_or_logged(cluster, logs):
    await _secret(cluster)
    async with operator(operator_config(cluster)):
        await cluster.create("pruningjobs", example_job("secure-creds"))
        await drive_lifecycle(cluster, "secure-creds")
    # the operator never asks for a Secret (it needs no access to them at all)
    assert not [c for c in _operator_calls(cluster) if c.resource.startswith("secrets")]
    # pods get the keys only through secretKeyRef
    refs = 0
    for kind in ("deployments", "jobs", "pytorchjobs"):
        for obj in cluster.all(kind):
            for _, pod in pod_specs(obj):
                for c in (pod.get("initContainers") or []) + pod["containers"]:
                    for env in c.get("env") or []:
                        if re.search(r"KEY|SECRET|TOKEN|PASSWORD", env["name"]):
                            assert "value" not in env, (obj["metadata"]["name"], env)
                            assert env["valueFrom"]["secretKeyRef"]["name"] == "s3-credentials"
                            refs += 1
    assert refs >= 8  # 2 keys x (2 samplers + sampling Job + eval Job + training)
    text = _everything_but_secrets(cluster) + "\n".join(logs.lines)
    assert not [v for v in SECRET_VALUES if v in text]


async def test_inlined_credentials_fail_the_job_without_echoing_them(cluster, logs):
    """At the operator's log level (INFO). At DEBUG, kopf itself logs whole objects ("Creation
    is in progress: {...}"), so an inlined key that got past the CRD would be in a DEBUG log."""
    logs.setLevel(logging.INFO)
    job = example_job("secure-inline")
    job["spec"]["storage"]["secretAccessKey"] = SECRET  # got past admission (no CRD validation)
    job["spec"]["storage"]["accessKeyId"] = KEY_ID
    async with operator(operator_config(cluster)):
        await cluster.create("pruningjobs", job)
        await wait_for(lambda: cluster.phase("secure-inline") == "Failed", what="Failed")
    status = cluster.status("secure-inline")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidSpec" and "credentials must not be inlined" in failed["message"]
    assert "spec.storage" in failed["message"]
    assert cluster.children("secure-inline")["deployments"] == []  # nothing was started
    stored = json.loads(_everything_but_secrets(cluster))
    # the user's own object keeps what the user wrote: its spec, and kopf's copy of the spec in the
    # last-handled-configuration annotation; everything the operator writes must not
    for o in stored["pruningjobs"]:
        o.pop("spec")
        o["metadata"].get("annotations", {}).pop("o1pruner.dev/last-handled-configuration", None)
    leaks = [line[:300] for line in logs.lines if SECRET in line or KEY_ID in line]
    assert not leaks, leaks
    text = json.dumps(stored)
    assert SECRET not in text and KEY_ID not in text, [k for k, v in stored.items() if SECRET in json.dumps(v)]


# --------------------------------------------------------------------------- RBAC
def _chart_rules() -> list[dict]:
    text = (ROOT / "charts" / "o1-pruner" / "templates" / "_helpers.tpl").read_text()
    rules = []
    for name in ("o1-pruner.namespacedRules", "o1-pruner.clusterRules"):
        body = text.split(f'{{{{- define "{name}" -}}}}', 1)[1].split("{{- end }}", 1)[0]
        rules += yaml.safe_load(body)
    return rules


async def test_rbac_is_least_privilege(cluster):
    await _secret(cluster)
    cfg = operator_config(cluster, sampler_network_policy=True)  # every optional child on
    async with operator(cfg):
        await cluster.create("pruningjobs", example_job("rbac-ok"))
        await drive_lifecycle(cluster, "rbac-ok")
        await cluster.create("pruningjobs", example_job("rbac-bad", model={"source": "/local/only"}))
        await wait_for(lambda: cluster.phase("rbac-bad") == "Failed", what="Failed")
        # suspend while the sampling Job, then the PyTorchJob, exist (the Job / PyTorchJob patches)
        await cluster.create("pruningjobs", example_job("rbac-pause"))
        await wait_for(lambda: cluster.obj("deployments", "rbac-pause-sampler-reference"), what="sampler")
        await cluster.deployment_ready("rbac-pause-sampler-reference")
        await wait_for(lambda: cluster.obj("jobs", "rbac-pause-sample"), what="sample Job")
        await cluster.patch("pruningjobs", "rbac-pause", {"spec": {"suspend": True}})
        await wait_for(lambda: cluster.obj("jobs", "rbac-pause-sample")["spec"].get("suspend"), what="Job suspended")
        await cluster.patch("pruningjobs", "rbac-pause", {"spec": {"suspend": False}})
        await cluster.job_done("rbac-pause-sample")
        await wait_for(lambda: cluster.obj("pytorchjobs", "rbac-pause-train"), what="PyTorchJob")
        # a pass that read the job while it was still suspended may create it suspended; the
        # next pass resumes it (a patch): wait for that, so the suspend below is a patch too
        await wait_for(lambda: not (cluster.obj("pytorchjobs", "rbac-pause-train")["spec"].get("runPolicy") or {})
                       .get("suspend"), what="PyTorchJob running")
        await cluster.patch("pruningjobs", "rbac-pause", {"spec": {"suspend": True}})
        await wait_for(lambda: (cluster.obj("pytorchjobs", "rbac-pause-train")["spec"].get("runPolicy") or {})
                       .get("suspend"), what="PyTorchJob suspended")
        await cluster.create("pruningjobs", example_job("rbac-gone"))
        await wait_for(lambda: cluster.obj("deployments", "rbac-gone-sampler-reference"), what="sampler")
        await cluster.delete("pruningjobs", "rbac-gone")
        await wait_for(lambda: cluster.obj("pruningjobs", "rbac-gone") is None, what="deletion")
        await wait_for(lambda: not any(cluster.children("rbac-gone").values()), what="its children deleted")
        # a job with a sample Job and a PyTorchJob: the operator deletes only what exists
        await cluster.delete("pruningjobs", "rbac-pause")
        await wait_for(lambda: not any(cluster.children("rbac-pause").values()), what="its children deleted")
    async with operator(cfg):  # a restart re-lists everything
        await wait_for(lambda: len([c for c in cluster.calls if c.verb == "list"]) > 6, what="re-list")

    used = {(c.group, c.resource, c.verb) for c in _operator_calls(cluster)}
    assert used, "no operator requests recorded"
    uncovered = sorted(u for u in used if not rbac.covers(*u))
    assert not uncovered, f"requests outside the operator's RBAC: {uncovered}"
    granted = rbac.expand()
    # this run trains on PyTorchJobs; tests/operator/test_rbac.py covers every backend
    unused = sorted(g for g in granted - used - rbac.other_backends("pytorchjob") if g not in rbac.KOPF_ONLY)
    assert not unused, f"permissions granted but never used: {unused}"
    assert rbac.expand(_chart_rules()) == granted, "the chart's ClusterRole differs from rbac.REQUIRED_RULES"
    for group, resource, verb in granted:
        assert "*" not in (group, resource, verb)
        assert resource not in ("secrets", "pods/exec", "pods/attach", "nodes", "serviceaccounts/token")
        assert group != "rbac.authorization.k8s.io"
        if resource == "pods":
            assert verb in ("get", "list", "watch"), "the operator never creates or deletes pods itself"
    print(f"rbac: {len(_operator_calls(cluster))} operator requests, {len(used)} distinct (group, resource, verb), "
          f"{len(granted)} granted")


# --------------------------------------------------------------------------- network, images
async def test_optional_network_policy_admits_only_the_jobs_pods_to_the_sampler(cluster):
    import dataclasses

    from o1pruner_operator.settings import OperatorConfig

    assert any("network" in f.name for f in dataclasses.fields(OperatorConfig)), "no NetworkPolicy option"
    cfg = OperatorConfig.from_env({"O1PRUNER_SAMPLER_NETWORK_POLICY": "true", "O1PRUNER_KUBE_SERVER": cluster.url,
                                   "O1PRUNER_METRICS_PORT": "0", "O1PRUNER_LIVENESS_ENDPOINT": "",
                                   "O1PRUNER_RESYNC_SECONDS": "0.1"})
    async with operator(cfg):
        await cluster.create("pruningjobs", example_job("secure-net"))
        await wait_for(lambda: cluster.obj("deployments", "secure-net-sampler-reference"), what="sampler")
        await wait_for(lambda: cluster.children("secure-net")["networkpolicies"], timeout=5, what="NetworkPolicy")
    dep = cluster.obj("deployments", "secure-net-sampler-reference")
    (policy,) = [cluster.obj("networkpolicies", n) for n in cluster.children("secure-net")["networkpolicies"]]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert "Ingress" in spec["policyTypes"]
    for rule in spec["ingress"]:
        assert rule.get("from"), "ingress must be restricted to named peers"
        assert {p["port"] for p in rule.get("ports") or []} <= {8000}
    assert rbac.covers("networking.k8s.io", "networkpolicies", "create")


def _dockerfiles() -> list[Path]:
    return sorted(p for p in ROOT.rglob("Dockerfile*") if ".venv" not in p.parts and "node_modules" not in p.parts)


def _instruction(text: str, name: str) -> str | None:
    joined = re.sub(r"\\\n", " ", text)
    found = [line.split(None, 1)[1] for line in joined.splitlines() if line.upper().startswith(name + " ")]
    return found[-1].strip() if found else None


@pytest.mark.parametrize("dockerfile", _dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_images_run_non_root_with_an_exec_form_entrypoint(dockerfile):
    text = dockerfile.read_text()
    entry = _instruction(text, "ENTRYPOINT")
    assert entry and entry.startswith("["), f"ENTRYPOINT must be exec form (no shell): {entry}"
    argv = json.loads(entry)
    assert Path(argv[0]).name not in ("sh", "bash", "dash", "ash"), argv
    cmd = _instruction(text, "CMD")
    if cmd:
        assert cmd.startswith("["), f"CMD must be exec form: {cmd}"
        assert not (set(json.loads(cmd)) & {"-c"}), cmd
    user = _instruction(text, "USER")
    assert user and user.split(":")[0] not in ("0", "root"), f"USER: {user}"


def test_the_operator_image_exists_and_runs_the_operator_directly():
    operator_files = [p for p in _dockerfiles() if "o1pruner-operator" in p.read_text()]
    assert operator_files
    for p in operator_files:
        assert json.loads(_instruction(p.read_text(), "ENTRYPOINT"))[0].endswith("o1pruner-operator")
    deployment = (ROOT / "charts" / "o1-pruner" / "templates" / "deployment.yaml").read_text()
    assert "command:" not in deployment  # the chart does not wrap it in a shell either
