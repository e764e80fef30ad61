"""What every child shares: deterministic names, labels, owner reference, security context,
S3 credentials from a Secret reference, the job ConfigMap volume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from o1pruner.rounds import round_prefix
from o1pruner.spec import API_VERSION, KIND, PruningJobSpec, parse_quantity

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB = "o1pruner.dev/job"
#: The pruning round of a child (rounds >= 2 only: round 1's children keep the one-round labels).
LABEL_ROUND = "o1pruner.dev/round"
#: Kueue's queue label: on a PruningJob it is copied to the Jobs and the training job, which are
#: then created suspended and whose ``suspend`` the operator leaves to Kueue.
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
MANAGED_BY = "o1pruner-operator"

#: /tmp of the pods that load models (sampler, training): a sized emptyDir.
MODEL_POD_TMP_SIZE = "8Gi"
CONFIG_DIR = "/etc/o1pruner"
JOB_FILE = f"{CONFIG_DIR}/job.yaml"
DEEPSPEED_FILE = f"{CONFIG_DIR}/deepspeed.json"
SAMPLER_PORT = 8000
NON_ROOT_UID = 1000


@dataclass(frozen=True)
class Names:
    """Deterministic child names: a rerun or a restarted operator finds the same objects.
    Round n >= 2's children are ``<job>-r<n>-...`` (round 1 keeps the one-round names); the
    ConfigMap is shared by every round."""

    job: str
    round: int = 1

    @property
    def _stem(self) -> str:
        return self.job if self.round == 1 else f"{self.job}-r{self.round}"

    @property
    def config(self) -> str:
        return f"{self.job}-config"

    def sampler(self, role: str) -> str:  # role: reference | pruned
        return f"{self._stem}-sampler-{role}"

    @property
    def sample_job(self) -> str:
        return f"{self._stem}-sample"

    @property
    def train(self) -> str:
        return f"{self._stem}-train"

    @property
    def eval_job(self) -> str:
        return f"{self._stem}-evaluate"


@dataclass(frozen=True)
class JobContext:
    """Everything a builder needs about one PruningJob (already validated)."""

    name: str
    namespace: str
    uid: str
    spec: PruningJobSpec
    #: Operator-level knobs (see settings.OperatorConfig); builders only read plain values.
    job_backoff_limit: int = 2
    train_backoff_limit: int = 3
    progress_deadline_seconds: int = 3600
    startup_probe_seconds: int = 3600
    client_resources: dict[str, Any] = field(
        default_factory=lambda: {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
    )
    #: The PruningJob's ``kueue.x-k8s.io/queue-name`` label, if any (see LABEL_KUEUE_QUEUE).
    queue_name: str | None = None
    #: The pruning round the children being built belong to (status.round).
    round: int = 1

    @property
    def names(self) -> Names:
        return Names(self.name, self.round)

    @property
    def storage_uri(self) -> str:
        return self.spec.storage.uri.rstrip("/")

    def artifact(self, rel: str) -> str:
        return f"{self.storage_uri}/{rel}"

    def round_artifact(self, rel: str, round_: int | None = None) -> str:
        """``rel`` in the storage folder of round ``round_`` (default: this context's round)."""
        prefix = round_prefix(self.round if round_ is None else round_)
        return self.artifact(f"{prefix}/{rel}" if prefix else rel)

    def service_url(self, role: str) -> str:
        return f"http://{self.names.sampler(role)}.{self.namespace}.svc:{SAMPLER_PORT}/v1"


def child_labels(ctx: JobContext, component: str) -> dict[str, str]:
    return {
        LABEL_NAME: "o1pruner",
        LABEL_INSTANCE: ctx.name,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: "o1pruner",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB: ctx.name,
        **round_labels(ctx),
    }


def round_args(ctx: JobContext) -> list[str]:
    """``--round N`` for a round >= 2's CLI commands (round 1's are the one-round ones)."""
    return [] if ctx.round == 1 else ["--round", str(ctx.round)]


def round_labels(ctx: JobContext) -> dict[str, str]:
    """The round label of a round >= 2 child (none in round 1)."""
    return {} if ctx.round == 1 else {LABEL_ROUND: str(ctx.round)}


def selector_labels(ctx: JobContext, component: str) -> dict[str, str]:
    """The immutable subset used in selectors."""
    return {LABEL_INSTANCE: ctx.name, LABEL_COMPONENT: component, LABEL_JOB: ctx.name, **round_labels(ctx)}


def owner_reference(ctx: JobContext) -> dict[str, Any]:
    """Children are garbage-collected with their PruningJob (and block its foreground deletion)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ctx.name,
        "uid": ctx.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(ctx: JobContext, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ctx.namespace,
        "labels": child_labels(ctx, component),
        "ownerReferences": [owner_reference(ctx)],
    }


def pod_security_context() -> dict[str, Any]:
    """Pod-level part of the Pod Security Standard "restricted" profile.

    No pod needs more: GPUs come from the NVIDIA device plugin (``nvidia.com/gpu`` resources),
    which needs neither privileges nor root. The official vLLM image defaults to root; it runs
    here as uid 1000 with ``HOME`` and caches on writable emptyDirs.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level part of the "restricted" profile (every container and init container)."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def queued(ctx: JobContext, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with Kueue's queue label when the job is queued (Jobs and the training job)."""
    if ctx.queue_name:
        meta["labels"] = {**meta.get("labels", {}), LABEL_KUEUE_QUEUE: ctx.queue_name}
    return meta


def hf_token_env(ctx: JobContext) -> list[dict[str, Any]]:
    """HF_TOKEN from the Secret the spec names (gated models), never inline."""
    ref = ctx.spec.model.hf_token_secret
    if ref is None:
        return []
    return [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}]


