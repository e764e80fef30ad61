"""The ``PruningJob`` spec: the one model the CRD, the operator and the trainer derive from.

A user writes the same YAML for ``kubectl apply -f`` and for ``o1pruner run``::

    apiVersion: o1pruner.dev/v1alpha1
    kind: PruningJob
    metadata: {name: marco-o1-pruned}
    spec: {...}

Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.
Unknown fields and bad values are rejected with the field path in the message
(:func:`load_job` raises :class:`SpecError`). This module must never import torch: the
operator image has none.

The defaults follow the O1-Pruner paper (arXiv 2501.12570, Sec. 3 and App. A) and the
authors' released configuration: K = 16 samples per problem, temperature 0.5, top-p 0.8,
lambda = 2, PPO clip epsilon 0.2, reward clip [-2, 4], learning rate 2e-7 with cosine
schedule and 10 % warm-up, max grad norm 10, cutoff 3072 tokens.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "o1pruner.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PruningJob"
PLURAL = "pruningjobs"
SINGULAR = "pruningjob"
SHORT_NAMES = ["pj", "prune"]

#: Model sources the embedded registry resolves without a hub (see :mod:`o1pruner.models`).
EMBEDDED_PREFIX = "embedded:"
BUILTIN_ARITHMETIC = "builtin:arithmetic"
#: The long-thought testbed's problems (:mod:`o1pruner.testbed`), for ``embedded:longthought-arith``.
BUILTIN_LONGTHOUGHT = "builtin:longthought"
BUILTIN_DATASETS = (BUILTIN_ARITHMETIC, BUILTIN_LONGTHOUGHT)

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$"
_S3_BODY = r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?"
_S3_URI = rf"^{_S3_BODY}$"
_HF_BODY = r"[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?"
_HF_ID = rf"^{_HF_BODY}$"

#: The one job-name rule, shared by the CRD (``metadata.name`` pattern and maxLength), the spec
#: model and the operator: a DNS-1035 label (the sampler Service is named after the job) short
#: enough that the longest child name (``<job>-sampler-reference``) stays a valid label.
JOB_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_JOB_NAME = 40
JOB_NAME_MESSAGE = (f"must be a DNS-1035 label (lower-case letters, digits and '-', starting with a "
                    f"letter) of at most {MAX_JOB_NAME} characters: child objects append suffixes "
                    "such as -sampler-reference")

#: Rules that hold only in a cluster (every phase runs in its own pod, so nothing local exists
#: there). The CRD states them as ``pattern`` on these fields (``kubectl apply`` names the field);
#: :func:`cluster_errors` applies the same patterns for the operator. Paths are below ``spec``.
CLUSTER_PATTERNS: dict[tuple[str, ...], tuple[str, str]] = {
    ("model", "source"): (
        rf"^({_S3_BODY}|{EMBEDDED_PREFIX}[a-z0-9][-a-z0-9.]*|{_HF_BODY})$",
        "in a cluster the model is a HF id (org/name), an s3://bucket/key URI or embedded:<name>; "
        "a local path does not exist in the sampler pod",
    ),
    ("datasets", "train", "source"): (
        rf"^({_S3_BODY}|{BUILTIN_ARITHMETIC}|{BUILTIN_LONGTHOUGHT})$",
        f"in a cluster a dataset is an s3://bucket/key.jsonl URI, {BUILTIN_ARITHMETIC} or {BUILTIN_LONGTHOUGHT}",
    ),
    ("datasets", "eval", "[]", "source"): (
        rf"^({_S3_BODY}|{BUILTIN_ARITHMETIC}|{BUILTIN_LONGTHOUGHT})$",
        f"in a cluster a dataset is an s3://bucket/key.jsonl URI, {BUILTIN_ARITHMETIC} or {BUILTIN_LONGTHOUGHT}",
    ),
    ("storage", "uri"): (
        _S3_URI,
        "in a cluster every phase runs in its own pod, so storage must be an s3://bucket/prefix URI",
    ),
}


def job_name_error(name: str) -> str | None:
    """Why ``name`` is not a usable PruningJob name, or None."""
    if len(name) > MAX_JOB_NAME or not re.match(JOB_NAME_PATTERN, name):
        return f"metadata.name: {name!r} {JOB_NAME_MESSAGE}"
    return None
_SECRETISH_KEYS = {"accesskey", "accesskeyid", "secretkey", "secretaccesskey", "password", "token"}


def _check_s3_uri(v: str) -> None:
    if not re.match(_S3_URI, v):
        raise ValueError(f"{v!r} is not a valid s3://bucket/key URI (lower-case bucket, 3-63 characters)")


class SpecError(ValueError):
    """A PruningJob that does not validate; ``errors`` holds ``(field_path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in errors))


