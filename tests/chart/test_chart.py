"""Lint and render the Helm chart with the real Helm library (see conftest.py)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from .conftest import CHART, NAMESPACE, RELEASE, ROOT, VALUE_SETS, HelmInstallError, helm, helm_install_many

FULLNAME = f"{RELEASE}-o1-pruner"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
CRD_FILE = "pruningjobs.o1pruner.dev.yaml"


def _chart_meta() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def _env(deploy: dict) -> dict[str, str]:
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_lint_passes():
    result = asyncio.run(helm.Lint(helm.Configuration(namespace=NAMESPACE)).run(str(CHART)))
    errors = [m for m in result.get("Messages") or [] if m.get("Severity", 0) >= 2]  # 1 info, 2 warning, 4 error
    assert not result.get("Errors"), result
    assert not errors, result


def test_default_values_satisfy_the_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)
    for name, values in VALUE_SETS.items():
        if values:
            merged = _merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
            jsonschema.validate(merged, schema)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_object_parses_and_is_labelled(rendered, name):
    r = rendered[name]
    assert r.objects, "nothing was created"
    meta = _chart_meta()
    # The API server received exactly what the release manifest holds (plus the CRDs of crds/).
    manifest_keys = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in r.manifest}
    created = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in r.objects}
    assert manifest_keys == {k for k in created if k[0] != "CustomResourceDefinition"}
    for obj in r.objects:
        assert {"apiVersion", "kind", "metadata"} <= obj.keys(), obj
        assert re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", obj["metadata"]["name"]), obj["metadata"]
        assert len(obj["metadata"]["name"]) <= 253
        if obj["kind"] == "CustomResourceDefinition":
            continue
        labels = obj["metadata"].get("labels", {})
        for label in STANDARD_LABELS:
            assert labels.get(label), f"{obj['kind']}/{obj['metadata']['name']} lacks {label}"
        assert labels["app.kubernetes.io/name"] == "o1-pruner"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/version"] == str(meta["appVersion"])
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"o1-pruner-{meta['version']}"
        for value in labels.values():
            assert isinstance(value, str) and len(value) <= 63
    for cm in r.of_kind("ConfigMap"):  # dashboards are valid JSON
        for key, text in cm["data"].items():
            if key.endswith(".json"):
                json.loads(text)


def test_default_objects(rendered):
    r = rendered["default"]
    kinds = sorted(o["kind"] for o in r.objects if o["kind"] != "CustomResourceDefinition")
    assert kinds == sorted([
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ConfigMap", "ConfigMap",
    ])
    assert not r.of_kind("Role") and not r.of_kind("RoleBinding")
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert not r.of_kind(kind), f"{kind} must be off by default (needs the prometheus-operator CRDs)"
    binding = r.get("ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    assert "all namespaces" in r.notes and "kubectl apply" in r.notes


def test_operator_deployment_is_hardened(rendered):
    deploy = rendered["default"].get("Deployment", FULLNAME, NAMESPACE)
    spec = deploy["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(spec["selector"]["matchLabels"].items()) <= set(spec["template"]["metadata"]["labels"].items())
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert c["image"] == f"ghcr.io/o1-pruner/operator:{_chart_meta()['appVersion']}"
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port == {"http-metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # a writable /tmp is the only writable path
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    env = _env(deploy)
    assert env["O1PRUNER_NAMESPACES"] == ""
    assert env["O1PRUNER_METRICS_PORT"] == "8080"
    assert env["O1PRUNER_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8081/healthz"
    assert env["O1PRUNER_SAMPLER_IMAGE"] == "vllm/vllm-openai:v0.11.0"
    assert env["O1PRUNER_TRAINER_IMAGE"] == f"ghcr.io/o1-pruner/trainer:{_chart_meta()['appVersion']}"
    svc = rendered["default"].get("Service", f"{FULLNAME}-metrics", NAMESPACE)
    assert svc["spec"]["ports"] == [{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]


def test_default_images_match_the_spec_model_defaults(rendered):
    """The chart's default sampler image is the one the PruningJob spec model defaults to."""
    from o1pruner.spec import SamplerSpec, TrainerResources

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["defaults"]["sampler"]["image"] == SamplerSpec().image
    assert TrainerResources().image.rsplit(":", 1)[0] == values["defaults"]["trainer"]["repository"]