def s3_env(ctx: JobContext) -> list[dict[str, Any]]:
    """S3 settings; keys only as secretKeyRef (never inline, never in status or events)."""
    storage = ctx.spec.storage
    env: list[dict[str, Any]] = []
    if storage.credentials_secret is not None:
        ref = storage.credentials_secret
        env += [
            {"name": "AWS_ACCESS_KEY_ID",
             "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.access_key_id_key}}},
            {"name": "AWS_SECRET_ACCESS_KEY",
             "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.secret_access_key_key}}},
        ]
    if storage.endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint_url})
    if storage.region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": storage.region})
    return env


def common_env(ctx: JobContext) -> list[dict[str, Any]]:
    env = [
        {"name": "HOME", "value": "/tmp"},
        # uid 1000 has no passwd entry in the images: getpass.getuser() (torch inductor, triton
        # cache paths) falls back to these.
        {"name": "USER", "value": "o1pruner"},
        {"name": "LOGNAME", "value": "o1pruner"},
        {"name": "HF_HOME", "value": "/cache/hf"},
        {"name": "O1PRUNER_JOB_NAME", "value": ctx.name},
        {"name": "O1PRUNER_NAMESPACE", "value": ctx.namespace},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    return env + hf_token_env(ctx) + s3_env(ctx)


def metrics_ports(ctx: JobContext) -> list[dict[str, Any]]:
    """The ``metrics`` container port the pipeline PodMonitor scrapes by name, when the pod serves
    ``/metrics`` (spec.metrics.port); none when it pushes to a Pushgateway instead."""
    if ctx.spec.metrics.pushgateway_url:
        return []
    return [{"name": "metrics", "containerPort": ctx.spec.metrics.port, "protocol": "TCP"}]


def config_volume(ctx: JobContext) -> dict[str, Any]:
    return {"name": "config", "configMap": {"name": ctx.names.config}}


def config_mount() -> dict[str, Any]:
    return {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}


def scratch_volumes() -> list[dict[str, Any]]:
    return [{"name": "tmp", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]


def scratch_mounts() -> list[dict[str, Any]]:
    return [{"name": "tmp", "mountPath": "/tmp"}, {"name": "cache", "mountPath": "/cache"}]


def model_cache_volume(ctx: JobContext) -> dict[str, Any]:
    """``cache`` (HF_HOME and vLLM's caches): the spec's PersistentVolumeClaim, shared by every
    sampler and training pod so a model is downloaded once, or a sized emptyDir per pod."""
    cache = ctx.spec.model.cache
    if cache.claim_name:
        return {"name": "cache", "persistentVolumeClaim": {"claimName": cache.claim_name}}
    return {"name": "cache", "emptyDir": {"sizeLimit": str(cache.size)}}


def model_pod_volumes(ctx: JobContext) -> list[dict[str, Any]]:
    """The scratch volumes of a pod that loads a model: a sized /tmp and the model cache."""
    return [{"name": "tmp", "emptyDir": {"sizeLimit": MODEL_POD_TMP_SIZE}}, model_cache_volume(ctx)]


def with_ephemeral_storage(resources: dict[str, Any], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    """``resources`` with an ``ephemeral-storage`` request for the disk-backed emptyDirs among
    ``volumes`` (their sizeLimits), so the scheduler puts the pod on a node whose disk fits the
    model; an explicit request in the spec wins."""
    total = sum(parse_quantity(v["emptyDir"]["sizeLimit"]) for v in volumes
                if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory" and v["emptyDir"].get("sizeLimit"))
    out = {k: dict(v) for k, v in resources.items()}
    if total and "ephemeral-storage" not in out.get("requests", {}):
        gib = total / (1024 ** 3)
        out.setdefault("requests", {})["ephemeral-storage"] = f"{int(gib)}Gi" if gib == int(gib) else str(int(total))
    return out


def shm_volume(size: Any) -> dict[str, Any]:
    """/dev/shm as a memory emptyDir (NCCL and vLLM need more than the 64 MiB default)."""
    return {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(size)}}


def shm_mount() -> dict[str, Any]:
    return {"name": "dshm", "mountPath": "/dev/shm"}


def placement(pod_spec: dict[str, Any], spec_placement: Any) -> dict[str, Any]:
    """Node selector, tolerations, affinity, RuntimeClass, PriorityClass and scheduler from the spec."""
    if spec_placement.node_selector:
        pod_spec["nodeSelector"] = dict(spec_placement.node_selector)
    if spec_placement.tolerations:
        pod_spec["tolerations"] = [t.to_wire() for t in spec_placement.tolerations]
    if spec_placement.affinity:
        pod_spec["affinity"] = dict(spec_placement.affinity)
    for key, value in (("runtimeClassName", spec_placement.runtime_class_name),
                       ("priorityClassName", spec_placement.priority_class_name),
                       ("schedulerName", spec_placement.scheduler_name)):
        if value:
            pod_spec[key] = value
    return pod_spec


def pod_spec_base(ctx: JobContext) -> dict[str, Any]:
    pod: dict[str, Any] = {"securityContext": pod_security_context()}
    if ctx.spec.service_account_name:
        pod["serviceAccountName"] = ctx.spec.service_account_name
    return pod
