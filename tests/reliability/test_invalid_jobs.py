"""Item 1 — bad input. Every PruningJob in ``invalid_jobs/`` is rejected, with a message that
names the field its header gives:

* ``rejected-by: crd`` — by the committed CRD (``crds/pruningjobs.o1pruner.dev.yaml``) on
  ``kubectl apply``: defaulting, OpenAPI schema (strict: unknown fields are errors) and the
  CEL ``x-kubernetes-validations`` evaluated with cel-python (:mod:`o1pruner.cel`), including
  the ``oldSelf`` transition rules for the two-document "update" files (stored object, edit);
* ``rejected-by: model`` — by the spec model (:func:`o1pruner.spec.parse_job`, what the
  operator and ``o1pruner`` run), raising ``SpecError`` with field paths.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from o1pruner.cel import validate_object
from o1pruner.spec import SpecError, parse_job

HERE = Path(__file__).resolve().parent
CORPUS = sorted((HERE / "invalid_jobs").glob("*.yaml"))
CRD_FILE = HERE.parents[1] / "crds" / "pruningjobs.o1pruner.dev.yaml"


def _header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(":")
        if sep and key in ("field", "rejected-by", "update"):
            out[key] = value.strip()
    return out


def names_field(errors: list[tuple[str, str]], field: str) -> bool:
    """An error at the field itself, or at its parent with the field's name in the message."""
    for path, msg in errors:
        if path == field:
            return True
        if path == "<root>" and field in msg:  # a rule on the whole object (metadata.name)
            return True
        if field.startswith(path + ".") or field.startswith(path + "["):
            leaf = field[len(path):].lstrip(".")
            if leaf in msg or leaf.split(".", 1)[0] in msg:
                return True
    return False


@pytest.fixture(scope="module")
def crd() -> dict:
    return yaml.safe_load(CRD_FILE.read_text())


def test_the_corpus_is_large_and_every_file_says_which_field(crd):
    assert len(CORPUS) >= 25
    for path in CORPUS:
        h = _header(path)
        assert h.get("field") and h.get("rejected-by"), f"{path.name}: header needs '# field:' and '# rejected-by:'"
        assert set(h["rejected-by"].split()) <= {"crd", "model"}, path.name


def test_the_corpus_base_job_is_valid(crd):
    """Control: the job the corpus files are mutations of passes both layers."""
    docs = list(yaml.safe_load_all((HERE / "invalid_jobs" / "update-model-source.yaml").read_text()))
    base = docs[0]
    assert validate_object(crd, base) == []
    parse_job(base)


def test_changing_only_suspend_is_allowed(crd):
    docs = list(yaml.safe_load_all((HERE / "invalid_jobs" / "update-model-source.yaml").read_text()))
    old = docs[0]
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert validate_object(crd, new, old) == []


#: Invalid jobs that get through (or are rejected for the wrong reason) today; strict xfail, so
#: the test turns red the day one is fixed and the entry must go.
KNOWN_GAPS: dict[str, str] = {}

CASES = [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[p.stem])) if p.stem in KNOWN_GAPS
         else p for p in CORPUS]


def test_errors_never_echo_inlined_credentials(crd):
    secrets = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "hunter2")
    for path in (HERE / "invalid_jobs").glob("secret-*.yaml"):
        obj = yaml.safe_load(path.read_text())
        texts = [m for _, m in validate_object(crd, obj)]
        with pytest.raises(SpecError) as info:
            parse_job(obj)
        texts.append(str(info.value))
        for text in texts:
            assert not any(s in text for s in secrets), f"{path.name}: {text}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CORPUS])
def test_invalid_job_is_rejected_naming_the_field(path, crd):
    h = _header(path)
    field, layers = h["field"], set(h["rejected-by"].split())
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    if h.get("update"):
        old, new = docs
        assert validate_object(crd, old) == [], "the stored object must itself be valid"
        crd_errors = validate_object(crd, new, old)
    else:
        (new,) = docs
        crd_errors = validate_object(crd, new)
    try:
        parse_job(new)
        model_errors: list[tuple[str, str]] = []
    except SpecError as exc:
        model_errors = exc.errors
    assert crd_errors or model_errors, f"{path.name}: accepted by the CRD and by the spec model"
    if "crd" in layers:
        assert crd_errors, f"{path.name}: the CRD admits it"
        assert names_field(crd_errors, field), f"{path.name}: CRD errors do not name {field}: {crd_errors}"
    if "model" in layers:
        assert model_errors, f"{path.name}: the spec model accepts it"
        assert names_field(model_errors, field), f"{path.name}: model errors do not name {field}: {model_errors}"


#: Invalid jobs the CRD cannot refuse: the rule would need CEL's ``quantity()`` on an
#: int-or-string, whose estimated cost is the request limit (see o1pruner.celcost).
MODEL_ONLY = {"resources-requests-exceed-limits"}


def _crd_errors(path: Path, crd: dict) -> list[tuple[str, str]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return validate_object(crd, docs[-1], docs[0] if len(docs) == 2 else None)


def test_kubectl_apply_rejects_every_invalid_job_a_schema_can_state(crd):
    """Only MODEL_ONLY gets past the CRD (before: 8 of the corpus were admitted and failed later
    as InvalidSpec, after the GPU sampler had loaded)."""
    admitted = sorted(p.stem for p in CORPUS if not _crd_errors(p, crd))
    assert admitted == sorted(MODEL_ONLY)
    for stem in MODEL_ONLY:
        assert "model" in _header(HERE / "invalid_jobs" / f"{stem}.yaml")["rejected-by"]


def test_the_operator_rejects_every_invalid_job_the_crd_would_have():
    """A job admitted without the CRD's checks (an older CRD) still fails with InvalidSpec, naming
    the field; update files are caught by the spec hash instead (SpecChanged)."""
    from o1pruner_operator.reconcile import Failure, validate

    for path in CORPUS:
        h = _header(path)
        if h.get("update"):
            continue
        (body,) = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        if not isinstance(body.get("metadata"), dict):
            continue
        body["metadata"].setdefault("namespace", "ns")
        with pytest.raises(Failure) as info:
            validate(body)
        assert info.value.reason == "InvalidSpec", path.name
        leaf = h["field"].split(".")[-1].split("[")[0]
        assert leaf in info.value.message or h["field"].rsplit(".", 2)[-2] in info.value.message, (
            f"{path.name}: {info.value.message}")