class _Model(BaseModel):
    """Base: camelCase aliases on the wire, unknown fields forbidden, assignment validated."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        frozen=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The camelCase dict a user would write, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


Quantity = Annotated[str | int, Field(union_mode="left_to_right")]


def parse_quantity(value: str | int) -> Decimal:
    """The value of a Kubernetes quantity (``500m`` → 0.5, ``16Gi`` → 17179869184, ``1e3`` → 1000).

    The text must be in the API server's quantity syntax (the Kubernetes client's parser also
    takes ``NaN``, ``Infinity`` or spaces); the value is the Kubernetes Python client's reference
    ``parse_quantity``. Imported on first use: ``kubernetes`` loads its whole client (~0.3 s).
    """
    text = str(value)
    if not re.match(_QUANTITY, text):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 8, 500m, 16Gi)")
    from kubernetes.utils.quantity import parse_quantity as k8s_parse_quantity

    return k8s_parse_quantity(text)


def _check_quantities(values: dict[str, Any]) -> dict[str, Any]:
    for key, val in values.items():
        try:
            quantity = parse_quantity(val)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        if quantity < 0:
            raise ValueError(f"{key}: {val!r} is negative; resource quantities must be >= 0")
        if key.endswith("/gpu") and quantity != int(quantity):
            raise ValueError(f"{key}: {val!r} is not a whole number of GPUs (devices cannot be shared fractionally)")
    return values


class Resources(_Model):
    """Kubernetes ``ResourceRequirements`` (requests/limits), e.g. ``nvidia.com/gpu: 8``.

    Checked as the API server would check the pods made from it: quantities are valid and
    non-negative, GPU counts (``*/gpu``) are whole numbers, and no request exceeds its limit.
    """

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_quantities(v)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for key, request in self.requests.items():
            if key.endswith("/gpu") and (key not in self.limits
                                         or parse_quantity(request) != parse_quantity(self.limits[key])):
                raise ValueError(f"requests.{key} must be set in limits and equal to it (extended resources "
                                 "such as GPUs cannot be overcommitted; Kubernetes refuses the pod)")
            if key in self.limits and parse_quantity(request) > parse_quantity(self.limits[key]):
                raise ValueError(f"requests.{key} {request} exceeds limits.{key} {self.limits[key]} "
                                 "(a pod whose request is above its limit is never created)")
        return self

    def gpus(self) -> int:
        """GPUs asked for (``nvidia.com/gpu`` limit, else request, else 0)."""
        raw = self.limits.get("nvidia.com/gpu", self.requests.get("nvidia.com/gpu", 0))
        return int(parse_quantity(raw))


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class Placement(_Model):
    """Where pods go and how they are scheduled: node selector, tolerations and affinity (GPU node
    pools), the RuntimeClass (e.g. ``nvidia`` where the GPU runtime is not the node default), the
    PriorityClass, and the scheduler (a gang scheduler for multi-node training, see docs)."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="A core/v1 Affinity (nodeAffinity, podAffinity, podAntiAffinity), copied to the pods.",
    )
    runtime_class_name: str | None = Field(default=None, pattern=_DNS_SUBDOMAIN, max_length=253)
    priority_class_name: str | None = Field(default=None, pattern=_DNS_SUBDOMAIN, max_length=253)
    scheduler_name: str | None = Field(
        default=None, pattern=_DNS_SUBDOMAIN, max_length=253,
        description="Pod scheduler. On the trainer it also sets the PyTorchJob's gang policy (minAvailable = all "
                    "replicas), for Volcano or scheduler-plugins with the training-operator's --gang-scheduler-name.",
    )


class SecretKeyRef(_Model):
    """A reference to credentials in a Kubernetes Secret: never the credentials themselves."""

    name: str = Field(pattern=_DNS_LABEL, max_length=253, description="Secret name.")
    access_key_id_key: str = Field(default="AWS_ACCESS_KEY_ID", min_length=1)
    secret_access_key_key: str = Field(default="AWS_SECRET_ACCESS_KEY", min_length=1)


