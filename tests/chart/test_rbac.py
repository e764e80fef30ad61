"""The chart grants the operator exactly the permissions it needs: o1pruner_operator.rbac.REQUIRED_RULES.

Rules are compared as sets of (apiGroup, resource, verb) triples, so the grouping of rules may
differ but not a single permission. Cluster-scoped resources live in the ClusterRole; namespaced
ones in the ClusterRole (all namespaces) or in a Role per watched namespace.
"""

from __future__ import annotations

import importlib

import pytest

from .conftest import Rendered

CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "clusterkopfpeerings", "nodes",
                  "clusterroles", "clusterrolebindings", "persistentvolumes", "storageclasses"}


def _required() -> list[dict]:
    try:
        mod = importlib.import_module("o1pruner_operator.rbac")
    except ImportError:
        pytest.skip("o1pruner_operator.rbac (REQUIRED_RULES) does not exist yet (operator helper)")
    return list(mod.REQUIRED_RULES)


def _triples(rules: list[dict]) -> set[tuple[str, str, str]]:
    out = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    out.add((group, res, verb))
    return out


def _granted(r: Rendered) -> tuple[set, set]:
    cluster = set().union(*(_triples(cr["rules"]) for cr in r.of_kind("ClusterRole")))
    roles = {}
    for role in r.of_kind("Role"):
        roles[role["metadata"]["namespace"]] = _triples(role["rules"])
    return cluster, roles


def test_no_wildcards_anywhere(rendered):
    for r in rendered.values():
        for role in r.of_kind("ClusterRole") + r.of_kind("Role"):
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key], (r.name, role["metadata"]["name"], rule)
                assert "resourceNames" not in rule or rule["resourceNames"], rule


def test_secrets_are_never_writable(rendered):
    for r in rendered.values():
        cluster, roles = _granted(r)
        for triples in [cluster, *roles.values()]:
            assert not {t for t in triples if t[1] == "secrets" and t[2] not in ("get",)}, r.name


def test_cluster_wide_rbac_equals_required_rules(rendered):
    required = _triples(_required())
    cluster, roles = _granted(rendered["default"])
    assert not roles
    assert cluster == required, {"missing": required - cluster, "extra": cluster - required}


def test_namespaced_rbac_equals_required_rules(rendered):
    required = _triples(_required())
    cluster, roles = _granted(rendered["namespaced"])
    assert sorted(roles) == ["team-a", "team-b"]
    for ns, granted in roles.items():
        assert all(t[1] not in CLUSTER_SCOPED for t in granted), ns
        assert granted | cluster == required, {
            "namespace": ns, "missing": required - (granted | cluster), "extra": (granted | cluster) - required}
    assert all(t[1] in CLUSTER_SCOPED for t in cluster), cluster
