"""Validate an object against a CRD the way the API server would, without a cluster.

Used by the tests (and handy for ``o1pruner validate``-style tooling): given the
``apiextensions.k8s.io/v1`` CRD from :mod:`o1pruner.crd` and an object (plus the stored one for
an update), :func:`validate_object` returns ``(field_path, message)`` pairs, empty when the API
server would admit the object. It performs, in the API server's order:

1. **Defaulting** — ``default`` values of the structural schema are applied (recursively, a
   defaulted object gets its own properties' defaults), as on admission.
2. **OpenAPI validation** with :mod:`jsonschema` (Draft 4, which has OpenAPI's boolean
   ``exclusiveMinimum``): ``x-kubernetes-int-or-string`` is an integer-or-string, and objects
   with ``properties`` reject unknown fields (``kubectl``'s default strict field validation;
   without it the server would silently prune them).
3. **CEL** ``x-kubernetes-validations`` with :mod:`celpy` (cel-python): values are typed by the
   schema (``number`` → double, ``integer`` → int), ``self`` is the node the rule sits on,
   ``oldSelf`` the same node of the stored object. Transition rules (those naming ``oldSelf``)
   run only on updates and only where the old object has the node, as in Kubernetes; a rule
   that fails to evaluate is reported as an error for its field, like the API server does.
   As in the API server, a type error anywhere blocks the CEL step (the rules would see
   values of the wrong type) and is reported with "some validation rules were not checked".

Not emulated here: the CEL cost budget (:mod:`o1pruner.celcost` estimates it statically, as the
API server does when the CRD is created), the Kubernetes CEL extension libraries (``quantity()``,
``url()``, ...; no rule here uses them) and list-type ``map`` correlation of ``oldSelf``
through arrays (array items get no ``oldSelf``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

__all__ = ["apply_defaults", "crd_schema", "evaluate_crd_rules", "openapi_errors", "validate_object"]

Errors = list[tuple[str, str]]
BLOCKING = "Invalid type"
NOT_CHECKED = ("some validation rules were not checked because the object was invalid; "
               "correct the existing errors to complete validation")


def crd_schema(crd: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``version`` (default: the storage version)."""
    versions = crd["spec"]["versions"]
    chosen = next((v for v in versions if v["name"] == version), None) if version else None
    chosen = chosen or next((v for v in versions if v.get("storage")), versions[0])
    return chosen["schema"]["openAPIV3Schema"]


# --------------------------------------------------------------------------------------------
# defaulting
# --------------------------------------------------------------------------------------------
def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """A copy of ``obj`` with the schema's defaults filled in (objects and array items)."""
    obj = copy.deepcopy(obj)
    _default(schema, obj)
    return obj


