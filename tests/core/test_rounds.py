"""Iterative pruning rounds: the pure rules (:mod:`o1pruner.rounds`), the round's storage folder,
the spec, and the local pipeline running 2 rounds on the ``embedded:longthought-smoke`` model."""

from __future__ import annotations

import json

import pytest

from o1pruner.rounds import length_gain, result_round, round_prefix, round_summary, rounds_text, stop_reason
from o1pruner.spec import SpecError, parse_spec
from o1pruner.storage import LocalStorage


def _report(base_len=100.0, pruned_len=60.0, accepted=True, guard=True, gap=None):
    paired = {"deltaAccuracy": {"mean": -0.01, "low": -0.05, "high": 0.03, "n": 40},
              "lengthChange": {"mean": -0.4, "low": -0.45, "high": -0.35, "n": 40}}
    if gap is not None:
        paired["gapClosed"] = gap
    out = {"accepted": accepted, "paired": paired,
           "results": {"average": {"baseLength": base_len, "prunedLength": pruned_len,
                                   "baseAccuracy": 0.8, "prunedAccuracy": 0.79}}}
    if guard:
        out["guard"] = {"passed": accepted, "message": "accuracy guard " + ("passed" if accepted else "failed")}
    return out


def test_round_one_keeps_todays_keys_and_later_rounds_get_a_folder():
    assert round_prefix(1) == ""
    assert round_prefix(2) == "rounds/2" and round_prefix(10) == "rounds/10"
    with pytest.raises(ValueError):
        round_prefix(0)


def test_length_gain_is_the_relative_reduction_vs_the_reference():
    assert length_gain(100, 60) == pytest.approx(0.4)
    assert length_gain(100, 110) == pytest.approx(-0.1)
    assert length_gain(0, 10) == 0.0


def test_round_summary_carries_lengths_accuracy_cis_gap_and_verdict():
    s = round_summary(2, _report(pruned_len=45.0, gap=0.7), reference_length=60.0)
    assert s["round"] == 2 and s["referenceMeanLength"] == 60.0 and s["prunedMeanLength"] == 45.0
    assert s["lengthGain"] == pytest.approx(0.25)
    assert s["accuracy"] == 0.79 and s["baseAccuracy"] == 0.8
    assert s["deltaAccuracy"]["low"] == -0.05 and s["lengthChange"]["mean"] == -0.4
    assert s["gapClosed"] == 0.7 and s["guardPassed"] is True and s["accepted"] is True
    assert "gapClosed" not in round_summary(1, _report(), 100.0)  # L_min unknown: no gap


def test_a_round_is_rejected_when_the_guard_fails_or_it_got_longer():
    assert round_summary(2, _report(accepted=False), 60.0)["accepted"] is False
    assert round_summary(2, _report(pruned_len=61.0), 60.0)["accepted"] is False
    # round 1 is judged by the guard only (its reference is the base)
    assert round_summary(1, _report(pruned_len=101.0), 100.0)["accepted"] is True
    assert round_summary(1, _report(guard=False), 100.0)["guardPassed"] is None


def test_stop_reason_names_the_guard_the_gain_or_the_count():
    ok = round_summary(1, _report(pruned_len=60.0), 100.0)
    assert stop_reason(ok, count=3, min_length_gain=0.05) is None
    assert "all 1 rounds" in stop_reason(ok, count=1, min_length_gain=0.05)
    assert "below minLengthGain 50.0 %" in stop_reason(ok, count=3, min_length_gain=0.5)
    assert "accuracy guard" in stop_reason(round_summary(2, _report(accepted=False), 60.0), 3, 0.0)
    assert "not shorter" in stop_reason(round_summary(2, _report(pruned_len=70.0), 60.0), 3, 0.0)


def test_the_result_is_the_last_accepted_round():
    assert result_round([{"round": 1, "accepted": True}, {"round": 2, "accepted": True}]) == 2
    assert result_round([{"round": 1, "accepted": True}, {"round": 2, "accepted": False}]) == 1
    assert result_round([{"round": 1, "accepted": False}]) is None
    rounds = [round_summary(1, _report(), 100.0), round_summary(2, _report(accepted=False, pruned_len=50.0), 60.0)]
    text = rounds_text(rounds, 1)
    assert "round 1: length 100 → 60 (-40 %)" in text and "(rejected)" in text and "result: round 1" in text
    assert "no round accepted" in rounds_text(rounds, None)