def test_custom_images(rendered):
    deploy = rendered["custom-images"].get("Deployment", FULLNAME, NAMESPACE)
    pod = deploy["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/ml/o1-operator:1.2.3"
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    env = _env(deploy)
    assert env["O1PRUNER_SAMPLER_IMAGE"] == "registry.example.com/vllm/vllm-openai:v0.11.1"
    assert env["O1PRUNER_TRAINER_IMAGE"] == "registry.example.com/ml/o1-trainer:1.2.3"
    assert env["O1PRUNER_PUSHGATEWAY_URL"] == "http://pushgateway.monitoring:9091"
    notes = rendered["custom-images"].notes
    assert "registry.example.com/ml/o1-trainer:1.2.3" in notes


def test_monitoring_on(rendered):
    r = rendered["monitoring-on"]
    sm = r.get("ServiceMonitor", f"{FULLNAME}-operator", NAMESPACE)
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    deploy_labels = r.get("Deployment", FULLNAME)["spec"]["template"]["metadata"]["labels"]
    assert set(sm["spec"]["selector"]["matchLabels"].items()) <= set(deploy_labels.items())
    sampler = r.get("PodMonitor", f"{FULLNAME}-sampler", NAMESPACE)
    pipeline = r.get("PodMonitor", f"{FULLNAME}-pipeline", NAMESPACE)
    for pm in (sampler, pipeline):
        assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert pm["spec"]["namespaceSelector"] == {"any": True}
    assert sampler["spec"]["selector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["sampler-reference", "sampler-pruned"]},
        {"key": "o1pruner.dev/job", "operator": "Exists"},
    ]
    ep = sampler["spec"]["podMetricsEndpoints"][0]
    assert ep["port"] == "http" and ep["path"] == "/metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_o1pruner_dev_job"], "targetLabel": "pruningjob"} in ep["relabelings"]
    assert pipeline["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    rule = r.get("PrometheusRule", FULLNAME, NAMESPACE)
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}
    assert {"O1PrunerJobFailed", "O1PrunerSamplerDown", "O1PrunerNoTrainingProgress"} <= alerts.keys()
    assert f'job="{NAMESPACE}/{FULLNAME}-sampler"' in alerts["O1PrunerSamplerDown"]["expr"]
    assert all(a["labels"]["team"] == "ml" for a in alerts.values())
    assert "{{ $labels.pruningjob }}" in alerts["O1PrunerNoTrainingProgress"]["annotations"]["description"]
    dashboards = r.of_kind("ConfigMap")
    assert len(dashboards) == 2
    for cm in dashboards:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "o1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "O1-Pruner"
    titles = {json.loads(v)["title"] for cm in dashboards for v in cm["data"].values()}
    assert titles == {"O1-Pruner / Length and accuracy", "O1-Pruner / Pipeline"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")
def test_alert_rules_pass_promtool(rendered, tmp_path):
    rule = rendered["monitoring-on"].get("PrometheusRule", FULLNAME)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_monitoring_off(rendered):
    r = rendered["monitoring-off"]
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"):
        assert not r.of_kind(kind)
    assert "Grafana" not in r.notes


def test_default_dashboards_use_the_sidecar_label(rendered):
    cms = rendered["default"].of_kind("ConfigMap")
    assert {cm["metadata"]["name"] for cm in cms} == {
        f"{FULLNAME}-dashboard-length-accuracy", f"{FULLNAME}-dashboard-pipeline"}
    for cm in cms:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["namespace"] == NAMESPACE


def test_namespaced_mode(rendered):
    r = rendered["namespaced"]
    roles = r.of_kind("Role")
    assert sorted(ro["metadata"]["namespace"] for ro in roles) == ["team-a", "team-b"]
    bindings = r.of_kind("RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # The ClusterRole keeps only cluster-scoped discovery (CRDs, namespaces): no namespaced resource.
    (cr,) = r.of_kind("ClusterRole")
    cluster_resources = {res for rule in cr["rules"] for res in rule["resources"]}
    assert cluster_resources <= {"customresourcedefinitions", "namespaces"}, cluster_resources
    assert _env(r.get("Deployment", FULLNAME))["O1PRUNER_NAMESPACES"] == "team-a,team-b"
    for pm in r.of_kind("PodMonitor"):
        assert pm["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert "team-a, team-b" in r.notes


BAD_VALUES = {
    "replicaCount-string": ({"replicaCount": "x"}, "/replicaCount"),
    "replicaCount-3": ({"replicaCount": 3}, "/replicaCount"),
    "image-tag-int": ({"image": {"tag": 5}}, "/image/tag"),
    "servicemonitor-enabled-string": ({"monitoring": {"serviceMonitor": {"enabled": "yes"}}}, "/monitoring/serviceMonitor/enabled"),
    "namespaces-string": ({"watch": {"namespaces": "team-a"}}, "/watch/namespaces"),
    "namespace-invalid": ({"watch": {"namespaces": ["Team_A"]}}, "/watch/namespaces/0"),
    "port-privileged": ({"operator": {"port": 80}}, "/operator/port"),
    "unknown-key": ({"replicas": 1}, "replicas"),  # a typo of replicaCount
}


@pytest.fixture(scope="module")
def rejected() -> dict:
    return helm_install_many({name: values for name, (values, _path) in BAD_VALUES.items()})


@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_schema_rejects_bad_values(rejected, name):
    """values.schema.json makes Helm refuse the install, naming the offending value."""
    result = rejected[name]
    assert isinstance(result, HelmInstallError), f"{name}: Helm accepted {BAD_VALUES[name][0]}"
    msg = str(result)
    assert "schema" in msg and BAD_VALUES[name][1] in msg, msg


def test_chart_crd_is_the_generated_one(rendered):
    top = ROOT / "crds" / CRD_FILE
    copy = CHART / "crds" / CRD_FILE
    if not top.exists():
        pytest.skip(f"crds/{CRD_FILE} is not generated yet (operator helper: `o1pruner crd > crds/{CRD_FILE}`)")
    assert copy.exists(), f"copy crds/{CRD_FILE} into charts/o1-pruner/crds/"
    assert copy.read_bytes() == top.read_bytes(), f"charts/o1-pruner/crds/{CRD_FILE} differs from crds/{CRD_FILE}"
    crd = yaml.safe_load(top.read_text())
    installed = rendered["default"].get("CustomResourceDefinition", crd["metadata"]["name"])
    assert installed["spec"]["group"] == "o1pruner.dev"
    assert installed["spec"]["names"]["kind"] == "PruningJob"


def test_chart_has_no_other_crds():
    extra = {p.name for p in (CHART / "crds").glob("*")} - {CRD_FILE}
    assert not extra, extra


# --------------------------------------------------------------------------- alignment with the operator
def test_operator_reads_the_rendered_environment(rendered):
    """The env the chart sets is what o1pruner_operator.settings reads (names, ports, namespaces)."""
    settings = pytest.importorskip("o1pruner_operator.settings", reason="operator package not importable")
    for name in ("default", "namespaced"):
        deploy = rendered[name].get("Deployment", FULLNAME)
        env = _env(deploy)
        cfg = settings.OperatorConfig.from_env(env)
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert cfg.metrics_port == ports["http-metrics"]
        assert cfg.liveness_endpoint == f"http://0.0.0.0:{ports['health']}/healthz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        expected = ("team-a", "team-b") if name == "namespaced" else ()
        assert cfg.namespaces == expected
        assert cfg.clusterwide == (name == "default")
        assert not cfg.peering  # standalone: one replica, Recreate, no peering RBAC
        assert cfg.log_level == "INFO" and cfg.log_format == "json"
        assert (cfg.training_backend, cfg.trainjob_runtime) == ("trainjob", "torch-distributed")  # chart default


def test_pod_monitors_select_the_operators_pods(rendered):
    """Labels and port names in the PodMonitors are those the operator puts on its children."""
    common = pytest.importorskip("o1pruner_operator.manifests.common", reason="operator package not importable")
    sampler_mod = pytest.importorskip("o1pruner_operator.manifests.sampler")
    values = yaml.safe_load((CHART / "values.yaml").read_text())["monitoring"]
    assert values["podLabels"]["job"] == common.LABEL_JOB
    assert values["podLabels"]["component"] == common.LABEL_COMPONENT
    assert set(values["podMonitor"]["sampler"]["components"]) == {sampler_mod.component("reference"), sampler_mod.component("pruned")}
    r = rendered["monitoring-on"]
    sampler = r.get("PodMonitor", f"{FULLNAME}-sampler")
    assert sampler["spec"]["podMetricsEndpoints"][0]["port"] == "http"


SAMPLER_JOB = f"{NAMESPACE}/{FULLNAME}-sampler"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")
def test_alerts_fire_when_they_should(rendered, tmp_path):
    """`promtool test rules` on the rendered alerts: a failed job; a stuck training job fires while a
    finished one (pruned model evaluated, stale pushed timestamp) does not."""
    rule = rendered["monitoring-on"].get("PrometheusRule", FULLNAME)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'o1pruner_operator_transitions_total{from_phase="Training",to_phase="Failed"}',
                 "values": "0 0 1x120"},
                # a sampler loading its model for 40 min (never served yet), one that served and died
                {"series": f'up{{job="{SAMPLER_JOB}",namespace="research",pod="loading"}}', "values": "0x60"},
                {"series": f'up{{job="{SAMPLER_JOB}",namespace="research",pod="died"}}', "values": "1x10 0x50"},
                {"series": 'o1pruner_operator_jobs{phase="Training"}', "values": "1x60"},
                {"series": 'o1pruner_train_last_step_timestamp_seconds{pruningjob="stuck"}', "values": "0x60"},
                {"series": 'o1pruner_train_last_step_timestamp_seconds{pruningjob="done"}', "values": "0x60"},
                {"series": 'o1pruner_eval_accuracy{pruningjob="done",model="pruned",dataset="d"}', "values": "0.5x60"},
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "O1PrunerJobFailed", "exp_alerts": []},
                {"eval_time": "5m", "alertname": "O1PrunerJobFailed", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "team": "ml"},
                    "exp_annotations": {
                        "summary": "A PruningJob failed",
                        "description": "A PruningJob turned Failed in the last 1h; see kubectl get pruningjobs -A "
                                       "and the job status message."},
                }]},
                # ... and clears by itself once the failure is older than the window
                {"eval_time": "90m", "alertname": "O1PrunerJobFailed", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "O1PrunerSamplerDown", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "team": "ml", "job": SAMPLER_JOB, "namespace": "research",
                                   "pod": "died"},
                    "exp_annotations": {
                        "summary": "A vLLM sampler of a PruningJob is down",
                        "description": "Sampler pod research/died of PruningJob  served /metrics before and has "
                                       "stopped answering."},
                }]},
                {"eval_time": "20m", "alertname": "O1PrunerNoTrainingProgress", "exp_alerts": []},
                {"eval_time": "45m", "alertname": "O1PrunerNoTrainingProgress", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "team": "ml", "pruningjob": "stuck"},
                    "exp_annotations": {
                        "summary": "A PruningJob is training but makes no progress",
                        "description": "PruningJob stuck has made no optimizer step for more than 1800 s while jobs are in phase Training."},
                }]},
            ],
        }],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    out = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _operator_children(pushgateway: bool = True):
    """Pod templates the operator builds for the example PruningJob (workers=1 for a Worker replica);
    ``pushgateway=False``: the same job with pods that serve /metrics instead of pushing."""
    common = pytest.importorskip("o1pruner_operator.manifests.common", reason="operator package not importable")
    jobs = pytest.importorskip("o1pruner_operator.manifests.jobs")
    ptj = pytest.importorskip("o1pruner_operator.manifests.pytorchjob")
    sampler = pytest.importorskip("o1pruner_operator.manifests.sampler")
    from o1pruner.spec import load_job

    job = load_job(ROOT / "examples" / "pruningjob.yaml")
    spec = job.spec.model_copy(deep=True)
    spec.training.trainer.workers = 1
    if not pushgateway:
        spec.metrics.pushgateway_url = None
    ctx = common.JobContext(name=job.metadata.name, namespace="default", uid="uid-1", spec=spec)
    samplers = [sampler.sampler_deployment(ctx, role)["spec"]["template"] for role in ("reference", "pruned")]
    pipeline = [jobs.sample_job(ctx)["spec"]["template"], jobs.eval_job(ctx)["spec"]["template"],
                *(r["template"] for r in ptj.pytorch_job(ctx)["spec"]["pytorchReplicaSpecs"].values())]
    return samplers, pipeline


