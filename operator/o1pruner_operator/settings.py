"""Operator configuration from the environment (``O1PRUNER_*``), and the kopf settings it implies."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

#: kopf's finalizer name. No handler requires a finalizer any more (see handlers.py), so kopf
#: never adds it, and removes it from jobs an older operator created; it has to know the name.
FINALIZER = "o1pruner.dev/finalizer"
ANNOTATION_PREFIX = "o1pruner.dev"


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    return int(raw) if raw else default


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{key}: {raw!r} is not a boolean (true/false)")


def _list(env: Mapping[str, str], key: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(key, "").split(",") if item.strip())


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class OperatorConfig:
    #: Namespaces to watch; empty means cluster-wide (the Helm chart's default).
    namespaces: tuple[str, ...] = ()
    #: kopf peering object name; empty means standalone. The chart runs one replica with the
    #: Recreate strategy, so standalone needs no KopfPeering CRDs. Set it for HA replicas.
    peering: str = ""
    #: Safety-net re-read of every running job; changes of the job and of its children wake
    #: its reconciler at once (watches), so this only bounds how long a missed event can wait.
    resync_seconds: float = 300.0
    metrics_port: int = 8080  # 0 disables the Prometheus endpoint
    liveness_endpoint: str = "http://0.0.0.0:8081/healthz"  # empty disables
    log_format: str = "json"  # json | plain | full
    log_level: str = "INFO"
    #: kopf posts its own log records of this level or above as k8s Events (our own
    #: transitions are posted explicitly). WARNING keeps the event stream readable.
    posting_level: str = "WARNING"
    watch_server_timeout: int = 300
    watch_client_timeout: int = 330
    watch_connect_timeout: int = 30
    job_backoff_limit: int = 2
    train_backoff_limit: int = 3
    crashloop_restarts: int = 3
    startup_probe_seconds: int = 3600
    #: Backend of jobs that set no spec.training.backend: trainjob | pytorchjob | job.
    training_backend: str = "trainjob"
    #: ClusterTrainingRuntime the TrainJob backend references.
    trainjob_runtime: str = "torch-distributed"
    #: Defaults for PruningJobs that keep the spec model's built-in image / no Pushgateway.
    sampler_image: str = ""
    trainer_image: str = ""
    pushgateway_url: str = ""
    #: Create a NetworkPolicy per sampler that admits only the PruningJob's own pods (and the
    #: namespaces below, e.g. where Prometheus runs) to the vLLM port. Needs a CNI that enforces it.
    sampler_network_policy: bool = False
    sampler_network_policy_allow_namespaces: tuple[str, ...] = ()
    #: For tests and local development only: an explicit API server (no TLS verification).
    kube_server: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "OperatorConfig":
        env = os.environ if env is None else env
        return cls(
            namespaces=_list(env, "O1PRUNER_NAMESPACES"),
            peering=env.get("O1PRUNER_PEERING", "").strip(),
            resync_seconds=_float(env, "O1PRUNER_RESYNC_SECONDS", 300.0),
            metrics_port=_int(env, "O1PRUNER_METRICS_PORT", 8080),
            liveness_endpoint=env.get("O1PRUNER_LIVENESS_ENDPOINT", "http://0.0.0.0:8081/healthz"),
            log_format=env.get("O1PRUNER_LOG_FORMAT", "json").lower(),
            log_level=env.get("O1PRUNER_LOG_LEVEL", "INFO").upper(),
            posting_level=env.get("O1PRUNER_POSTING_LEVEL", "WARNING").upper(),
            watch_server_timeout=_int(env, "O1PRUNER_WATCH_SERVER_TIMEOUT", 300),
            watch_client_timeout=_int(env, "O1PRUNER_WATCH_CLIENT_TIMEOUT", 330),
            watch_connect_timeout=_int(env, "O1PRUNER_WATCH_CONNECT_TIMEOUT", 30),
            job_backoff_limit=_int(env, "O1PRUNER_JOB_BACKOFF_LIMIT", 2),
            train_backoff_limit=_int(env, "O1PRUNER_TRAIN_BACKOFF_LIMIT", 3),
            crashloop_restarts=_int(env, "O1PRUNER_CRASHLOOP_RESTARTS", 3),
            startup_probe_seconds=_int(env, "O1PRUNER_STARTUP_PROBE_SECONDS", 3600),
            training_backend=env.get("O1PRUNER_TRAINING_BACKEND", "trainjob").strip().lower(),
            trainjob_runtime=env.get("O1PRUNER_TRAINJOB_RUNTIME", "torch-distributed").strip(),
            sampler_image=env.get("O1PRUNER_SAMPLER_IMAGE", "").strip(),
            trainer_image=env.get("O1PRUNER_TRAINER_IMAGE", "").strip(),
            pushgateway_url=env.get("O1PRUNER_PUSHGATEWAY_URL", "").strip(),
            sampler_network_policy=_bool(env, "O1PRUNER_SAMPLER_NETWORK_POLICY", False),
            sampler_network_policy_allow_namespaces=_list(env, "O1PRUNER_SAMPLER_NETWORK_POLICY_ALLOW_NAMESPACES"),
            kube_server=env.get("O1PRUNER_KUBE_SERVER", "").strip(),
        )

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def apply_kopf_settings(settings: Any, config: OperatorConfig) -> None:
    """Settings chosen on purpose (called from the startup handler)."""
    import kopf

    # The finalizer older operators added (kopf removes it: no handler requires one); progress
    # and diff-base in annotations so that kopf leaves `status` entirely to us (the default would
    # add status.kopf).
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = getattr(logging, config.posting_level, logging.WARNING)
    # Long server-side watch timeouts with a slightly longer client timeout: the stream is
    # re-established regularly, and a silently dead connection is noticed.
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = config.watch_connect_timeout
    settings.watching.reconnect_backoff = 1.0
    settings.peering.standalone = not config.peering
    if config.peering:
        settings.peering.name = config.peering
        settings.peering.clusterwide = config.clusterwide
    # Threads for the sync handlers (startup, probe); the event handlers are async.
    settings.execution.max_workers = 20
