"""Static cost of a CRD's CEL rules, estimated the way the API server does when the CRD is created.

The API server refuses a CustomResourceDefinition whose ``x-kubernetes-validations`` rule has an
estimated worst-case cost above ``StaticEstimatedCostLimit`` (10^7, per rule, times the number of
times the rule can run: the product of ``maxItems``/``maxProperties`` above it) or whose rules
sum above ``StaticEstimatedCRDCostLimit`` (10^8) (``k8s.io/apiextensions-apiserver``'s
``validation.go``). The estimate follows cel-go's ``checker/cost.go`` and the sizes Kubernetes
derives from the schema (``k8s.io/apiserver/pkg/cel/common/schemas.go``):

* a string is sized by ``maxLength`` (an enum by its longest value), else by the request limit
  (3 MiB - 2); an ``x-kubernetes-int-or-string`` is ``dyn`` sized at the request limit whatever
  its ``maxLength``; lists and maps by ``maxItems``/``maxProperties``, else by how many of their
  smallest items fit in a request;
* identifiers and field selections cost 1, literals 0, a list literal 10; ``&&``/``||``/``?:``
  cost their operands (the costlier branch);
* ``==``/``!=`` and string ordering cost 0.1 per element of the smaller side; ``in`` a list costs
  the list's size; ``x.matches(re)`` costs ``ceil(0.1 (|x|+1)) * ceil(0.25 |re|)``;
  ``startsWith``/``endsWith`` 0.1 per character of the argument; ``contains`` the product of
  0.1 x both sizes; ``string(dyn)`` 0.1 per character (its bytes overload); other calls 1;
* a comprehension (``all``, ``exists``, ``exists_one``, ``map``, ``filter``) costs its range plus
  the range's size times the cost of one iteration (condition + step of the expanded macro).

Only the constructs this project's rules use are known; anything else raises, so a new rule
form is noticed by the test rather than estimated wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["MAX_REQUEST_BYTES", "RULE_LIMIT", "CRD_LIMIT", "RuleCost", "crd_rule_costs", "rule_cost"]

MAX_REQUEST_BYTES = 3 * 1024 * 1024
UNBOUNDED_STRING = MAX_REQUEST_BYTES - 2
#: ``StaticEstimatedCostLimit`` and ``StaticEstimatedCRDCostLimit`` (apiextensions validation.go).
RULE_LIMIT = 10_000_000
CRD_LIMIT = 100_000_000
STRING_TRAVERSAL = 0.1
REGEX_LENGTH = 0.25
LIST_CREATE = 10
MAP_CREATE = 30
TYPE_NAMES = {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"}


@dataclass
class Val:
    """What the estimator knows of a value: its kind, its largest size, its schema."""

    kind: str  # string | int | double | bool | list | map | object | dyn | type | null | bytes
    size: int = 1
    schema: dict[str, Any] | None = None
    elem: Val | None = None  # list items / map values
    key: Val | None = None  # map keys

    def member(self, name: str) -> Val:
        if self.kind == "object" and self.schema is not None:
            props = self.schema.get("properties") or {}
            if name not in props:
                raise ValueError(f"no field {name!r} in the schema")
            return schema_val(props[name])
        if self.kind == "map" and self.elem is not None:
            return self.elem
        if self.kind == "dyn":
            return Val("dyn", UNBOUNDED_STRING)
        raise ValueError(f"cannot select {name!r} on {self.kind}")


def _min_serialized(schema: dict[str, Any]) -> int:
    if schema.get("x-kubernetes-int-or-string"):
        return 1
    return {"string": 2, "integer": 1, "number": 1, "boolean": 4, "object": 2, "array": 2}.get(
        schema.get("type", ""), 1)


def schema_val(schema: dict[str, Any]) -> Val:
    """The CEL value a schema node declares, with Kubernetes' size bounds."""
    if schema.get("x-kubernetes-int-or-string"):
        return Val("dyn", UNBOUNDED_STRING, schema)
    typ = schema.get("type")
    if typ == "string":
        if "maxLength" in schema:
            size = int(schema["maxLength"])
        elif schema.get("enum"):
            size = max(len(str(v)) for v in schema["enum"])
        else:
            size = UNBOUNDED_STRING
        return Val("string", size, schema)
    if typ in ("integer", "number", "boolean"):
        return Val({"integer": "int", "number": "double", "boolean": "bool"}[typ], 1, schema)
    if typ == "array":
        items = schema.get("items") or {}
        size = schema.get("maxItems", UNBOUNDED_STRING // (_min_serialized(items) + 1))
        return Val("list", int(size), schema, elem=schema_val(items))
    if typ == "object" and schema.get("properties"):
        return Val("object", len(schema["properties"]), schema)
    if typ == "object":
        extra = schema.get("additionalProperties")
        value_schema = extra if isinstance(extra, dict) else {"x-kubernetes-int-or-string": True}
        size = schema.get("maxProperties", UNBOUNDED_STRING // (_min_serialized(value_schema) + 4))
        return Val("map", int(size), schema, elem=schema_val(value_schema), key=Val("string", UNBOUNDED_STRING))
    return Val("dyn", UNBOUNDED_STRING, schema)


def root_val(schema: dict[str, Any]) -> Val:
    """``self`` at the root of a resource: Kubernetes adds apiVersion, kind and metadata.name /
    generateName as plain (unbounded) strings unless the schema types both name fields."""
    props = dict(schema.get("properties") or {})
    meta = (props.get("metadata") or {}).get("properties") or {}
    if not (meta.get("name", {}).get("type") == "string" and meta.get("generateName", {}).get("type") == "string"):
        props["metadata"] = {"type": "object", "properties": {
            "name": {"type": "string"}, "generateName": {"type": "string"}}}
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    return schema_val({**schema, "properties": props})


def _ceil(size: int, factor: float) -> int:
    return int(math.ceil(size * factor))


class _Estimator:
    def __init__(self, variables: dict[str, Val]):
        self.vars = dict(variables)

    # every node returns (cost, value)
    def visit(self, tree: Any) -> tuple[int, Val]:
        method = getattr(self, f"_{tree.data}", None)
        if method is None:
            raise ValueError(f"CEL construct {tree.data!r} is not known to the cost estimator")
        return method(tree)

    def _single(self, tree: Any) -> tuple[int, Val]:
        return self.visit(tree.children[0])

    # -- operators ------------------------------------------------------------------------------
    def _expr(self, tree: Any) -> tuple[int, Val]:
        if len(tree.children) == 1 or tree.children[1] is None:
            return self.visit(tree.children[0])
        c_cost, _ = self.visit(tree.children[0])
        a_cost, a_val = self.visit(tree.children[1])
        b_cost, b_val = self.visit(tree.children[2])
        bigger = a_val if a_val.size >= b_val.size else b_val
        return c_cost + max(a_cost, b_cost), bigger

    def _logical(self, tree: Any) -> tuple[int, Val]:
        kids = [k for k in tree.children if k is not None]
        if len(kids) == 1:
            return self.visit(kids[0])
        return sum(self.visit(k)[0] for k in kids), Val("bool")

    _conditionalor = _logical
    _conditionaland = _logical

    def _binary(self, tree: Any) -> tuple[int, Val] | tuple[str, int, Val, Val]:
        """A wrapper node with one child: its (cost, value); else (operator, operands' cost,
        left value, right value) of ``left <op> right`` (the grammar nests the left operand)."""
        kids = [k for k in tree.children if k is not None]
        if len(kids) == 1:
            return self.visit(kids[0])
        op, right = kids
        l_cost, left = self.visit(op.children[0])
        r_cost, rval = self.visit(right)
        return op.data, l_cost + r_cost, left, rval

    def _relation(self, tree: Any) -> tuple[int, Val]:
        parts = self._binary(tree)
        if len(parts) == 2:
            return parts  # type: ignore[return-value]
        op, args, left, rval = parts  # type: ignore[misc]
        if op == "relation_in":
            return args + (rval.size if rval.kind == "list" else 1), Val("bool")
        if op in ("relation_eq", "relation_ne") or (left.kind == rval.kind == "string"):
            return args + _ceil(min(left.size, rval.size), STRING_TRAVERSAL), Val("bool")
        return args + 1, Val("bool")

    def _arith(self, tree: Any) -> tuple[int, Val]:
        parts = self._binary(tree)
        if len(parts) == 2:
            return parts  # type: ignore[return-value]
        op, args, left, rval = parts  # type: ignore[misc]
        if left.kind in ("string", "list") and op == "addition_add":
            return args + 1, Val(left.kind, left.size + rval.size, elem=left.elem)
        return args + 1, Val(left.kind if left.kind in ("int", "double") else "dyn")

    _addition = _arith
    _multiplication = _arith

    def _unary(self, tree: Any) -> tuple[int, Val]:
        if len(tree.children) == 1:
            return self.visit(tree.children[0])
        cost, val = self.visit(tree.children[1])
        return cost + 1, Val("bool") if tree.children[0].data == "unary_not" else val

    # -- members and primaries ------------------------------------------------------------------
    _member = _single
    _primary = _single

    def _paren_expr(self, tree: Any) -> tuple[int, Val]:
        return self.visit(tree.children[0])

    def _literal(self, tree: Any) -> tuple[int, Val]:
        token = tree.children[0]
        text = str(token)
        if token.type in ("STRING_LIT", "MLSTRING_LIT"):
            body = text.lstrip("rR")
            quote = 3 if body[:3] in ('"""', "'''") else 1
            return 0, Val("string", len(body) - 2 * quote)
        kind = {"INT_LIT": "int", "UINT_LIT": "int", "FLOAT_LIT": "double", "BOOL_LIT": "bool",
                "NULL_LIT": "null", "BYTES_LIT": "bytes"}[token.type]
        return 0, Val(kind, 1 if kind != "bytes" else len(text))

    def _ident(self, tree: Any) -> tuple[int, Val]:
        name = str(tree.children[0])
        if name in self.vars:
            return 1, self.vars[name]
        if name in TYPE_NAMES:
            return 1, Val("type")
        raise ValueError(f"unknown identifier {name!r}")

    def _list_lit(self, tree: Any) -> tuple[int, Val]:
        items = tree.children[0].children if tree.children and tree.children[0] is not None else []
        costs = [self.visit(i) for i in items]
        biggest = max((v for _, v in costs), key=lambda v: v.size, default=Val("dyn", 0))
        return LIST_CREATE + sum(c for c, _ in costs), Val("list", len(items), elem=biggest)

    def _member_dot(self, tree: Any) -> tuple[int, Val]:
        cost, target = self.visit(tree.children[0])
        return cost + 1, target.member(str(tree.children[1]))

    def _member_index(self, tree: Any) -> tuple[int, Val]:
        t_cost, target = self.visit(tree.children[0])
        i_cost, _ = self.visit(tree.children[1])
        elem = target.elem if target.kind in ("list", "map") and target.elem else Val("dyn", UNBOUNDED_STRING)
        return t_cost + i_cost + 1, elem

    def _args(self, exprlist: Any) -> list[Any]:
        return list(exprlist.children) if exprlist is not None else []

    def _ident_arg(self, tree: Any) -> tuple[int, Val]:
        name = str(tree.children[0])
        args = self._args(tree.children[1] if len(tree.children) > 1 else None)
        if name == "has":  # macro: a presence test on a field selection
            (arg,) = args
            sel = _unwrap(arg, "member_dot")
            if sel is None:
                raise ValueError("has() needs a field selection")
            cost, _ = self.visit(sel.children[0])
            return cost + 1, Val("bool")
        costs = [self.visit(a) for a in args]
        total = sum(c for c, _ in costs)
        vals = [v for _, v in costs]
        if name == "size":
            return total + 1, Val("int")
        if name == "string":
            (v,) = vals
            if v.kind in ("dyn", "bytes"):  # the bytes overload is O(n); cel-go takes the costliest
                return total + _ceil(v.size, STRING_TRAVERSAL), Val("string", v.size)
            return total + 1, Val("string", v.size if v.kind == "string" else 20)
        if name in ("int", "uint", "double", "bool", "type", "dyn"):
            (v,) = vals
            kind = {"int": "int", "uint": "int", "double": "double", "bool": "bool", "type": "type"}.get(name, v.kind)
            return total + 1, Val(kind, v.size if name == "dyn" else 1, v.schema, v.elem, v.key)
        raise ValueError(f"function {name}() is not known to the cost estimator")

    def _member_dot_arg(self, tree: Any) -> tuple[int, Val]:
        target_tree, name = tree.children[0], str(tree.children[1])
        args = self._args(tree.children[2] if len(tree.children) > 2 else None)
        if name in ("all", "exists", "exists_one", "map", "filter"):
            return self._comprehension(target_tree, name, args)
        t_cost, target = self.visit(target_tree)
        costs = [self.visit(a) for a in args]
        total = t_cost + sum(c for c, _ in costs)
        vals = [v for _, v in costs]
        if name == "matches":
            (regex,) = vals
            return total + _ceil(target.size + 1, STRING_TRAVERSAL) * _ceil(regex.size, REGEX_LENGTH), Val("bool")
        if name in ("startsWith", "endsWith"):
            (arg,) = vals
            return total + _ceil(arg.size, STRING_TRAVERSAL), Val("bool")
        if name == "contains":
            (arg,) = vals
            return total + _ceil(target.size, STRING_TRAVERSAL) * _ceil(arg.size, STRING_TRAVERSAL), Val("bool")
        if name == "size":
            return total + 1, Val("int")
        raise ValueError(f"method .{name}() is not known to the cost estimator")

    def _comprehension(self, target_tree: Any, macro: str, args: list[Any]) -> tuple[int, Val]:
        r_cost, rng = self.visit(target_tree)
        if rng.kind not in ("list", "map"):
            rng = Val("list", UNBOUNDED_STRING, elem=Val("dyn", UNBOUNDED_STRING))
        var_tree, body = args
        var = _ident_name(var_tree)
        item = rng.elem if rng.kind == "list" else rng.key
        saved = self.vars.get(var)
        self.vars[var] = item or Val("dyn", UNBOUNDED_STRING)
        try:
            b_cost, b_val = self.visit(body)
        finally:
            if saved is None:
                self.vars.pop(var, None)
            else:
                self.vars[var] = saved
        # per iteration: loop condition + loop step of the expanded macro (cel-go parser/macro.go)
        per, init, result = {
            "all": (2 + 1 + b_cost, 0, 1),          # @not_strictly_false(accu); accu && p
            "exists": (3 + 1 + b_cost, 0, 1),       # @not_strictly_false(!accu); accu || p
            "exists_one": (b_cost + 2, 0, 2),       # p ? accu + 1 : accu; accu == 1
            "map": (1 + 1 + LIST_CREATE + b_cost, LIST_CREATE, 1),   # accu + [f]
            "filter": (b_cost + 1 + 1 + LIST_CREATE + 1, LIST_CREATE, 1),  # p ? accu + [x] : accu
        }[macro]
        out = Val("bool") if macro in ("all", "exists", "exists_one") else Val("list", rng.size, elem=b_val)
        return r_cost + init + rng.size * per + result, out


def _unwrap(tree: Any, data: str) -> Any:
    """Descend single-child wrappers (expr -> ... -> member) to the first ``data`` node."""
    node = tree
    while node is not None and getattr(node, "data", None) != data:
        kids = [k for k in getattr(node, "children", []) if k is not None]
        if len(kids) != 1 or not hasattr(kids[0], "data"):
            return None
        node = kids[0]
    return node


def _ident_name(tree: Any) -> str:
    node = _unwrap(tree, "ident")
    if node is None:
        raise ValueError("a comprehension variable must be an identifier")
    return str(node.children[0])


def rule_cost(rule: str, self_val: Val, old_val: Val | None = None) -> int:
    """The estimated worst-case cost of one CEL expression evaluated once."""
    import celpy

    tree = celpy.Environment().compile(rule)
    variables = {"self": self_val}
    if old_val is not None or "oldSelf" in rule:
        variables["oldSelf"] = old_val or self_val
    cost, _ = _Estimator(variables).visit(tree)
    return cost


@dataclass
class RuleCost:
    path: str
    rule: str
    cost: int  # one evaluation
    cardinality: int  # how many times it can run per object
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = self.cost * self.cardinality


def _nodes(schema: dict[str, Any], path: str, cardinality: int, root: bool) -> Iterator[tuple[str, dict[str, Any], int, bool]]:
    yield path, schema, cardinality, root
    for key, sub in (schema.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{key}", cardinality, False)
    if isinstance(schema.get("items"), dict):
        n = schema_val(schema).size
        yield from _nodes(schema["items"], f"{path}[]", cardinality * n, False)
    if isinstance(schema.get("additionalProperties"), dict):
        n = schema_val(schema).size
        yield from _nodes(schema["additionalProperties"], f"{path}.*", cardinality * n, False)


def crd_rule_costs(crd: dict[str, Any]) -> list[RuleCost]:
    """Every rule of every version of ``crd`` with its estimated cost."""
    out = []
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        for path, node, cardinality, root in _nodes(schema, version["name"], 1, True):
            val = root_val(node) if root else schema_val(node)
            for rule in node.get("x-kubernetes-validations") or []:
                out.append(RuleCost(path, rule["rule"], rule_cost(rule["rule"], val), cardinality))
    return out