def _selected(pod_template: dict, selector: dict) -> bool:
    labels = pod_template["metadata"]["labels"]
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _port_names(pod_template: dict) -> set[str]:
    return {p.get("name") for c in pod_template["spec"]["containers"] for p in c.get("ports", [])}


def test_pod_monitors_select_every_operator_child(rendered):
    """The PodMonitors' selectors match the pods the operator really builds (and nothing crosses over)."""
    samplers, pipeline = _operator_children()
    r = rendered["monitoring-on"]
    sm = r.get("PodMonitor", f"{FULLNAME}-sampler")["spec"]
    pm = r.get("PodMonitor", f"{FULLNAME}-pipeline")["spec"]
    for pod in samplers:
        assert _selected(pod, sm["selector"]) and not _selected(pod, pm["selector"]), pod["metadata"]["labels"]
        assert sm["podMetricsEndpoints"][0]["port"] in _port_names(pod)
    for pod in pipeline:
        assert _selected(pod, pm["selector"]) and not _selected(pod, sm["selector"]), pod["metadata"]["labels"]


def test_pipeline_pods_declare_the_metrics_port_when_they_serve(rendered):
    port = rendered["monitoring-on"].get("PodMonitor", f"{FULLNAME}-pipeline")["spec"]["podMetricsEndpoints"][0]["port"]
    _, serving = _operator_children(pushgateway=False)
    components = [pod["metadata"]["labels"]["app.kubernetes.io/component"] for pod in serving]
    assert components == ["sample", "evaluate", "train-master", "train-worker"]
    # Only global rank 0 publishes the trainer's metrics: Worker pods have nothing to scrape.
    assert port not in _port_names(serving.pop())
    for pod in serving:
        assert port in _port_names(pod), pod["metadata"]["labels"]
        (declared,) = [p for c in pod["spec"]["containers"] for p in c.get("ports", []) if p["name"] == port]
        assert declared["containerPort"] == 9400
    _, pushing = _operator_children(pushgateway=True)  # nothing listens: no target for the PodMonitor
    for pod in pushing:
        assert port not in _port_names(pod), pod["metadata"]["labels"]