class HFTokenSecretRef(_Model):
    """A key of a Secret holding a Hugging Face token (gated models): never the token itself."""

    name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="Secret name.")
    key: str = Field(default="HF_TOKEN", pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


class ModelCacheSpec(_Model):
    """Where the sampler and training pods keep downloaded models (``HF_HOME``)."""

    claim_name: str | None = Field(
        default=None, pattern=_DNS_SUBDOMAIN, max_length=253,
        description="A PersistentVolumeClaim mounted as the cache in every sampler and training pod, so a model is "
                    "downloaded once (ReadWriteMany; ReadWriteOnce only if every pod runs on one node).",
    )
    size: Quantity = Field(
        default="100Gi",
        description="Without a claim: the sizeLimit of each pod's cache emptyDir (and of the fetched-model "
                    "emptyDir), requested as ephemeral-storage so pods land on nodes whose disk fits the model.",
    )


class ModelSpec(_Model):
    """The reference model: the long-thought model to prune (policy and frozen reference)."""

    source: str = Field(
        min_length=1,
        description="HF hub id (org/name), local directory, s3:// URI, or embedded:<name>.",
    )
    revision: str | None = Field(default=None, description="HF revision (branch, tag or sha).")
    served_name: str = Field(default="reference", pattern=_DNS_LABEL, max_length=63)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    trust_remote_code: bool = False
    hf_token_secret: HFTokenSecretRef | None = Field(
        default=None, description="Secret key with a Hugging Face token: HF_TOKEN in every pod that downloads.")
    cache: ModelCacheSpec = Field(default_factory=ModelCacheSpec)

    @field_validator("source")
    @classmethod
    def _source_kind(cls, v: str) -> str:
        if v.startswith("s3://"):
            _check_s3_uri(v)
        elif v.startswith(EMBEDDED_PREFIX):
            if not v[len(EMBEDDED_PREFIX):]:
                raise ValueError("embedded: needs a model name, e.g. embedded:smollm2-135m-instruct")
        elif "://" in v:
            raise ValueError(f"{v!r}: only s3:// URIs, HF ids, local paths and embedded: are supported")
        elif not (v.startswith(("/", ".", "~")) or re.match(_HF_ID, v)):
            raise ValueError(f"{v!r} is neither a local path nor a HF id (org/name)")
        return v


class GeneratorSpec(_Model):
    """Parameters of a built-in generator: ``builtin:arithmetic`` (steps = operations of a word
    problem) or ``builtin:longthought`` (steps = operations of a testbed chain)."""

    count: int = Field(default=64, ge=1, le=1_000_000)
    seed: int = Field(default=0, ge=0)
    min_steps: int = Field(default=1, ge=1, le=4)
    max_steps: int = Field(default=4, ge=1, le=4)

    @model_validator(mode="after")
    def _steps_order(self) -> GeneratorSpec:
        if self.min_steps > self.max_steps:
            raise ValueError("minSteps must be <= maxSteps")
        return self


class GradingSpec(_Model):
    r"""How a dataset's samples are graded: reference sampling (rewards, training data) and
    evaluation read the same rules. The defaults count only real answers (the authors' practice):
    the answer is the output's ``\boxed{}``, a sample cut off at ``maxTokens`` is wrong, and an
    integer gold answer must be matched exactly. Loosen them for datasets that need it."""

    require_boxed: bool = Field(
        default=True,
        description="An answer must be in a \\boxed{}; false: without a box, the last 'the answer is ...' "
        "phrase, else the last number in the output, is graded.",
    )
    truncated_is_incorrect: bool = Field(
        default=True,
        description="A sample that stopped at maxTokens (finish reason 'length') is wrong whatever its text.",
    )
    exact_integers: bool = Field(
        default=True,
        description="An integer gold answer must be matched exactly; false: numericTolerance applies to it too.",
    )
    numeric_tolerance: float = Field(
        default=1e-6, ge=0.0, le=1.0,
        description="Relative and absolute tolerance for numeric answers (non-integer gold answers, "
        "or all with exactIntegers false).",
    )


class DatasetSpec(_Model):
    """A JSONL dataset of ``{"problem", "answer"}`` lines, or the built-in generator."""

    name: str = Field(pattern=_DNS_LABEL, max_length=63)
    source: str = Field(
        min_length=1, description="Local JSONL path, s3:// URI of a JSONL object, builtin:arithmetic or builtin:longthought."
    )
    limit: int | None = Field(default=None, ge=1, description="Use only the first N problems.")
    generator: GeneratorSpec | None = None
    grading: GradingSpec = Field(default_factory=GradingSpec)

    @field_validator("source")
    @classmethod
    def _dataset_source(cls, v: str) -> str:
        if v.startswith("s3://"):
            _check_s3_uri(v)
        elif v.startswith("builtin:"):
            if v not in BUILTIN_DATASETS:
                raise ValueError(f"unknown built-in dataset {v!r} (known: {', '.join(BUILTIN_DATASETS)})")
        elif "://" in v:
            raise ValueError(f"{v!r}: datasets are local paths, s3:// URIs or {' / '.join(BUILTIN_DATASETS)}")
        return v

    @model_validator(mode="after")
    def _generator_only_for_builtin(self) -> DatasetSpec:
        if self.generator is not None and self.source not in BUILTIN_DATASETS:
            raise ValueError(f"generator is only valid with a built-in source ({', '.join(BUILTIN_DATASETS)})")
        return self


class DatasetsSpec(_Model):
    train: DatasetSpec
    eval: list[DatasetSpec] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _unique_eval_names(self) -> DatasetsSpec:
        names = [d.name for d in self.eval]
        if len(set(names)) != len(names):
            raise ValueError("eval dataset names must be unique")
        return self


DEFAULT_SYSTEM_PROMPT = (
    "Solve the problem. Think step by step, then put the final answer in \\boxed{}."
)
#: The authors' fast-solving prompt baseline (paper Sec. 4.1 "Baselines").
FAST_SOLVING_PROMPT = (
    "This is an easy problem. Please solve it quickly without any pause, check or reflection."
)


class PromptSpec(_Model):
    """Chat prompt. One prompt is used both to sample y ~ pi_ref and to score pi(y|x).

    (The authors sample with a plain user prompt and score under a system prompt; keeping one
    prompt makes the off-policy ratio exact.)
    """

    system: str = DEFAULT_SYSTEM_PROMPT
    template: str = Field(default="{problem}", description="User message; must contain {problem}.")

    @field_validator("template")
    @classmethod
    def _has_problem(cls, v: str) -> str:
        if "{problem}" not in v:
            raise ValueError("template must contain the placeholder {problem}")
        return v


class SamplerSpec(_Model):
    """The vLLM sampler Deployment the operator runs (official vllm/vllm-openai image)."""

    image: str = "vllm/vllm-openai:v0.11.0"
    replicas: int = Field(default=1, ge=1, le=64)
    tensor_parallel_size: int = Field(default=1, ge=1, le=16)
    max_model_len: int | None = Field(
        default=None, ge=256,
        description="vLLM --max-model-len; unset: the model's own context length (a larger value fails to start).",
    )
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    extra_args: list[str] = Field(default_factory=list)
    resources: Resources = Field(
        default_factory=lambda: Resources(limits={"nvidia.com/gpu": 1}, requests={"cpu": "4", "memory": "32Gi"})
    )
    placement: Placement = Field(default_factory=Placement)
    shm_size: Quantity = "8Gi"

    @model_validator(mode="after")
    def _tp_fits_gpus(self) -> SamplerSpec:
        gpus = self.resources.gpus()
        if gpus and self.tensor_parallel_size > gpus:
            raise ValueError(
                f"tensorParallelSize {self.tensor_parallel_size} exceeds the {gpus} GPU(s) in resources"
            )
        return self


class SamplingSpec(_Model):
    """Reference sampling (paper Sec. 3.1): K samples per problem from the reference model."""

    k: int = Field(default=16, ge=1, le=256, description="Samples per problem (paper: 16).")
    temperature: float = Field(default=0.5, ge=0.0, le=2.0)
    top_p: float = Field(default=0.8, gt=0.0, le=1.0)
    max_tokens: int = Field(default=8192, ge=1, le=131072)
    seed: int = Field(default=0, ge=0)
    samples_per_problem: int = Field(
        default=2, ge=1, description="Samples per problem kept as training examples (authors: 2)."
    )
    backend: Literal["vllm", "transformers"] = Field(
        default="vllm", description="vllm: OpenAI-compatible server; transformers: in-process generate."
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="OpenAI-compatible base URL (…/v1). Set by the operator; for local runs, your server.",
    )
    concurrency: int = Field(default=8, ge=1, le=1024)
    request_timeout_seconds: float = Field(default=600.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=50)
    batch_size: int = Field(default=8, ge=1, le=1024, description="transformers backend: prompts per generate call.")
    max_truncation_rate: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Fail the sample phase when a larger share of the reference samples stopped at maxTokens "
        "(censored lengths make the length reward meaningless); unset: never fail (above 1 % the job warns).",
    )
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)

    @model_validator(mode="after")
    def _kept_le_k(self) -> SamplingSpec:
        if self.samples_per_problem > self.k:
            raise ValueError(f"samplesPerProblem ({self.samples_per_problem}) must be <= k ({self.k})")
        return self


