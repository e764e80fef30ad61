"""docs/dashboards.png is drawn from a recorded real run (scripts/dashboards_from_run.py), not scripted values.

The sidecar docs/dashboards.json must list every panel of both dashboards with the exact expr of
the dashboard JSON as it is now (a changed panel means the picture must be re-made), name the run
(job, model, commit, date), and the PNG must carry the sidecar's SHA-256 (bench/common.py
``stamp_png``: the picture was drawn from that record). ``pytest -m prometheus
tests/chart/test_prometheus.py`` runs the script end to end.
"""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT, dashboards_script

PNG = ROOT / "docs" / "dashboards.png"
SIDECAR = ROOT / "docs" / "dashboards.json"


@pytest.fixture(scope="module")
def script():
    return dashboards_script()


@pytest.fixture(scope="module")
def data():
    return json.loads(SIDECAR.read_text())


def test_sidecar_lists_every_panel_with_the_dashboards_own_expr(script, data):
    expected = [(name, p["title"], [t["expr"] for t in p["targets"]])
                for name, board in script.load_dashboards().items() for p in script.panels(board) if p.get("targets")]
    assert len(expected) >= 20
    assert [(p["dashboard"], p["title"], [t["expr"] for t in p["targets"]]) for p in data["panels"]] == expected, (
        "the dashboards changed since docs/dashboards.png was made: rerun scripts/dashboards_from_run.py")


def test_png_was_drawn_from_the_sidecar(data):
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from common import data_sha256, png_stamp

    assert png_stamp(PNG) == data_sha256(data)


def test_sidecar_names_a_real_run(script, data):
    job = data["job"]
    assert job["name"] and job["model"] and data["commit"] and data["date"] and data["run"]["returncode"] == 0
    assert not job["name"].startswith("demo"), job
    assert job["model"].startswith("embedded:longthought"), job  # the long-thought testbed model
    # where it ran and which build of the model (builds differ between kinds of CPU), and the verdict
    assert data["machine"]["cpu"] and data["machine"]["cores"] >= 1
    assert len(data["baseModel"]["weights_sha256"]) == 64  # a build before builds recorded their CPU has none:
    assert data["baseModel"].get("cpu", data["machine"]["cpu"]) == data["machine"]["cpu"]
    assert isinstance(data["accepted"], bool) and script.label(data).count("\n") >= 1
    # Queried for that job, with every template variable substituted.
    for p in data["panels"]:
        for t in p["targets"]:
            assert "$" not in t["query"], t
            assert t["query"] == script.substitute(t["expr"], data["variables"])
    # Every panel over the pipeline's own metrics shows data; the others say why they cannot.
    with_data = [p["title"] for p in data["panels"] if "note" not in p]
    assert {"Accuracy: base vs pruned", "Mean length: base vs pruned", "Reward during training",
            "Length during training", "Trainer tokens per second", "Sampling progress"} <= set(with_data)
    for p in data["panels"]:
        if "note" in p:
            assert all(t["series"] == 0 for t in p["targets"])
            assert p["note"].startswith(("no operator", "no vLLM server", "AES undefined")), p
        else:
            assert any(t["series"] > 0 for t in p["targets"]), p
