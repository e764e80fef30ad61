"""Strict validation of custom resources against the real CRDs in ``../shared/schemas/kubeflow/``.

A CRD's ``openAPIV3Schema`` is turned into a JSON Schema that rejects what a real API server
with ``kubectl apply --validate=strict`` (field validation ``Strict``) rejects or would silently
drop:

* every object with ``properties`` and no ``additionalProperties`` gets
  ``additionalProperties: false``; an object with neither is empty to the API server (it prunes
  whatever is inside), so it accepts nothing -- unless ``x-kubernetes-preserve-unknown-fields``;
* ``x-kubernetes-int-or-string`` accepts an integer or a string;
* ``x-kubernetes-embedded-resource`` admits ``apiVersion``, ``kind`` and ``metadata``;
* ``nullable: true`` admits ``null``;
* ``x-kubernetes-validations`` (CEL) are evaluated with cel-python, except transition rules
  (``oldSelf``), which only apply to updates;
* the root ``metadata`` (``type: object`` in every CRD) is checked as a core ObjectMeta with
  ``kubernetes-validate`` in strict mode.

``kubernetes-validate`` itself covers the core kinds (Job, Service, ...): see ``validate_core``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: CI keeps ``shared/`` beside the checkout; a worktree may find it one level further up.
SCHEMA_DIRS = [Path(os.environ["O1PRUNER_SHARED_SCHEMAS"])] if os.environ.get("O1PRUNER_SHARED_SCHEMAS") else []
SCHEMA_DIRS += [ROOT.parent / "shared" / "schemas", ROOT.parent.parent / "shared" / "schemas",
                ROOT / "shared" / "schemas"]
#: The oldest Kubernetes the chart supports and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.28", kubernetes_validate.latest_version())

TRAINJOB_CRD = "kubeflow/v2.3.0-trainer.kubeflow.org_trainjobs.yaml"
PYTORCHJOB_CRD = "kubeflow/v1.9.4-kubeflow.org_pytorchjobs.yaml"
CLUSTER_TRAINING_RUNTIME_CRD = "kubeflow/v2.3.0-trainer.kubeflow.org_clustertrainingruntimes.yaml"
TORCH_DISTRIBUTED_RUNTIME = "kubeflow/v2.3.0-runtime-torch-distributed.yaml"


class StrictValidationError(AssertionError):
    pass


def schema_dir() -> Path | None:
    return next((d for d in SCHEMA_DIRS if (d / "kubeflow").is_dir()), None)


def schema_file(rel: str) -> Path:
    base = schema_dir()
    if base is None:
        raise FileNotFoundError(f"no shared/schemas/kubeflow in {[str(d) for d in SCHEMA_DIRS]}")
    return base / rel


def load_helm_yaml(path: Path) -> dict[str, Any]:
    """A Helm template of a plain manifest: lines that are only ``{{ ... }}`` actions dropped,
    inline actions replaced by the string ``HELM-TEMPLATED``."""
    lines = [line for line in path.read_text().splitlines()
             if not (line.strip().startswith("{{") and line.strip().endswith("}}"))]
    return yaml.safe_load(re.sub(r"\{\{.*?\}\}", "HELM-TEMPLATED", "\n".join(lines)))


# ----------------------------------------------------------------------------------------------
def strict_schema(node: Any) -> Any:
    """The JSON Schema (draft 2020-12) equivalent of a structural schema node, strict."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: strict_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = strict_schema(value) if isinstance(value, dict) else value
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [strict_schema(v) for v in value]
        elif key.startswith("x-kubernetes-") or key in ("description", "default", "format", "example"):
            continue  # kept below where it changes validation; annotations otherwise
        else:
            out[key] = copy.deepcopy(value)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool):  # OpenAPI 3.0 boolean form -> JSON Schema number form
            if out.pop(bound) and limit in out:
                out[bound] = out.pop(limit)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if out.get("type") == "object" and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def cel_rules(node: Any, path: str = "") -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(json path, schema node, rule)`` of every CEL rule, paths like ``.spec.trainer``."""
    found: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if not isinstance(node, dict):
        return found
    for rule in node.get("x-kubernetes-validations") or []:
        found.append((path, node, rule))
    for key, child in (node.get("properties") or {}).items():
        found += cel_rules(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        found += cel_rules(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += cel_rules(node["additionalProperties"], f"{path}{{}}")
    return found


def _values_at(obj: Any, path: str) -> list[Any]:
    """Values at a ``cel_rules`` path (``[]`` and ``{}`` fan out); missing fields give none."""
    values = [obj]
    for part in [p for p in path.replace("[]", ".[]").replace("{}", ".{}").split(".") if p]:
        nxt = []
        for v in values:
            if part == "[]" and isinstance(v, list):
                nxt += v
            elif part == "{}" and isinstance(v, dict):
                nxt += list(v.values())
            elif isinstance(v, dict) and part in v:
                nxt.append(v[part])
        values = nxt
    return values


@functools.lru_cache(maxsize=None)
def _cel_program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


class CRDValidator:
    def __init__(self, crd: dict[str, Any], version: str | None = None):
        versions = crd["spec"]["versions"]
        chosen = next(v for v in versions if version in (None, v["name"]) and v.get("served", True))
        self.group = crd["spec"]["group"]
        self.kind = crd["spec"]["names"]["kind"]
        self.api_version = f"{self.group}/{chosen['name']}"
        self.source = chosen["schema"]["openAPIV3Schema"]
        schema = strict_schema(self.source)
        schema["properties"]["metadata"] = {"type": "object"}  # checked as ObjectMeta below
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
        self.schema = schema
        self.validator = jsonschema.Draft202012Validator(schema)
        self.rules = [(p, n, r) for p, n, r in cel_rules(self.source) if "oldSelf" not in r["rule"]]

    @classmethod
    def from_file(cls, rel: str, version: str | None = None) -> "CRDValidator":
        return cls(yaml.load(schema_file(rel).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)), version)

    def errors(self, obj: dict[str, Any]) -> list[str]:
        out = []
        if obj.get("apiVersion") != self.api_version or obj.get("kind") != self.kind:
            out.append(f"apiVersion/kind {obj.get('apiVersion')}/{obj.get('kind')} is not "
                       f"{self.api_version}/{self.kind}")
        for err in sorted(self.validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(p) for p in err.absolute_path) or "<root>"
            out.append(f"{where}: {err.message[:300]}")
        out += metadata_errors(obj.get("metadata") or {})
        for path, _node, rule in self.rules:
            for value in _values_at(obj, path):
                try:
                    ok = _cel_program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
                except Exception as exc:  # a rule that cannot evaluate fails, as on a server
                    out.append(f"{path or '<root>'}: CEL {rule['rule']!r} did not evaluate: {exc}")
                    continue
                if not bool(ok):
                    out.append(f"{path or '<root>'}: {rule.get('message') or rule['rule']}")
        return out

    def validate(self, obj: dict[str, Any]) -> None:
        errs = self.errors(obj)
        if errs:
            raise StrictValidationError(f"{self.kind} rejected in strict mode:\n  " + "\n  ".join(errs))


def metadata_errors(meta: dict[str, Any]) -> list[str]:
    """An object's metadata checked as core ObjectMeta (strict), through a ConfigMap wrapper."""
    out = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta},
                                         version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            out.append(f"metadata (Kubernetes {version}): {_short(exc)}")
    return out


def validate_core(obj: dict[str, Any], versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> None:
    """A core kind (Job, Service, ...) in ``kubernetes-validate``'s strict mode, per version."""
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise StrictValidationError(
                f"{obj.get('kind')} rejected by Kubernetes {version} (strict): {_short(exc)}") from None


def _short(exc: Exception) -> str:
    """``path: message`` of a kubernetes-validate error (its str() embeds the whole schema)."""
    if isinstance(exc, jsonschema.ValidationError):  # kubernetes-validate's copies the caught error
        where = ".".join(str(p) for p in exc.absolute_path) or "<root>"
        return f"{where}: {exc.message[:300]}"
    return str(exc)[:300]


@functools.lru_cache(maxsize=None)
def trainjob_validator() -> CRDValidator:
    return CRDValidator.from_file(TRAINJOB_CRD)


@functools.lru_cache(maxsize=None)
def pytorchjob_validator() -> CRDValidator:
    return CRDValidator.from_file(PYTORCHJOB_CRD)


@functools.lru_cache(maxsize=None)
def cluster_training_runtime_validator() -> CRDValidator:
    return CRDValidator.from_file(CLUSTER_TRAINING_RUNTIME_CRD)