class LoraSpec(_Model):
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1)


class TrainableSpec(_Model):
    """Which parameters train: all, all but the first N decoder layers, or LoRA adapters."""

    mode: Literal["full", "freeze-first", "lora"] = "full"
    freeze_first_n: int = Field(default=0, ge=0)
    lora: LoraSpec | None = None

    @model_validator(mode="after")
    def _mode_fields(self) -> TrainableSpec:
        if self.mode == "freeze-first" and self.freeze_first_n < 1:
            raise ValueError("mode freeze-first needs freezeFirstN >= 1")
        if self.mode != "freeze-first" and self.freeze_first_n:
            raise ValueError("freezeFirstN is only valid with mode freeze-first")
        if self.mode == "lora" and self.lora is None:
            self.lora = LoraSpec()
        if self.mode != "lora" and self.lora is not None:
            raise ValueError("lora is only valid with mode lora")
        return self


class DeepSpeedSpec(_Model):
    enabled: bool = True
    zero_stage: Literal[2, 3] = 3
    offload_optimizer: bool = False
    offload_params: bool = False


class TrainerResources(_Model):
    """The training nodes: 1 + ``workers`` nodes (PyTorchJob: 1 Master + ``workers`` Workers;
    TrainJob: ``numNodes``; Job: completions), ``nprocPerNode`` processes each."""

    image: str = "ghcr.io/o1-pruner/trainer:latest"
    workers: int = Field(default=0, ge=0, le=256)
    nproc_per_node: int = Field(default=1, ge=1, le=16)
    resources: Resources = Field(
        default_factory=lambda: Resources(limits={"nvidia.com/gpu": 1}, requests={"cpu": "8", "memory": "64Gi"})
    )
    placement: Placement = Field(default_factory=Placement)
    shm_size: Quantity = "16Gi"

    @model_validator(mode="after")
    def _nproc_fits_gpus(self) -> TrainerResources:
        gpus = self.resources.gpus()
        if gpus and self.nproc_per_node > gpus:
            raise ValueError(f"nprocPerNode {self.nproc_per_node} exceeds the {gpus} GPU(s) per node in resources")
        return self


