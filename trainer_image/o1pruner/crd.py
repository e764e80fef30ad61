"""The PruningJob CustomResourceDefinition, generated from the spec model (``o1pruner crd``).

The pydantic JSON schema of :class:`~o1pruner.spec.PruningJobSpec` is turned into a
*structural* OpenAPI v3 schema (what ``apiextensions.k8s.io/v1`` demands):

* ``$ref``/``$defs`` are inlined; ``anyOf [X, null]`` (optional fields) becomes ``X``;
* ``str | int`` quantities become ``x-kubernetes-int-or-string`` with the quantity pattern;
* ``exclusiveMinimum: x`` (JSON Schema 2020) becomes ``minimum: x, exclusiveMinimum: true``;
* defaults from ``default_factory`` are materialised (nested objects default to ``{}`` so the
  API server fills their own defaults);
* lists, maps and strings get size bounds, and no CEL rule's estimated cost depends on an
  unbounded size (``tests/operator/test_crd.py`` estimates every rule with the API server's
  cost model, :mod:`o1pruner.celcost`);
* the one job-name rule is a pattern on ``metadata.name`` and the cluster-only rules of
  :data:`o1pruner.spec.CLUSTER_PATTERNS` (s3:// storage and datasets, model id forms) are
  patterns on their fields, so ``kubectl apply`` names the field;
* cross-field rules of the pydantic validators are restated as CEL ``x-kubernetes-validations``
  and every field but ``spec.suspend`` is immutable (``self == oldSelf``).

The pydantic model stays the final authority: the operator validates every object again and
moves a job that the schema let through but the model rejects to ``Failed``.
"""

from __future__ import annotations

import copy
import typing
from typing import Any

import yaml
from pydantic import BaseModel

from o1pruner.spec import (
    CLUSTER_PATTERNS, GROUP, JOB_NAME_PATTERN, KIND, MAX_JOB_NAME, PLURAL, SHORT_NAMES, SINGULAR, VERSION,
    PruningJobSpec,
)