def _default(schema: dict[str, Any], obj: Any) -> None:
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                _default(sub, obj[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, val in obj.items():
                if key not in (schema.get("properties") or {}):
                    _default(extra, val)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            _default(schema["items"], item)


# --------------------------------------------------------------------------------------------
# OpenAPI v3 (structural) -> JSON Schema draft 4
# --------------------------------------------------------------------------------------------
_K8S_ONLY = {
    "x-kubernetes-validations", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource", "nullable", "default", "description", "format", "example",
}


def _to_jsonschema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_jsonschema(v) for k, v in node.items() if k not in _K8S_ONLY}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in node:
        out["properties"] = {k: _to_jsonschema(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _path(parts: Any, prefix: str = "") -> str:
    text = prefix
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def openapi_errors(schema: dict[str, Any], obj: Any) -> Errors:
    """OpenAPI schema errors as ``(path, message)``; unknown fields are named one by one."""
    import jsonschema

    converted = _to_jsonschema(schema)
    meta = (converted.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):  # the schema may restrict name/generateName; the rest is ObjectMeta
        meta.pop("additionalProperties", None)
    validator = jsonschema.Draft4Validator(converted)
    out: Errors = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        if err.validator == "required" and isinstance(err.instance, dict):
            for key in err.validator_value:
                if key not in err.instance:
                    out.append((_path(path + [key]), "Required value"))
            continue
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set((err.schema.get("properties") or {}))
            for key in sorted(set(err.instance) - allowed):
                out.append((_path(path + [key]), f'unknown field "{_path(path + [key])}"'))
            continue
        if err.validator in ("type", "anyOf"):  # name the type, never echo the value (it may be a secret)
            want = err.validator_value if err.validator == "type" else "integer or string"
            out.append((_path(path), f'{BLOCKING}: "{_json_type(err.instance)}": must be of type {want}'))
            continue
        out.append((_path(path), f"Invalid value: {_short(err.instance)}: {err.message}"))
    return out


def _json_type(value: Any) -> str:
    for typ, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                      (list, "array"), (dict, "object")):
        if isinstance(value, typ):
            return name
    return "null"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------------------------
# CEL
# --------------------------------------------------------------------------------------------
def _typed(schema: dict[str, Any], value: Any) -> Any:
    """A CEL value for ``value``, typed by its schema (``number`` is always a double)."""
    from celpy import celtypes

    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    typ = schema.get("type")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        return celtypes.MapType(
            {celtypes.StringType(k): _typed(props.get(k, extra), v) for k, v in value.items()}
        )
    if isinstance(value, list):
        return celtypes.ListType([_typed(schema.get("items") or {}, v) for v in value])
    if isinstance(value, str):
        return celtypes.StringType(value)
    if typ == "number" or isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    return value


def _walk(
    schema: dict[str, Any], obj: Any, old: Any, has_old: bool, path: str
) -> Iterator[tuple[dict[str, Any], Any, Any, bool, str]]:
    """Every (schema node, value, old value, has old, path) pair, depth first, root first."""
    yield schema, obj, old, has_old, path
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        for key, val in obj.items():
            sub = props.get(key, extra)
            if sub is None:
                continue
            old_has = has_old and isinstance(old, dict) and key in old
            yield from _walk(sub, val, old.get(key) if old_has else None, old_has, _path([key], path))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            # no oldSelf through arrays (Kubernetes correlates only listType=map items)
            yield from _walk(schema["items"], item, None, False, f"{path}[{i}]")


def evaluate_crd_rules(crd_or_schema: dict[str, Any], obj: Any, old_obj: Any = None) -> Errors:
    """The CEL ``x-kubernetes-validations`` that ``obj`` breaks, as ``(field path, message)``.

    ``crd_or_schema`` is a whole CRD or its ``openAPIV3Schema``; ``old_obj`` the stored object
    on an update (transition rules run only then). Defaults are NOT applied here: use
    :func:`validate_object` for the whole admission chain.
    """
    import celpy

    schema = crd_schema(crd_or_schema) if "versions" in crd_or_schema.get("spec", {}) else crd_or_schema
    env = celpy.Environment()
    out: Errors = []
    for node, value, old, has_old, path in _walk(schema, obj, old_obj, old_obj is not None, ""):
        for rule in node.get("x-kubernetes-validations") or []:
            expr = rule["rule"]
            transition = "oldSelf" in expr
            if transition and not has_old:
                continue
            where = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
            where = where.lstrip(".") or "<root>"
            activation = {"self": _typed(node, value)}
            if transition:
                activation["oldSelf"] = _typed(node, old)
            message = rule.get("message") or f"failed rule: {expr}"
            try:
                result = env.program(env.compile(expr)).evaluate(activation)
            except Exception as exc:  # parse or evaluation error: the API server rejects too
                out.append((where, f"{message} (rule error: {type(exc).__name__}: {exc})"))
                continue
            if isinstance(result, Exception) or not bool(result):
                detail = f" (rule error: {result})" if isinstance(result, Exception) else ""
                out.append((where, f"Invalid value: {message}{detail}"))
    return out


def validate_object(crd: dict[str, Any], obj: Any, old_obj: Any = None) -> Errors:
    """Defaulting, OpenAPI validation and CEL rules, as on ``kubectl apply`` (create or update)."""
    schema = crd_schema(crd)
    obj = apply_defaults(schema, obj)
    old = apply_defaults(schema, old_obj) if old_obj is not None else None
    errors = openapi_errors(schema, obj)
    if any(msg.startswith(BLOCKING) for _, msg in errors):
        # like the API server: CEL needs a well-typed object, so type errors block the rules
        return errors + [("<root>", NOT_CHECKED)]
    return errors + evaluate_crd_rules(schema, obj, old)