class TrainingSpec(_Model):
    """Length-harmonizing fine-tuning (paper Sec. 3.2, Eq. 5-7) and the baselines."""

    method: Literal["o1-pruner", "sft", "dpo"] = "o1-pruner"
    reward: Literal["o1-pruner", "kimi-length", "efficient-reasoning"] = Field(
        default="o1-pruner",
        description="Reward of the off-policy surrogate (method o1-pruner): o1-pruner (paper Eq. 4, clipped and "
        "standardised), kimi-length (Kimi k1.5 length penalty, arXiv 2501.12599) or efficient-reasoning "
        "(Arora & Zanette, arXiv 2502.04463); see docs/method.md.",
    )
    length_reward_weight: float = Field(
        default=1.0, ge=0.0, le=100.0,
        description="kimi-length: weight of the length reward added to the correctness reward.",
    )
    efficiency_alpha: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="efficient-reasoning: alpha, the largest share of a correct sample's reward its length can take.",
    )
    lam: float = Field(default=2.0, ge=0.0, le=100.0, alias="lambda", description="Accuracy weight lambda.")
    clip_epsilon: float = Field(default=0.2, gt=0.0, lt=1.0, description="PPO clip epsilon.")
    reward_clip_min: float = Field(default=-2.0, le=0.0)
    reward_clip_max: float = Field(default=4.0, ge=0.0)
    standardize_advantages: bool = True
    dpo_beta: float = Field(default=0.1, gt=0.0)
    learning_rate: float = Field(default=2e-7, gt=0.0, le=1.0)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.1, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    epochs: int = Field(default=1, ge=1, le=100)
    batch_size: int = Field(default=32, ge=1, description="Examples per optimizer step (all devices).")
    micro_batch_size: int = Field(default=1, ge=1, description="Examples per forward/backward per device.")
    max_length: int = Field(default=3072, ge=16, description="Cutoff length (prompt + solution tokens).")
    max_grad_norm: float = Field(default=10.0, gt=0.0)
    gradient_checkpointing: bool = False
    trainable: TrainableSpec = Field(default_factory=TrainableSpec)
    checkpoint_every_steps: int = Field(default=50, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    seed: int = Field(default=42, ge=0)
    deepspeed: DeepSpeedSpec = Field(default_factory=DeepSpeedSpec)
    trainer: TrainerResources = Field(default_factory=TrainerResources)
    backend: Literal["trainjob", "pytorchjob", "job"] | None = Field(
        default=None,
        description="What runs the fine-tune in a cluster: a Kubeflow Trainer v2 TrainJob, a Kubeflow "
                    "training-operator v1 PyTorchJob, or a plain Indexed Job + headless Service running "
                    "torchrun. Unset: the operator's default (Helm value training.defaultBackend).",
    )

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainingSpec:
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batchSize ({self.batch_size}) must be a multiple of microBatchSize ({self.micro_batch_size})"
            )
        if self.reward_clip_min >= self.reward_clip_max:
            raise ValueError("rewardClipMin must be < rewardClipMax")
        if self.reward != "o1-pruner" and self.method != "o1-pruner":
            raise ValueError(f"reward {self.reward} needs method o1-pruner (the off-policy surrogate), "
                             f"not {self.method}")
        return self


