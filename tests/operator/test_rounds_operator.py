"""Pruning rounds in the operator: the round's children (pure builders), ``status.rounds`` (pure),
and the real kopf operator on kmock running 2 rounds, resuming round 2 after a restart, and
publishing round 1's model when round 2 fails the accuracy guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from o1pruner.spec import parse_spec
from o1pruner_operator.manifests import JobContext, Names, eval_job, sample_job, sampler_deployment
from o1pruner_operator.manifests.common import LABEL_ROUND
from o1pruner_operator.manifests.trainer import trainer_container
from o1pruner_operator.reconcile import StatusDraft, end_round, pod_selector
from o1pruner_operator.status import artifacts, round_entry

NS = "research"
NAME = "marco-o1-pruned"
S3 = "s3://o1pruner-runs/marco-o1-pruned"
ROOT = Path(__file__).resolve().parents[2]


def _results(pruned_length: float, accepted: bool = True) -> dict:
    guard = ({"passed": True, "failed": [], "message": "accuracy guard passed"} if accepted else
             {"passed": False, "failed": ["4"], "maxAccuracyDrop": 0.01,
              "message": "accuracy guard failed: difficulty 4: accuracy 0.800 → 0.600"})
    return {"datasets": {"math500": {"baseAccuracy": 0.72, "prunedAccuracy": 0.74 if accepted else 0.6,
                                     "baseLength": 2000.0, "prunedLength": pruned_length}},
            "accepted": accepted, "guard": guard}


ROUND1, ROUND2, ROUND2_WORSE = _results(1200.0), _results(900.0), _results(800.0, accepted=False)


def _ctx(round_: int = 1, **rounds) -> JobContext:
    example = yaml.safe_load((ROOT / "examples" / "pruningjob.yaml").read_text())
    spec = parse_spec({**example["spec"], "rounds": {"count": 3, **rounds}})
    return JobContext(name=NAME, namespace=NS, uid="u", spec=spec, round=round_)


# --------------------------------------------------------------------------- pure builders
def test_round_two_children_are_named_labelled_and_pointed_at_round_one():
    assert Names(NAME).sample_job == f"{NAME}-sample" and Names(NAME, 1).train == f"{NAME}-train"
    names = Names(NAME, 2)
    assert (names.sample_job, names.train, names.eval_job, names.sampler("reference"), names.config) == (
        f"{NAME}-r2-sample", f"{NAME}-r2-train", f"{NAME}-r2-evaluate", f"{NAME}-r2-sampler-reference",
        f"{NAME}-config")
    one, two = _ctx(1), _ctx(2)
    assert "--round" not in sample_job(one)["spec"]["template"]["spec"]["containers"][0]["command"]
    cmd = sample_job(two)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[-2:] == ["--round", "2"] and "--eval-base" not in cmd  # the base is evaluated once
    assert f"{NAME}-r2-sampler-reference.{NS}.svc" in cmd[cmd.index("--endpoint") + 1]
    assert eval_job(two)["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == ["--round", "2"]
    assert trainer_container(two, "t", serves_metrics=True)["command"][-2:] == ["--round", "2"]
    assert trainer_container(one, "t", serves_metrics=True)["command"][-1] == "/etc/o1pruner/job.yaml"
    ref = sampler_deployment(two, "reference")
    assert ref["spec"]["template"]["spec"]["initContainers"][0]["command"][2] == f"{S3}/train/model"
    assert sampler_deployment(_ctx(3), "reference")["spec"]["template"]["spec"]["initContainers"][0][
        "command"][2] == f"{S3}/rounds/2/train/model"
    assert sampler_deployment(two, "pruned")["spec"]["template"]["spec"]["initContainers"][0][
        "command"][2] == f"{S3}/rounds/2/train/model"
    assert ref["metadata"]["labels"][LABEL_ROUND] == "2" and ref["spec"]["selector"]["matchLabels"][LABEL_ROUND] == "2"
    assert LABEL_ROUND not in sampler_deployment(one, "reference")["spec"]["selector"]["matchLabels"]
    assert pod_selector(two, "sample").endswith(f"{LABEL_ROUND}=2") and LABEL_ROUND not in pod_selector(one, "sample")


def test_round_artifacts_and_status_entry():
    a = artifacts(S3, sampled=True, trained=True, evaluated=True, round_=2)
    assert a["model"] == f"{S3}/rounds/2/train/model/" and a["baseEval"] == f"{S3}/eval/base/summary.json"
    assert a["report"] == f"{S3}/rounds/2/report/report.json"
    assert artifacts(S3, trained=True)["model"] == f"{S3}/train/model/"
    from o1pruner_operator.status import parse_results

    entry = round_entry(2, parse_results(json.dumps(ROUND2)), reference_length=1200.0)
    assert entry["round"] == 2 and entry["referenceMeanLength"] == 1200.0 and entry["prunedMeanLength"] == 900.0
    assert entry["lengthGain"] == pytest.approx(0.25) and entry["accepted"] and entry["guardPassed"]
    assert round_entry(1, None, None)["accepted"] is False  # no figures: never the result


def _draft(status: dict) -> StatusDraft:
    return StatusDraft(old=status, generation=1, now="2026-11-30T12:00:00Z")


def test_end_round_goes_on_stops_on_low_gain_and_publishes_the_last_accepted_round():
    from o1pruner_operator.status import parse_results

    d = _draft({"phase": "Evaluating", "round": 1, "artifacts": {}})
    end_round(_ctx(1), d, parse_results(json.dumps(ROUND1)))
    assert d.phase == "Sampling" and d.new["round"] == 2 and [r["round"] for r in d.new["rounds"]] == [1]
    # round 2 gains 25 % > 5 %: round 3 would follow; with minLengthGain 0.5 the job stops
    d = _draft({**d.new, "phase": "Evaluating"})
    end_round(_ctx(2, minLengthGain=0.5), d, parse_results(json.dumps(ROUND2)))
    assert d.phase == "Succeeded" and d.new["resultRound"] == 2 and "below minLengthGain" in d.new["message"]
    assert d.new["artifacts"]["model"] == f"{S3}/rounds/2/train/model/"
    # the guard fails in round 2: round 1's model and figures are the result
    d = _draft({**_draft({"phase": "Evaluating", "round": 2, "artifacts": {}, "rounds": [
        round_entry(1, parse_results(json.dumps(ROUND1)), None) | {"model": f"{S3}/train/model/"}]}).new})
    end_round(_ctx(2), d, parse_results(json.dumps(ROUND2_WORSE)))
    assert d.phase == "Succeeded" and d.new["resultRound"] == 1
    assert d.new["artifacts"]["model"] == f"{S3}/train/model/"
    assert d.new["artifacts"]["rejectedModel"] == f"{S3}/rounds/2/train/model/"
    assert d.new["summary"]["prunedLength"] == 1200.0
    guard = next(c for c in d.new["conditions"] if c["type"] == "AccuracyGuardFailed")
    assert guard["status"] == "True" and "difficulty 4" in guard["message"]


# --------------------------------------------------------------------------- the operator on kmock
def _status(cluster) -> dict:
    return (cluster.obj("pruningjobs", NAME) or {}).get("status") or {}


async def _evaluate(cluster, wait, stem: str, results: dict) -> None:
    await wait(lambda: cluster.obj("deployments", f"{stem}-sampler-pruned"), what=f"{stem} pruned sampler")
    await cluster.deployment_ready(f"{stem}-sampler-pruned")
    await wait(lambda: cluster.obj("jobs", f"{stem}-evaluate"), what=f"{stem} eval job")
    await cluster.evaluation_done(stem, results)


async def _to_training(cluster, wait, stem: str) -> None:
    await wait(lambda: cluster.obj("deployments", f"{stem}-sampler-reference"), what=f"{stem} reference sampler")
    await cluster.deployment_ready(f"{stem}-sampler-reference")
    await wait(lambda: cluster.obj("jobs", f"{stem}-sample"), what=f"{stem} sampling job")
    await cluster.job_done(f"{stem}-sample")
    await wait(lambda: cluster.train_obj(stem), what=f"{stem} training object")


async def _round_one(cluster, wait, make_job) -> None:
    await cluster.create("pruningjobs", make_job(NAME, rounds={"count": 2, "minLengthGain": 0.05}))
    await _to_training(cluster, wait, NAME)
    await cluster.training(NAME, "Succeeded")
    await _evaluate(cluster, wait, NAME, ROUND1)
    await wait(lambda: _status(cluster).get("round") == 2, what="round 2")


@pytest.mark.parametrize("training_backend", ["trainjob", "pytorchjob", "job"])
async def test_two_rounds_resume_round_two_after_a_restart(cluster, run_operator, wait, make_job):
    stem = f"{NAME}-r2"
    async with run_operator():
        await _round_one(cluster, wait, make_job)
        await _to_training(cluster, wait, stem)
        st = _status(cluster)
        assert st["phase"] == "Training" and [r["round"] for r in st["rounds"]] == [1]
        assert st["rounds"][0]["accepted"] and st["rounds"][0]["lengthGain"] == pytest.approx(0.4)
        ref = cluster.obj("deployments", f"{stem}-sampler-reference")["spec"]["template"]["spec"]
        assert ref["initContainers"][0]["command"][2] == f"{S3}/train/model"  # round 1's model
        cmd = cluster.obj("jobs", f"{stem}-sample")["spec"]["template"]["spec"]["containers"][0]["command"]
        assert cmd[-2:] == ["--round", "2"]
        assert cluster.obj("deployments", f"{NAME}-sampler-pruned")["spec"]["replicas"] == 0
    kinds = ("deployments", "services", "jobs", "configmaps", cluster.train_kind)
    before = {k: set(cluster.names(k)) for k in kinds}
    async with run_operator():  # a restarted operator resumes in round 2
        await cluster.training(stem, "Succeeded")
        await _evaluate(cluster, wait, stem, ROUND2)
        await wait(lambda: _status(cluster).get("phase") == "Succeeded", what="Succeeded")
    new = {n for k in kinds for n in set(cluster.names(k)) - before[k]}
    assert new == {f"{stem}-sampler-pruned", f"{stem}-evaluate"}  # round 1 is not redone
    st = _status(cluster)
    assert st["round"] == 2 and st["resultRound"] == 2 and [r["accepted"] for r in st["rounds"]] == [True, True]
    assert st["rounds"][1]["referenceMeanLength"] == 1200.0 and st["rounds"][1]["prunedMeanLength"] == 900.0
    assert st["artifacts"]["model"] == f"{S3}/rounds/2/train/model/"
    assert st["summary"]["prunedLength"] == 900.0
    assert cluster.names("jobs").count(f"{NAME}-sample") == 1


async def test_a_round_two_guard_failure_publishes_round_one(cluster, run_operator, wait, make_job):
    stem = f"{NAME}-r2"
    async with run_operator():
        await _round_one(cluster, wait, make_job)
        await _to_training(cluster, wait, stem)
        await cluster.training(stem, "Succeeded")
        await _evaluate(cluster, wait, stem, ROUND2_WORSE)
        await wait(lambda: _status(cluster).get("phase") == "Succeeded", what="Succeeded")
    st = _status(cluster)
    assert st["resultRound"] == 1 and [r["accepted"] for r in st["rounds"]] == [True, False]
    assert st["artifacts"]["model"] == f"{S3}/train/model/"
    assert st["artifacts"]["rejectedModel"] == f"{S3}/rounds/2/train/model/"
    assert st["results"]["accepted"] is True and st["summary"]["prunedLength"] == 1200.0
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["AccuracyGuardFailed"]["status"] == "True" and "difficulty 4" in conds["AccuracyGuardFailed"]["message"]
    assert conds["Ready"]["status"] == "True" and "round 1" in conds["Ready"]["message"]