def test_spec_rounds_defaults_and_field_named_errors():
    base = {"model": {"source": "embedded:tiny"}, "datasets": {"train": {"name": "t", "source": "builtin:arithmetic"},
                                                              "eval": [{"name": "e", "source": "builtin:arithmetic"}]},
            "storage": {"uri": "/tmp/x"}}
    spec = parse_spec(base)
    assert spec.rounds.count == 1 and spec.rounds.min_length_gain == 0.05
    assert parse_spec({**base, "rounds": {"count": 3, "minLengthGain": 0.1}}).rounds.count == 3
    for bad, field in (({"count": 0}, "spec.rounds.count"), ({"count": 11}, "spec.rounds.count"),
                       ({"minLengthGain": -0.1}, "spec.rounds.minLengthGain"), ({"bogus": 1}, "spec.rounds.bogus")):
        with pytest.raises(SpecError) as exc:
            parse_spec({**base, "rounds": bad})
        assert field in str(exc.value)


def test_crd_schema_validates_rounds():
    from o1pruner.crd import build_crd

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rounds = schema["properties"]["rounds"]["properties"]
    assert rounds["count"]["minimum"] == 1 and rounds["count"]["maximum"] == 10
    assert rounds["minLengthGain"]["minimum"] == 0 and rounds["minLengthGain"]["maximum"] == 1


def test_a_child_storage_is_a_folder_of_its_parent(tmp_path):
    root = LocalStorage(tmp_path)
    child = root.child("rounds/2")
    assert root.child("") is root
    child.write_json("eval/base/summary.json", {"a": 1})
    assert root.read_json("rounds/2/eval/base/summary.json") == {"a": 1}
    assert child.list("eval") == ["eval/base/summary.json"] and child.list_dirs("eval") == ["base"]
    assert child.uri("x") == root.uri("rounds/2/x")
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.bin").write_bytes(b"w")
    child.upload_dir(src, "train/model")
    assert child.is_dir_complete("train/model") and root.is_dir_complete("rounds/2/train/model")
    assert child.download_dir("train/model", tmp_path / "dst", require_complete=True)
    assert child.delete_prefix("eval") == 1 and not root.exists("rounds/2/eval/base/summary.json")


def test_the_cli_phases_take_the_round(tmp_path):
    from o1pruner.cli import _in_round, build_parser
    from o1pruner.pipeline import Context
    from o1pruner.storage import Manifest

    for phase in (["sample", "j.yaml"], ["train", "j.yaml"], ["evaluate", "j.yaml", "--model", "pruned"]):
        assert build_parser().parse_args(phase).round == 1
        assert build_parser().parse_args([*phase, "--round", "2"]).round == 2
    root = LocalStorage(tmp_path)
    ctx = Context(job=None, store=root, manifest=Manifest(root))
    assert _in_round(ctx, 1) is ctx
    two = _in_round(ctx, 2)
    assert two.round == 2 and two.store.uri("x") == root.uri("rounds/2/x") and two.base_store is root


def test_a_phase_with_an_endpoint_downloads_no_model(tmp_path, monkeypatch):
    from o1pruner import pipeline
    from o1pruner.storage import Manifest

    job = _job(tmp_path, "ep", rounds={"count": 2})
    root = LocalStorage(tmp_path / "ep")
    ctx = pipeline.Context(job=job, store=root, manifest=Manifest(root)).for_round(2)
    seen = []
    monkeypatch.setattr(pipeline, "make_sampler", lambda ctx, path, endpoint=None: seen.append((path, endpoint)))
    pipeline.phase_sampler(ctx, lambda: pytest.fail("downloaded a model the endpoint serves"), "http://s:8000/v1")
    pipeline.phase_sampler(ctx, lambda: "/models/r1", None)
    assert seen == [("", "http://s:8000/v1"), ("/models/r1", None)]
    # the local run refuses rounds on an endpoint that serves only the base model
    with_endpoint = job.model_copy(update={"spec": job.spec.model_copy(update={
        "sampling": job.spec.sampling.model_copy(update={"endpoint": "http://s:8000/v1"})})})
    with pytest.raises(pipeline.PhaseError, match="spec.rounds.count > 1 with spec.sampling.endpoint"):
        pipeline.run_local(with_endpoint)
    assert not (tmp_path / "ep").exists()


# --------------------------------------------------------------------------- the local pipeline
def _job(tmp_path, name, rounds=None, port=19498):
    from o1pruner.spec import parse_job

    spec = {
        "model": {"source": "embedded:longthought-smoke"},
        "datasets": {"train": {"name": "t", "source": "builtin:longthought", "generator": {"count": 4, "seed": 1}},
                     "eval": [{"name": "e", "source": "builtin:longthought", "generator": {"count": 6, "seed": 2}}]},
        "prompt": {"system": ""},
        "sampling": {"k": 2, "temperature": 1.0, "topP": 1.0, "maxTokens": 16, "backend": "transformers"},
        "training": {"epochs": 1, "batchSize": 4, "microBatchSize": 4, "maxLength": 64, "deepspeed": {"enabled": False}},
        "evaluation": {"maxTokens": 16},
        "storage": {"uri": str(tmp_path / name)},
        "metrics": {"port": port},
    }
    if rounds:
        spec["rounds"] = rounds
    return parse_job({"apiVersion": "o1pruner.dev/v1alpha1", "kind": "PruningJob", "metadata": {"name": name},
                      "spec": spec})