class AESWeights(_Model):
    """Accuracy-Efficiency Score weights (paper Sec. 4.1, Eq. 8)."""

    alpha: float = Field(default=1.0, ge=0.0)
    beta: float = Field(default=3.0, ge=0.0)
    gamma: float = Field(default=5.0, ge=0.0)


class GuardSpec(_Model):
    """The accuracy guard (:mod:`o1pruner.guard`): the pruned model is rejected (not published as
    accepted) when, overall or in a difficulty bucket, the lower bound of the paired-bootstrap
    95 % CI of Δaccuracy (pruned − base) lies below −maxAccuracyDrop."""

    enabled: bool = Field(default=True, description="Judge the pruned model; false: report no verdict.")
    max_accuracy_drop: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="Largest tolerated accuracy drop, as a fraction (0.01 = 1 point), for the CI's lower bound.",
    )
    min_bucket_problems: int = Field(
        default=20, ge=1,
        description="A difficulty bucket with fewer paired problems is reported as inconclusive and cannot "
        "fail the guard by itself (the overall bucket is always judged).",
    )


class EvaluationSpec(_Model):
    """Base vs pruned evaluation: greedy decoding, K = 1 (as in the paper)."""

    max_tokens: int = Field(default=8192, ge=1, le=131072)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    samples: int = Field(default=1, ge=1, le=64)
    aes: AESWeights = Field(default_factory=AESWeights)
    include_fast_prompt_baseline: bool = False
    guard: GuardSpec = Field(default_factory=GuardSpec)


class StorageSpec(_Model):
    """Where every phase writes: a local directory or an s3:// prefix (any endpoint, e.g. MinIO)."""

    uri: str = Field(min_length=1, description="s3://bucket/prefix or a local directory.")
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    region: str | None = None
    credentials_secret: SecretKeyRef | None = Field(
        default=None, description="Secret holding the S3 keys (never inline keys in the spec)."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).replace("_", "").lower() in _SECRETISH_KEYS:
                    raise ValueError(
                        f"{key}: credentials must not be inlined; reference a Secret with credentialsSecret"
                    )
        return data

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if v.startswith("s3://"):
            _check_s3_uri(v)
        elif "://" in v and not v.startswith("file://"):
            raise ValueError(f"{v!r}: storage is s3://bucket/prefix or a local directory")
        return v

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


