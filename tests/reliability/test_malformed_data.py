"""Item 1 (data part) — malformed dataset lines and model outputs are counted and reported in
the manifest and the report; they never crash a run."""

from __future__ import annotations

import json

import pytest
from conftest import job_dict
from rel_fakes import FakeVLLM

from o1pruner import pipeline
from o1pruner.data import parse_jsonl
from o1pruner.sampling.openai import OpenAISampler
from o1pruner.spec import parse_job

GOOD = [{"id": f"g{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 7)]
#: (line, why it is bad) — every kind the loader must survive
BAD = [
    ("{not json", "not JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    ('"just a string"', "not a JSON object"),
    ('{"problem": "What is 1 + 1?"}', "missing or empty 'answer'"),
    ('{"answer": "2"}', "missing or empty 'problem'"),
    ('{"problem": "   ", "answer": "2"}', "missing or empty 'problem'"),
    ('{"problem": "x?", "solution": "we add and get two"}', "no final answer in 'solution'"),
    ('{"id": "g1", "problem": "dup?", "answer": "1"}', "duplicate id 'g1'"),
    ('{"problem": "x?", "answer": null}', "missing or empty 'answer'"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ('{"problem": "x?", "answer": "2"', "not JSON"),
    ("\x00\x01\x02 binary \u00ff", "not JSON"),
]


def _jsonl() -> str:
    lines = [json.dumps(g) for g in GOOD]
    for i, (line, _) in enumerate(BAD):
        lines.insert(2 * i % len(lines), line)
    return "\n".join(lines) + "\n\n"


def test_every_kind_of_bad_line_is_counted_with_its_reason():
    result = parse_jsonl(_jsonl(), "d")
    assert [p.id for p in result.problems] == [g["id"] for g in GOOD]
    assert len(result.bad_lines) == len(BAD)
    reasons = [why for _, why in result.bad_lines]
    for _, expected in BAD:
        assert any(expected in r for r in reasons), expected


@pytest.fixture
def ctx(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(_jsonl())
    job = job_dict("/nonexistent-model", str(tmp_path / "store"), None, "malformed", sampling={"k": 2, "backend": "vllm"})
    job["spec"]["datasets"] = {
        "train": {"name": "train", "source": str(data)},
        "eval": [{"name": "held-out", "source": str(data), "limit": 3}],
    }
    return pipeline.open_context(parse_job(job), with_metrics=False)


def test_bad_lines_and_ungradable_outputs_reach_the_manifest_and_the_report(ctx):
    from o1pruner.data import load_dataset

    problems = load_dataset(ctx.spec.datasets.train).problems
    garbage = {problems[0].problem, problems[4].problem}
    server = FakeVLLM({p.problem: p.answer for p in problems},
                      lambda text, attempt: "garbage" if text in garbage else "ok").start()
    sampler = OpenAISampler(server.url, "reference", concurrency=2, timeout=5, max_retries=1, backoff_base=0.01)
    try:
        out = pipeline.phase_sample(ctx, sampler=sampler)
        pipeline.phase_evaluate(ctx, "base", sampler=sampler)
        pipeline.phase_evaluate(ctx, "pruned", sampler=sampler)
        report = pipeline.make_report(ctx)
    finally:
        server.stop()
    k = ctx.spec.sampling.k
    assert out["problems"] == len(GOOD)
    assert out["malformed_lines"] == len(BAD)
    assert out["ungradable_samples"] == 2 * k
    assert ctx.manifest.outputs("sample")["malformed_lines"] == len(BAD)

    quality = report["dataQuality"]
    assert quality["malformedLines"] == {"train": len(BAD), "held-out": len(BAD)}
    # eval: 3 problems (limit), problem 0 answered with garbage, 1 sample each
    assert quality["ungradableOutputs"] == {"reference": 2 * k, "base": 1, "pruned": 1}


def test_a_dataset_with_no_valid_line_fails_the_phase_with_a_clear_error(tmp_path):
    data = tmp_path / "all-bad.jsonl"
    data.write_text("\n".join(line for line, _ in BAD[:5]) + "\n")
    job = job_dict("/nonexistent-model", str(tmp_path / "store"), None, "allbad", sampling={"backend": "vllm"})
    job["spec"]["datasets"]["train"] = {"name": "train", "source": str(data)}
    ctx = pipeline.open_context(parse_job(job), with_metrics=False)
    with pytest.raises(pipeline.PhaseError, match=r"dataset train .* has no valid problems"):
        pipeline.phase_sample(ctx, sampler=object())


def test_a_line_that_is_not_utf8_is_counted_not_fatal(tmp_path):
    from o1pruner.data import load_dataset
    from o1pruner.spec import DatasetSpec

    data = tmp_path / "latin1.jsonl"
    good = "\n".join(json.dumps(g) for g in GOOD).encode()
    data.write_bytes(good + b'\n{"problem": "caf\xe9 costs 3, two cost?", "answer": "6"}\n')
    result = load_dataset(DatasetSpec(name="d", source=str(data)))
    assert len(result.problems) == len(GOOD)
    assert [n for n, _ in result.bad_lines] == [len(GOOD) + 1]