CRD_NAME = f"{PLURAL}.{GROUP}"
# controller-gen's pattern for resource.Quantity, without the minus sign: no quantity the spec
# takes may be negative, and a pattern costs no CEL budget.
QUANTITY_PATTERN = (
    r"^(\+)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
QUANTITY_MAX_LENGTH = 64
MAX_ITEMS = 64
MAX_PROPERTIES = 64
MAX_STRING = 4096
LONG_STRINGS = {("prompt", "system"), ("prompt", "template")}
MAX_LONG_STRING = 65536

IMMUTABLE_MESSAGE = "is immutable while the job exists (only spec.suspend may change); create a new PruningJob"
MUTABLE_SPEC_FIELDS = {"suspend"}

# CEL cost: the API server sizes an x-kubernetes-int-or-string value at the request limit
# (~3 MiB) whatever its maxLength, so no rule converts one to a string (string(), matches(),
# startsWith() would each cost ~314k per value, see o1pruner.celcost). A GPU count is checked
# with type tests, a list membership (cost = list size) and int(), all O(1) in the value size.
MAX_GPUS_PER_POD = 64
WHOLE_GPU_STRINGS = "[" + ", ".join(f"'{i}'" for i in range(MAX_GPUS_PER_POD + 1)) + "]"


def _whole(value: str) -> str:
    """CEL: ``value`` (an int-or-string quantity) is a whole number of devices."""
    return f"(type({value}) == int ? {value} >= 0 : {value} in {WHOLE_GPU_STRINGS})"


def _gpu_rule(count_field: str, what: str) -> dict[str, str]:
    gpu = "self.resources.limits['nvidia.com/gpu']"
    return {
        "rule": (
            "!has(self.resources) || !has(self.resources.limits) || "
            f"!('nvidia.com/gpu' in self.resources.limits) || !{_whole(gpu)} || "
            f"int({gpu}) == 0 || self.{count_field} <= int({gpu})"
        ),
        "message": f"{count_field} exceeds the GPUs in resources.limits (nvidia.com/gpu) {what}",
        "fieldPath": f".{count_field}",
    }


def _resource_rules() -> list[dict[str, str]]:
    """What :class:`o1pruner.spec.Resources` checks, as far as the schema can: quantities are
    non-negative (strings by :data:`QUANTITY_PATTERN`, integers here), GPU counts are whole
    numbers, and a GPU request equals its limit (Kubernetes refuses a pod otherwise).
    (requests <= limits for other resources needs the ``quantity()`` CEL library, whose cost is
    the value's size, i.e. ~3 MiB for an int-or-string; the spec model checks it and the operator
    reports it as ``InvalidSpec``.)"""
    rules = []
    for part in ("requests", "limits"):
        item = f"self.{part}[k]"
        rules.append({
            "rule": f"!has(self.{part}) || self.{part}.all(k, type({item}) != int || {item} >= 0)",
            "message": f"{part}: resource quantities must be >= 0",
            "fieldPath": f".{part}",
        })
        rules.append({
            "rule": f"!has(self.{part}) || self.{part}.all(k, !k.endsWith('/gpu') || {_whole(item)})",
            "message": (f"{part}: GPU counts (nvidia.com/gpu) must be whole numbers from 0 to "
                        f"{MAX_GPUS_PER_POD} (e.g. 8 or \"8\")"),
            "fieldPath": f".{part}",
        })
    req, lim = "self.requests[k]", "self.limits[k]"
    rules.append({
        "rule": ("!has(self.requests) || self.requests.all(k, !k.endsWith('/gpu') || "
                 f"(has(self.limits) && k in self.limits && (!({_whole(req)} && {_whole(lim)}) || "
                 f"int({req}) == int({lim}))))"),
        "message": ("requests: a GPU request must also be set in limits and equal it (extended "
                    "resources cannot be overcommitted; Kubernetes refuses the pod)"),
        "fieldPath": ".requests",
    })
    return rules


#: CEL restatements of the model's cross-field validators, by path below ``spec``.
CEL_RULES: dict[tuple[str, ...], list[dict[str, str]]] = {
    ("datasets",): [
        {
            "rule": "self.eval.all(a, self.eval.exists_one(b, b.name == a.name))",
            "message": "eval dataset names must be unique",
            "fieldPath": ".eval",
        }
    ],
    ("datasets", "train"): [
        {
            "rule": "!has(self.generator) || self.source in ['builtin:arithmetic', 'builtin:longthought']",
            "message": "generator is only valid with a built-in source (builtin:arithmetic, builtin:longthought)",
            "fieldPath": ".generator",
        }
    ],
    ("datasets", "eval", "[]"): [
        {
            "rule": "!has(self.generator) || self.source in ['builtin:arithmetic', 'builtin:longthought']",
            "message": "generator is only valid with a built-in source (builtin:arithmetic, builtin:longthought)",
            "fieldPath": ".generator",
        }
    ],
    ("datasets", "train", "generator"): [
        {"rule": "self.minSteps <= self.maxSteps", "message": "minSteps must be <= maxSteps"}
    ],
    ("datasets", "eval", "[]", "generator"): [
        {"rule": "self.minSteps <= self.maxSteps", "message": "minSteps must be <= maxSteps"}
    ],
    ("prompt",): [
        {
            "rule": "self.template.contains('{problem}')",
            "message": "template must contain the placeholder {problem}",
            "fieldPath": ".template",
        }
    ],
    ("sampling",): [
        {
            "rule": "self.samplesPerProblem <= self.k",
            "message": "samplesPerProblem must be <= k",
            "fieldPath": ".samplesPerProblem",
        }
    ],
    ("sampling", "sampler"): [_gpu_rule("tensorParallelSize", "of the sampler")],
    ("sampling", "sampler", "resources"): _resource_rules(),
    ("training",): [
        {
            "rule": "self.batchSize % self.microBatchSize == 0",
            "message": "batchSize must be a multiple of microBatchSize",
            "fieldPath": ".batchSize",
        },
        {
            "rule": "self.rewardClipMin < self.rewardClipMax",
            "message": "rewardClipMin must be < rewardClipMax",
            "fieldPath": ".rewardClipMin",
        },
        {
            "rule": "!has(self.reward) || self.reward == 'o1-pruner' || !has(self.method) || self.method == 'o1-pruner'",
            "message": "a reward other than o1-pruner needs method o1-pruner (the off-policy surrogate)",
            "fieldPath": ".reward",
        },
    ],
    ("training", "trainable"): [
        {
            "rule": "self.mode != 'freeze-first' || self.freezeFirstN >= 1",
            "message": "mode freeze-first needs freezeFirstN >= 1",
            "fieldPath": ".freezeFirstN",
        },
        {
            "rule": "self.mode == 'freeze-first' || self.freezeFirstN == 0",
            "message": "freezeFirstN is only valid with mode freeze-first",
            "fieldPath": ".freezeFirstN",
        },
        {
            "rule": "self.mode == 'lora' || !has(self.lora)",
            "message": "lora is only valid with mode lora",
            "fieldPath": ".lora",
        },
    ],
    ("training", "trainer"): [_gpu_rule("nprocPerNode", "per node")],
    ("training", "trainer", "resources"): _resource_rules(),
}

#: ``metadata.name`` as the API server checks it for PruningJobs: CRDs may restrict name and
#: generateName in the schema (a pattern costs no CEL budget; a CEL rule on metadata.name would
#: be sized at the request limit, the API server ignores a maxLength there for CEL).
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": MAX_JOB_NAME, "pattern": JOB_NAME_PATTERN},
    },
}

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Observed state, written by the operator only.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "phase": {
            "type": "string",
            "enum": ["Pending", "Sampling", "Training", "Evaluating", "Succeeded", "Failed"],
        },
        "message": {"type": "string"},
        "observedGeneration": {"type": "integer", "format": "int64"},
        "suspended": {"type": "boolean"},
        "startTime": {"type": "string", "format": "date-time"},
        "phaseStartTime": {"type": "string", "format": "date-time"},
        "completionTime": {"type": "string", "format": "date-time"},
        "retryAfter": {"type": "string", "format": "date-time",
                       "description": "While Blocked: when the refused create is tried again."},
        "conditions": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "items": {
                "type": "object",
                "required": ["type", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "lastTransitionTime": {"type": "string", "format": "date-time"},
                    "observedGeneration": {"type": "integer", "format": "int64"},
                },
            },
        },
        "artifacts": {
            "type": "object",
            "description": "S3 URIs of what the phases produced.",
            "additionalProperties": {"type": "string"},
        },
        "children": {"type": "object", "additionalProperties": {"type": "string"}},
        "summary": {
            "type": "object",
            "description": "Averages over the eval sets (printer columns).",
            "properties": {
                "baseAccuracy": {"type": "number"},
                "prunedAccuracy": {"type": "number"},
                "baseLength": {"type": "number"},
                "prunedLength": {"type": "number"},
                "lengthReduction": {"type": "number"},
                "accuracyChange": {"type": "number"},
                "aes": {"type": "number"},
            },
        },
        "results": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "round": {"type": "integer", "minimum": 1, "description": "The pruning round running (or last run)."},
        "resultRound": {"type": "integer", "minimum": 1, "nullable": True,
                        "description": "The round whose model the job published (the last accepted one)."},
        "rounds": {
            "type": "array",
            "description": "Each evaluated round: reference and pruned mean length, length gain, accuracy, "
                           "guard verdict, accepted, its model and results.",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "diagnostics": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                        "description": "The reference samples' diagnostics (truncation rate, zero reward "
                                       "variance, mean length of correct vs incorrect samples)."},
        "trainingBackend": {"type": "string", "enum": ["trainjob", "pytorchjob", "job"],
                            "description": "The backend that runs (or will run) the fine-tune."},
        "training": {
            "type": "object",
            "description": "Training progress as the backend reports it (Kubeflow Trainer v2 TrainJob "
                           "status.trainerStatus, feature gate TrainJobStatus).",
            "properties": {
                "progressPercentage": {"type": "integer", "minimum": 0, "maximum": 100},
                "estimatedRemainingSeconds": {"type": "integer", "minimum": 0},
                "lastUpdatedTime": {"type": "string", "format": "date-time"},
                "metrics": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    },
}

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Round", "type": "integer", "jsonPath": ".status.round",
     "description": "The pruning round running (or last run); see spec.rounds."},
    {"name": "Train %", "type": "integer", "jsonPath": ".status.training.progressPercentage",
     "description": "Training progress the backend reports (TrainJob trainerStatus)."},
    {"name": "Backend", "type": "string", "jsonPath": ".status.trainingBackend", "priority": 1},
    {"name": "Base Acc", "type": "number", "jsonPath": ".status.summary.baseAccuracy"},
    {"name": "Pruned Acc", "type": "number", "jsonPath": ".status.summary.prunedAccuracy"},
    {"name": "Len Red", "type": "number", "jsonPath": ".status.summary.lengthReduction",
     "description": "Relative reduction of the mean solution length, base to pruned."},
    {"name": "AES", "type": "number", "jsonPath": ".status.summary.aes"},
    {"name": "Accepted", "type": "boolean", "jsonPath": ".status.results.accepted",
     "description": "False when the accuracy guard rejected the pruned model (condition AccuracyGuardFailed)."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


# --------------------------------------------------------------------------------------------
# pydantic JSON schema -> structural schema
# --------------------------------------------------------------------------------------------

def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """Model classes inside an annotation (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models_of(arg)
    return out


def _all_models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}
    todo = [root]
    while todo:
        cls = todo.pop()
        if cls.__name__ in seen:
            continue
        seen[cls.__name__] = cls
        for field in cls.model_fields.values():
            todo += _models_of(field.annotation)
    return seen


def _factory_defaults(defs: dict[str, Any], models: dict[str, type[BaseModel]]) -> None:
    """Write the ``default_factory`` values pydantic leaves out of its schema."""
    for cls_name, cls in models.items():
        node = defs.get(cls_name)
        if node is None:
            continue
        for name, field in cls.model_fields.items():
            if field.default_factory is None:
                continue
            prop = node["properties"][field.alias or name]
            value = field.default_factory()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                # The class itself as factory: {} lets the API server apply nested defaults.
                prop["default"] = {} if field.default_factory is type(value) else value.to_wire()
            elif value:  # non-empty list/dict; empty ones are the same as absent
                prop["default"] = value


def _structural(node: Any, defs: dict[str, Any], path: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs, path) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return _structural(target, defs, path)
    node = dict(node)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        types = sorted(b.get("type", "") for b in branches)
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            rest.pop("default")
        if types == ["integer", "string"]:
            node = {
                **rest,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": QUANTITY_PATTERN,
                "maxLength": QUANTITY_MAX_LENGTH,
                "x-kubernetes-int-or-string": True,
            }
            node.pop("title", None)
            return node
        if len(branches) == 1:
            merged = dict(branches[0])
            merged.update(rest)
            return _structural(merged, defs, path)
        raise ValueError(f"spec.{'.'.join(path)}: unions other than X|None and str|int have no structural form")
    node.pop("title", None)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        node["maximum"] = node.pop("exclusiveMaximum")
        node["exclusiveMaximum"] = True
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    typ = node.get("type")
    if typ == "object" and "properties" in node:
        node["properties"] = {
            key: _structural(val, defs, path + (key,)) for key, val in node["properties"].items()
        }
    elif typ == "object" and node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)  # free-form Kubernetes objects (affinity), no CEL on them
    elif typ == "object":
        node.setdefault("maxProperties", MAX_PROPERTIES)
        if isinstance(node.get("additionalProperties"), dict):
            node["additionalProperties"] = _structural(node["additionalProperties"], defs, path + ("*",))
    elif typ == "array":
        node.setdefault("maxItems", MAX_ITEMS)
        node["items"] = _structural(node["items"], defs, path + ("[]",))
    elif typ == "string" and "enum" not in node:
        node.setdefault("maxLength", MAX_LONG_STRING if path in LONG_STRINGS else MAX_STRING)
    if path in CLUSTER_PATTERNS:
        node["pattern"], why = CLUSTER_PATTERNS[path]
        node["description"] = (node.get("description", "") + " In a cluster: " + why).strip()
    rules = CEL_RULES.get(path)
    if rules:
        node["x-kubernetes-validations"] = copy.deepcopy(rules)
    return node


def spec_schema() -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``spec``."""
    raw = PruningJobSpec.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    _factory_defaults(defs, _all_models(PruningJobSpec))
    raw = dict(raw)
    raw["properties"] = dict(raw["properties"])
    root_node = {"type": "object", "properties": raw["properties"], "required": raw.get("required", [])}
    models = _all_models(PruningJobSpec)
    # The root's own factory defaults (sampling, training, ...).
    _factory_defaults({"PruningJobSpec": root_node}, {"PruningJobSpec": models["PruningJobSpec"]})
    out = _structural(root_node, defs, ())
    out["description"] = "The desired run: model, datasets, sampling, training, evaluation, storage."
    # `self == oldSelf` on a property is skipped when either side lacks it: optional
    # properties without a default must also keep their presence.
    for key, prop in out["properties"].items():
        if key not in MUTABLE_SPEC_FIELDS and key not in out["required"] and "default" not in prop:
            out.setdefault("x-kubernetes-validations", []).append({
                "rule": f"has(self.{key}) == has(oldSelf.{key})",
                "message": f"spec.{key} {IMMUTABLE_MESSAGE}",
                "fieldPath": f".{key}",
            })
    for key, prop in out["properties"].items():
        if key in MUTABLE_SPEC_FIELDS:
            continue
        prop.setdefault("x-kubernetes-validations", []).append(
            {"rule": "self == oldSelf", "message": f"spec.{key} {IMMUTABLE_MESSAGE}"}
        )
    return out


def build_crd() -> dict[str, Any]:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition of PruningJob."""
    schema = {
        "type": "object",
        "description": "A Length-Harmonizing Fine-Tuning run (O1-Pruner, arXiv 2501.12570).",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": copy.deepcopy(METADATA_SCHEMA),
            "spec": spec_schema(),
            "status": copy.deepcopy(STATUS_SCHEMA),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "o1pruner", "app.kubernetes.io/part-of": "o1pruner"},
            "annotations": {"o1pruner.dev/generated-by": "o1pruner crd (from o1pruner.spec)"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["o1pruner"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def crd_yaml() -> str:
    """The CRD as YAML (what ``o1pruner crd`` prints and ``crds/`` holds)."""
    header = (
        "# Generated by `o1pruner crd` from trainer_image/o1pruner/spec.py. Do not edit by hand:\n"
        "# regenerate with `o1pruner crd > crds/pruningjobs.o1pruner.dev.yaml`.\n"
    )
    return header + yaml.dump(build_crd(), Dumper=_Dumper, sort_keys=False, width=100)


__all__ = ["build_crd", "crd_yaml", "spec_schema", "CRD_NAME"]