class MetricsSpec(_Model):
    pushgateway_url: str | None = Field(default=None, pattern=r"^https?://")
    port: int = Field(default=9400, ge=1024, le=65535, description="Port metrics are served on when not pushed.")


class RoundsSpec(_Model):
    """Iterative pruning (:mod:`o1pruner.rounds`): each round's accepted pruned model becomes the
    reference of the next (resampled, re-scored, trained from); the job's result is the last
    accepted round's model."""

    count: int = Field(
        default=1, ge=1, le=10,
        description="Most rounds to run; 1 runs the pipeline once (the paper's method).",
    )
    min_length_gain: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="Stop after a round whose mean eval length fell by less than this fraction of the "
        "previous round's (0.05 = 5 %); a round that failed the accuracy guard also stops the job.",
    )


class PruningJobSpec(_Model):
    """``spec`` of a PruningJob."""

    model: ModelSpec
    datasets: DatasetsSpec
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    rounds: RoundsSpec = Field(default_factory=RoundsSpec)
    storage: StorageSpec
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    suspend: bool = Field(default=False, strict=True, description="Pause the job: samplers scale to zero, Jobs are suspended.")
    service_account_name: str | None = Field(default=None, pattern=_DNS_LABEL)


class ObjectMeta(BaseModel):
    """The parts of Kubernetes ``metadata`` the pipeline reads (the rest is kept, not checked)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str = Field(pattern=JOB_NAME_PATTERN, max_length=MAX_JOB_NAME, description=JOB_NAME_MESSAGE)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class PruningJob(BaseModel):
    """A whole PruningJob object, as applied with kubectl."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    api_version: Literal["o1pruner.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["PruningJob"] = KIND
    metadata: ObjectMeta
    spec: PruningJobSpec
    status: dict[str, Any] | None = None


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into the wire path, e.g. ``spec.training.lambda``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("function-after", "function-before", "function-plain", "union"):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<root>"


def _errors(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        path = _loc_to_path(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append((f"{prefix}{path}" if path != "<root>" else (prefix.rstrip(".") or path), msg))
    return out


def parse_job(obj: dict[str, Any]) -> PruningJob:
    """Validate a PruningJob object (a dict from YAML or from the Kubernetes API)."""
    if not isinstance(obj, dict):
        raise SpecError([("<root>", "a PruningJob must be a mapping")])
    try:
        return PruningJob.model_validate(obj)
    except ValidationError as exc:
        raise SpecError(_errors(exc)) from None


def parse_spec(spec: dict[str, Any]) -> PruningJobSpec:
    """Validate just ``spec`` (what the operator receives); paths are prefixed with ``spec.``."""
    try:
        return PruningJobSpec.model_validate(spec)
    except ValidationError as exc:
        raise SpecError(_errors(exc, prefix="spec.")) from None


def load_job(path: str | Path) -> PruningJob:
    """Load a PruningJob from a YAML file (the one you would ``kubectl apply``)."""
    text = Path(path).read_text()
    try:
        obj = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([("<file>", f"{path}: not valid YAML: {exc}")]) from None
    return parse_job(obj)


def dump_job(job: PruningJob) -> str:
    """Serialise a job back to YAML (camelCase)."""
    return yaml.safe_dump(job.model_dump(by_alias=True, exclude_none=True, mode="json"), sort_keys=False)


def _values_at(obj: Any, path: tuple[str, ...], prefix: str) -> list[tuple[str, Any]]:
    if not path:
        return [(prefix, obj)]
    head, rest = path[0], path[1:]
    if head == "[]":
        return [v for i, item in enumerate(obj if isinstance(obj, list) else [])
                for v in _values_at(item, rest, f"{prefix}[{i}]")]
    if isinstance(obj, dict) and head in obj:
        return _values_at(obj[head], rest, f"{prefix}.{head}")
    return []


def cluster_errors(spec: PruningJobSpec) -> list[tuple[str, str]]:
    """The :data:`CLUSTER_PATTERNS` a (model-valid) spec breaks, as ``(field path, message)``:
    what the operator reports for a job the CRD would have refused (e.g. an old CRD)."""
    wire = spec.to_wire()
    out = []
    for path, (pattern, message) in CLUSTER_PATTERNS.items():
        for where, value in _values_at(wire, path, "spec"):
            if isinstance(value, str) and not re.match(pattern, value):
                out.append((where, f"{value[:200]!r}: {message}"))
    return out