# --------------------------------------------------------------------------- real-cluster readiness
def test_kubernetes_older_than_1_28_is_refused():
    """The CRD needs CEL rules with fieldPath and transition rules (>= 1.28)."""
    for chart in (CHART, CHART.with_name("o1-pruner-crds")):
        res = helm_install_many({"old": None}, chart=chart, kube_version="1.27.9")["old"]
        assert isinstance(res, HelmInstallError) and "kubeVersion" in str(res), (chart.name, res)
        assert not isinstance(helm_install_many({"ok": None}, chart=chart, kube_version="1.28.0")["ok"],
                              HelmInstallError)


def test_the_crd_chart_installs_the_generated_crd_as_a_template():
    """Helm never upgrades crds/: the o1-pruner-crds chart holds the same CRD as a template, so
    `helm upgrade` upgrades it, and keeps it (with every PruningJob) on uninstall."""
    res = helm_install_many({"crds": None}, chart=CHART.with_name("o1-pruner-crds"))["crds"]
    assert not isinstance(res, HelmInstallError), res
    generated = yaml.safe_load((ROOT / "crds" / CRD_FILE).read_text())
    (crd,) = res.of_kind("CustomResourceDefinition")
    assert crd["spec"] == generated["spec"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert (CHART.with_name("o1-pruner-crds") / "files" / CRD_FILE).resolve() == (ROOT / "crds" / CRD_FILE).resolve()


def test_dashboards_can_go_to_grafanas_namespace():
    res = helm_install_many({"ns": {"monitoring": {"dashboards": {"namespace": "monitoring"}}}})["ns"]
    assert not isinstance(res, HelmInstallError), res
    dashboards = [cm for cm in res.of_kind("ConfigMap") if "grafana_dashboard" in cm["metadata"]["labels"]]
    assert len(dashboards) == 2 and {cm["metadata"]["namespace"] for cm in dashboards} == {"monitoring"}


def test_rendered_core_objects_pass_the_strict_schemas(rendered):
    """Every core object the chart renders (any value set) passes the published schemas of every
    Kubernetes version the chart supports, in strict mode (a misspelt field is an error)."""
    import sys

    sys.path.append(str(ROOT / "tests"))
    import k8s_schemas

    errors, kinds = [], set()
    for r in rendered.values():
        for obj in r.objects:
            if k8s_schemas.is_core(obj):
                kinds.add(obj["kind"])
                errors += k8s_schemas.strict_errors(obj)
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "CustomResourceDefinition"} <= kinds
    assert errors == []
