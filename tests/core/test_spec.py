"""The spec model: defaults from the paper, YAML loading, errors that name the field."""

from pathlib import Path

import pytest

from o1pruner.spec import PruningJobSpec, SpecError, dump_job, load_job, parse_job, parse_spec

ROOT = Path(__file__).resolve().parents[2]


def minimal() -> dict:
    return {
        "model": {"source": "embedded:smollm2-135m-instruct"},
        "datasets": {
            "train": {"name": "train", "source": "builtin:arithmetic"},
            "eval": [{"name": "held-out", "source": "builtin:arithmetic", "generator": {"seed": 7}}],
        },
        "storage": {"uri": "s3://o1pruner-runs/demo"},
    }


def test_defaults_follow_the_paper():
    s = parse_spec(minimal())
    assert (s.sampling.k, s.sampling.temperature, s.sampling.top_p) == (16, 0.5, 0.8)
    assert (s.training.lam, s.training.clip_epsilon) == (2.0, 0.2)
    assert (s.training.reward_clip_min, s.training.reward_clip_max) == (-2.0, 4.0)
    assert s.training.learning_rate == 2e-7 and s.training.lr_scheduler == "cosine"
    assert s.training.max_grad_norm == 10.0 and s.sampling.samples_per_problem == 2
    assert (s.evaluation.aes.alpha, s.evaluation.aes.beta, s.evaluation.aes.gamma) == (1.0, 3.0, 5.0)


def test_camel_case_wire_format_and_lambda_alias():
    spec = minimal() | {"training": {"lambda": 5, "clipEpsilon": 0.1, "microBatchSize": 4, "batchSize": 8}}
    s = parse_spec(spec)
    assert s.training.lam == 5 and s.training.clip_epsilon == 0.1
    wire = s.to_wire()
    assert wire["training"]["lambda"] == 5 and "clipEpsilon" in wire["training"]


@pytest.mark.parametrize(
    "patch, path",
    [
        ({"sampling": {"k": 0}}, "spec.sampling.k"),
        ({"training": {"lambda": -1}}, "spec.training.lambda"),
        ({"training": {"learningRate": "fast"}}, "spec.training.learningRate"),
        ({"training": {"bogus": 1}}, "spec.training.bogus"),
        ({"model": {"source": "ftp://x/y"}}, "spec.model.source"),
        ({"storage": {"uri": "s3://Bad_Bucket/x"}}, "spec.storage.uri"),
        ({"storage": {"uri": "s3://b-ucket/x", "secretAccessKey": "hunter2"}}, "spec.storage"),
        ({"sampling": {"k": 2, "samplesPerProblem": 4}}, "spec.sampling"),
        ({"training": {"batchSize": 10, "microBatchSize": 4}}, "spec.training"),
        ({"datasets": {"train": {"name": "t", "source": "builtin:nope"}, "eval": [{"name": "e", "source": "x.jsonl"}]}}, "spec.datasets.train.source"),
        ({"datasets": {"train": {"name": "t", "source": "a.jsonl"}, "eval": []}}, "spec.datasets.eval"),
        ({"sampling": {"sampler": {"resources": {"limits": {"memory": "lots"}}}}}, "spec.sampling.sampler.resources.limits"),
        ({"prompt": {"template": "no placeholder"}}, "spec.prompt.template"),
    ],
)
def test_bad_values_name_the_field(patch, path):
    with pytest.raises(SpecError) as exc:
        parse_spec(minimal() | patch)
    assert any(p == path for p, _ in exc.value.errors), exc.value.errors
    assert path in str(exc.value)


def test_secret_value_never_echoed():
    with pytest.raises(SpecError) as exc:
        parse_spec(minimal() | {"storage": {"uri": "s3://b-ucket/x", "secretAccessKey": "hunter2"}})
    assert "hunter2" not in str(exc.value)


def test_missing_required_fields():
    with pytest.raises(SpecError) as exc:
        parse_spec({"model": {"source": "a/b"}})
    paths = {p for p, _ in exc.value.errors}
    assert {"spec.datasets", "spec.storage"} <= paths


def test_whole_object_and_round_trip(tmp_path):
    job = parse_job({"apiVersion": "o1pruner.dev/v1alpha1", "kind": "PruningJob", "metadata": {"name": "demo"}, "spec": minimal()})
    f = tmp_path / "job.yaml"
    f.write_text(dump_job(job))
    again = load_job(f)
    assert again.spec == job.spec and again.metadata.name == "demo"
    with pytest.raises(SpecError, match="kind"):
        parse_job({"apiVersion": "o1pruner.dev/v1alpha1", "kind": "Other", "metadata": {"name": "x"}, "spec": minimal()})
    f.write_text("spec: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_job(f)


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate(example):
    assert isinstance(load_job(example).spec, PruningJobSpec)


@pytest.mark.parametrize("text, value", [("8", 8), (8, 8), ("500m", 0.5), ("16Gi", 16 * 1024**3), ("1e3", 1000),
                                         ("2k", 2000), ("1.5M", 1_500_000), ("0", 0)])
def test_parse_quantity(text, value):
    from o1pruner.spec import parse_quantity

    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("resources, path, words", [
    ({"limits": {"nvidia.com/gpu": "0.5"}}, "spec.sampling.sampler.resources.limits", "whole number of GPUs"),
    ({"limits": {"nvidia.com/gpu": -1}}, "spec.sampling.sampler.resources.limits", "negative"),
    ({"requests": {"cpu": "-2"}}, "spec.sampling.sampler.resources.requests", "negative"),
    ({"requests": {"memory": "64Gi"}, "limits": {"memory": "32Gi"}}, "spec.sampling.sampler.resources",
     "requests.memory 64Gi exceeds limits.memory 32Gi"),
])
def test_resources_are_checked_like_the_api_server_checks_pods(resources, path, words):
    job = {"model": {"source": "Qwen/QwQ-32B-Preview"},
           "datasets": {"train": {"name": "t", "source": "builtin:arithmetic"},
                        "eval": [{"name": "e", "source": "builtin:arithmetic"}]},
           "storage": {"uri": "/tmp/x"}, "sampling": {"sampler": {"resources": resources}}}
    with pytest.raises(SpecError) as err:
        parse_spec(job)
    ((where, msg),) = err.value.errors
    assert where == path and words in msg, err.value.errors
    ok = {**job, "sampling": {"sampler": {"resources": {"requests": {"memory": "16Gi", "cpu": "500m"},
                                                         "limits": {"memory": "16Gi", "nvidia.com/gpu": 2}}}}}
    assert parse_spec(ok).sampling.sampler.resources.gpus() == 2