def _keys(root) -> set[str]:
    """Every stored key, shard names (time-stamped) folded to ``part-*``."""
    import re

    return {re.sub(r"part-[^/]*$", "part-*", p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file()}


def _done_at(path) -> dict:
    return {k: v["done_at"] for k, v in json.loads(path.read_text())["phases"].items()}


def test_two_rounds_resample_from_round_one_and_resume_in_round_two(cache, tmp_path, monkeypatch):
    """Round 2 samples from and trains round 1's pruned model; a crash in round 2's training
    resumes in round 2 (round 1 and round 2's sampling are not redone); round 1's keys are
    those of a one-round job."""
    from o1pruner import pipeline, rounds, training
    from o1pruner.metrics import PipelineMetrics

    # acceptance and the stop rule are tested above; the barely trained smoke model may get longer
    # or fail the guard, so here every round counts as accepted and shorter: 2 rounds always run
    monkeypatch.setattr(pipeline, "round_summary", lambda *a: {
        **rounds.round_summary(*a), "guardPassed": None, "accepted": True, "lengthGain": 1.0})
    samplers, policies = [], []
    real_sampler, real_policy = pipeline.make_sampler, training.load_policy
    monkeypatch.setattr(pipeline, "make_sampler", lambda ctx, path, *a, **k: (
        samplers.append((ctx.round, path)), real_sampler(ctx, path, *a, **k))[1])
    monkeypatch.setattr(training, "load_policy", lambda path, *a, **k: (
        policies.append(path), real_policy(path, *a, **k))[1])
    real_train = pipeline.phase_train

    def crash_in_round_two(ctx, **kw):
        if ctx.round == 2:
            raise RuntimeError("preempted")
        return real_train(ctx, **kw)

    published = []
    monkeypatch.setattr(PipelineMetrics, "round_result", lambda self, *a: published.append(a))
    job = _job(tmp_path, "two", rounds={"count": 2, "minLengthGain": 0.0})
    monkeypatch.setattr(pipeline, "phase_train", crash_in_round_two)
    with pytest.raises(RuntimeError, match="preempted"):
        pipeline.run_local(job)
    run = tmp_path / "two"
    round1 = _done_at(run / "manifest.json")
    round2 = _done_at(run / "rounds" / "2" / "manifest.json")
    assert set(round2) == {"sample"} and {"sample", "train", "evaluate-base", "evaluate-pruned"} <= set(round1)
    r1_model = [path for rnd, path in samplers if rnd == 1 and path.endswith("-pruned")]
    assert [path for rnd, path in samplers if rnd == 2] == r1_model  # round 2 sampled round 1's model

    samplers.clear()
    monkeypatch.setattr(pipeline, "phase_train", real_train)
    report = pipeline.run_local(job)
    assert _done_at(run / "manifest.json") == {**round1, "report": _done_at(run / "manifest.json")["report"]}
    resumed = _done_at(run / "rounds" / "2" / "manifest.json")
    assert resumed["sample"] == round2["sample"] and {"train", "evaluate-pruned", "report"} <= set(resumed)
    assert policies[-1] == r1_model[0]  # round 2 trained round 1's model
    assert [rnd for rnd, _ in samplers] == [2]  # only round 2's pruned model was evaluated again
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert report["resultRound"] == 2 and report["round"] == 2 and report["stopReason"] == "all 2 rounds ran"
    assert report["model"].endswith("rounds/2/train/model")
    r1, r2 = report["rounds"]
    assert r2["referenceMeanLength"] == report["rounds"][0]["prunedMeanLength"]
    assert "gapClosed" in r2 and r2["deltaAccuracy"]["low"] <= r2["deltaAccuracy"]["high"]
    # metrics per round (o1pruner_round_*): round 2's report publishes rounds 0, 1 and 2
    assert published[-3:] == [(0, r1["referenceMeanLength"], r1["baseAccuracy"]),
                              (1, r1["prunedMeanLength"], r1["accuracy"]), (2, r2["prunedMeanLength"], r2["accuracy"])]
    # round 2 is judged against the original base's evaluation (not round 1's model)
    assert report["results"]["average"]["baseLength"] == report["rounds"][0]["referenceMeanLength"]
    assert json.loads((run / "rounds" / "report.json").read_text())["resultRound"] == 2
    assert (run / "rounds" / "report.png").stat().st_size > 10_000
    assert (run / "rounds" / "2" / "report" / "report.json").is_file()

    one = tmp_path / "one"
    pipeline.run_local(_job(tmp_path, "one"))
    assert not any(k.startswith("rounds/") for k in _keys(one))
    assert _keys(one) == {k for k in _keys(run) if not k.startswith("rounds/")}
