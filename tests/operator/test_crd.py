"""The committed CRD is the generated one; it is structural; its defaults, bounds and CEL rules
agree with the pydantic spec model; examples/pruningjob.yaml passes it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

import celpy
import jsonschema
import pytest
import yaml

from o1pruner import spec as spec_mod
from o1pruner.crd import build_crd, crd_yaml
from o1pruner.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "pruningjobs.o1pruner.dev.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return build_crd()


@pytest.fixture(scope="module")
def schema(crd) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "pruningjob.yaml").read_text())


def test_committed_crd_matches_the_spec_model():
    assert CRD_FILE.read_text() == crd_yaml(), (
        "crds/ drifted from the spec model: run `o1pruner crd > crds/pruningjobs.o1pruner.dev.yaml`")


def test_names_and_version(crd):
    assert crd["metadata"]["name"] == "pruningjobs.o1pruner.dev"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("PruningJob", "pruningjobs", spec_mod.SHORT_NAMES)
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Age"] == ".metadata.creationTimestamp"
    assert {"Base Acc", "Pruned Acc", "Len Red", "AES"} <= set(columns)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, val in (node.get("properties") or {}).items():
            yield from walk(val, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}.*")


def test_schema_is_structural(schema):
    for path, node in walk(schema["properties"]["spec"], "spec"):
        assert "$ref" not in node and "$defs" not in node and "title" not in node, path
        assert "nullable" not in node and node.get("additionalProperties") is not False, path
        if "anyOf" in node:  # only quantities
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: CEL cost needs bounded lists"
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, path


def test_bounds_and_enums_come_from_the_model(schema):
    spec = schema["properties"]["spec"]["properties"]
    assert spec["sampling"]["properties"]["k"]["minimum"] == 1
    assert spec["sampling"]["properties"]["k"]["default"] == 16
    assert spec["training"]["properties"]["lambda"]["default"] == 2.0
    ds = spec["training"]["properties"]["deepspeed"]["properties"]["zeroStage"]
    assert ds["enum"] == [2, 3]
    top_p = spec["sampling"]["properties"]["topP"]
    assert top_p["minimum"] == 0.0 and top_p["exclusiveMinimum"] is True
    assert schema["properties"]["spec"]["required"] == ["model", "datasets", "storage"]


def _strip_k8s(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_k8s(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
    if isinstance(node, list):
        return [_strip_k8s(v) for v in node]
    return node


def validator(schema) -> jsonschema.Draft4Validator:  # OpenAPI v3.0 ~ draft 4 (boolean exclusiveMinimum)
    return jsonschema.Draft4Validator(_strip_k8s(schema))


def test_example_passes_the_schema(schema):
    validator(schema).validate(example())


@pytest.mark.parametrize("path,value", [
    (("sampling", "k"), 0),
    (("training", "deepspeed", "zeroStage"), 4),
    (("sampling", "topP"), 0.0),
    (("training", "method"), "ppo"),
    (("sampling", "sampler", "resources", "limits", "memory"), "lots"),
])
def test_schema_rejects_bad_values(schema, path, value):
    job = example()
    node = job["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validator(schema).validate(job)


def apply_defaults(node: dict[str, Any], obj: Any) -> Any:
    """What the API server does with structural defaults (recursively, after each default)."""
    if isinstance(obj, dict) and node.get("type") == "object":
        for key, sub in (node.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                obj[key] = apply_defaults(sub, obj[key])
    elif isinstance(obj, list) and isinstance(node.get("items"), dict):
        obj = [apply_defaults(node["items"], o) for o in obj]
    return obj


MINIMAL = {
    "model": {"source": "Qwen/QwQ-32B"},
    "datasets": {"train": {"name": "t", "source": "s3://bkt/t.jsonl"}, "eval": [{"name": "e", "source": "s3://bkt/e.jsonl"}]},
    "storage": {"uri": "s3://bkt/run"},
}


def test_schema_defaults_equal_the_model_defaults(schema):
    defaulted = apply_defaults(schema["properties"]["spec"], copy.deepcopy(MINIMAL))
    assert defaulted["sampling"]["k"] == 16 and defaulted["training"]["trainer"]["resources"]["limits"]
    assert parse_spec(defaulted).to_wire() == parse_spec(copy.deepcopy(MINIMAL)).to_wire()


# ---- CEL -------------------------------------------------------------------------------------
ENV = celpy.Environment()


def rules_at(schema) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    def rec(node, path):
        for rule in node.get("x-kubernetes-validations") or []:
            yield path, rule
        for key, val in (node.get("properties") or {}).items():
            yield from rec(val, path + (key,))
        if isinstance(node.get("items"), dict):
            yield from rec(node["items"], path + ("[]",))
    yield from rec(schema, ())


def values_at(obj: Any, path: tuple[str, ...]) -> list[Any]:
    if not path:
        return [obj]
    head, rest = path[0], path[1:]
    if head == "[]":
        return [v for item in obj or [] for v in values_at(item, rest)]
    if isinstance(obj, dict) and head in obj:
        return values_at(obj[head], rest)
    return []


def cel(rule: str, **variables: Any) -> bool:
    program = ENV.program(ENV.compile(rule))
    return bool(program.evaluate({k: celpy.json_to_cel(v) for k, v in variables.items()}))


def failing_rules(schema, job, old=None) -> list[str]:
    out = []
    for path, rule in rules_at(schema):
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue
        news = values_at(job, path)
        olds = values_at(old, path) if transition else [None] * len(news)
        for new, prev in zip(news, olds):
            ok = cel(rule["rule"], self=new, oldSelf=prev) if transition else cel(rule["rule"], self=new)
            if not ok:
                out.append(rule["message"])
    return out


def defaulted_example(schema):
    return apply_defaults(schema, example())


def test_every_cel_rule_compiles_and_the_example_passes(schema):
    rules = list(rules_at(schema))
    assert len(rules) > 10
    assert failing_rules(schema, defaulted_example(schema)) == []
    assert failing_rules(schema, defaulted_example(schema), old=defaulted_example(schema)) == []


@pytest.mark.parametrize("mutate,expected", [
    (lambda s: s["sampling"].update(samplesPerProblem=20), "samplesPerProblem must be <= k"),
    (lambda s: s["training"].update(batchSize=30, microBatchSize=4), "batchSize must be a multiple"),
    (lambda s: s["datasets"]["eval"].append(dict(s["datasets"]["eval"][0])), "eval dataset names must be unique"),
    (lambda s: s["sampling"]["sampler"].update(tensorParallelSize=16), "tensorParallelSize exceeds"),
    (lambda s: s["training"]["trainable"].update(mode="freeze-first", freezeFirstN=0), "freeze-first needs"),
    (lambda s: s["prompt"].update(template="no placeholder"), "{problem}"),
])
def test_cel_rules_restate_the_model_validators(schema, mutate, expected):
    job = defaulted_example(schema)
    mutate(job["spec"])
    failures = failing_rules(schema, job)
    assert any(expected in f for f in failures), failures
    with pytest.raises(SpecError):  # the model agrees
        parse_spec(job["spec"])


def test_cel_immutability_allows_only_suspend(schema):
    old = defaulted_example(schema)
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert failing_rules(schema, new, old=old) == []
    new["spec"]["training"]["lambda"] = 3.0
    assert failing_rules(schema, new, old=old) == [
        "spec.training is immutable while the job exists (only spec.suspend may change); create a new PruningJob"]


@pytest.mark.parametrize("name,ok", [
    ("marco-o1-pruned", True), ("a", True), ("x" * 40, True),
    ("x" * 41, False),            # children append up to 18 characters; Services take 63
    ("7b-run", False),            # a Service name is a DNS-1035 label: a letter first
    ("marco.v2", False),          # a dot: the ConfigMap is created, the Service refused
    ("run-", False), ("Run", False),
])
def test_one_name_rule_for_the_crd_the_model_and_the_operator(crd, name, ok):
    """The same DNS-1035 label of at most 40 characters in all three places."""
    from o1pruner.cel import validate_object
    from o1pruner.spec import job_name_error, parse_job
    from o1pruner_operator.reconcile import Failure, validate

    job = example()
    job["metadata"] = {"name": name}
    crd_errors = [e for e in validate_object(crd, job) if e[0] == "metadata.name"]
    assert (crd_errors == []) is ok, crd_errors
    assert (job_name_error(name) is None) is ok
    if ok:
        parse_job(job)
        validate({**job, "metadata": {"name": name, "namespace": "ns"}})
    else:
        with pytest.raises(SpecError):
            parse_job(job)
        with pytest.raises(Failure, match="metadata.name"):
            validate({**job, "metadata": {"name": name, "namespace": "ns"}})


# ---- CEL cost (what the API server estimates when the CRD is created) ---------------------
def test_every_cel_rule_is_cheap_whatever_the_input(crd):
    """Each rule's worst case (request-sized strings, full maps and lists) stays under 1 % of the
    API server's per-rule limit, and all rules under 10 % of the per-CRD limit: a rule whose cost
    grows with an unbounded size cannot come back unnoticed."""
    from o1pruner.celcost import CRD_LIMIT, RULE_LIMIT, crd_rule_costs

    costs = crd_rule_costs(crd)
    assert len(costs) > 10
    too_costly = [(c.path, c.rule, c.total) for c in costs if c.total >= RULE_LIMIT // 100]
    assert too_costly == []
    assert sum(c.total for c in costs) < CRD_LIMIT // 10


@pytest.mark.parametrize("rule,schema_node,at_least", [
    # the rules of the CRD before the fix: each alone was over the 10^7 per-rule limit
    ("!has(self.limits) || self.limits.all(k, !k.endsWith('/gpu') || "
     "string(self.limits[k]).matches('^[0-9]+$'))", "resources", 10_000_000),
    ("!has(self.limits) || self.limits.all(k, !string(self.limits[k]).startsWith('-'))", "resources", 10_000_000),
    # an unbounded string (metadata.name as CEL sees it) is sized at the request limit
    ("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')", "root", 1_000_000),
])
def test_the_estimator_reproduces_the_api_servers_refusals(schema, rule, schema_node, at_least):
    from o1pruner.celcost import root_val, rule_cost, schema_val

    if schema_node == "root":
        bare = {**schema, "properties": {**schema["properties"], "metadata": {"type": "object"}}}
        val = root_val(bare)
    else:
        val = schema_val(schema["properties"]["spec"]["properties"]["sampling"]["properties"]["sampler"]
                         ["properties"]["resources"])
    assert rule_cost(rule, val) >= at_least


def test_the_estimator_knows_every_construct_the_crd_uses(crd):
    """It raises on anything it does not model, so no rule is silently under-estimated."""
    from o1pruner.celcost import rule_cost, schema_val

    with pytest.raises(ValueError, match="not known"):
        rule_cost("self.x.lowerAscii() == 'a'", schema_val({"type": "object", "properties": {
            "x": {"type": "string", "maxLength": 3}}}))


def test_cli_prints_the_committed_crd(capsys):
    from o1pruner.cli import main

    assert main(["crd"]) == 0
    assert capsys.readouterr().out == CRD_FILE.read_text()


def test_cel_optional_fields_cannot_appear_or_vanish(schema):
    old = defaulted_example(schema)
    assert "serviceAccountName" not in old["spec"]
    new = copy.deepcopy(old)
    new["spec"]["serviceAccountName"] = "trainer"
    assert any("serviceAccountName" in m for m in failing_rules(schema, new, old=old))
