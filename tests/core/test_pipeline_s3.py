"""The whole pipeline on a tiny random model through S3 (moto in server mode over HTTP).

Sample → stats → train → evaluate base and pruned → report, every artefact in S3; then the
resume guarantees: an interrupted sampling run resumes without resampling finished problems,
and a rerun of a finished job does no work.
"""

import json

import boto3
import pytest

from o1pruner import pipeline
from o1pruner.cli import main as cli_main
from o1pruner.sampling.base import Sampler
from o1pruner.sampling.collect import read_shards
from o1pruner.spec import dump_job, parse_job
from o1pruner.storage import Manifest, open_storage


def make_job(model_dir: str, uri: str, endpoint: str, name: str = "tiny") -> dict:
    return {
        "apiVersion": "o1pruner.dev/v1alpha1",
        "kind": "PruningJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": model_dir},
            "datasets": {
                "train": {"name": "train", "source": "builtin:arithmetic", "generator": {"count": 6, "seed": 1}},
                "eval": [{"name": "held-out", "source": "builtin:arithmetic", "generator": {"count": 4, "seed": 2}}],
            },
            "sampling": {"k": 3, "maxTokens": 10, "temperature": 1.0, "topP": 1.0, "backend": "transformers", "batchSize": 4},
            "training": {
                "learningRate": 1e-3, "epochs": 2, "batchSize": 4, "microBatchSize": 2, "maxLength": 96,
                "checkpointEverySteps": 2, "warmupRatio": 0.0,
            },
            "evaluation": {"maxTokens": 8},
            "storage": {"uri": uri, "endpointUrl": endpoint},
        },
    }


@pytest.fixture
def s3_job(s3_server, tiny_model_dir, tmp_path):
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    if "runs" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket="runs")
    prefix = tmp_path.name.replace("_", "-")
    job = parse_job(make_job(str(tiny_model_dir), f"s3://runs/{prefix}", s3_server))
    path = tmp_path / "job.yaml"
    path.write_text(dump_job(job))
    return job, path


def test_full_pipeline_through_s3(s3_job, s3_server):
    job, path = s3_job
    assert cli_main(["run", str(path)]) == 0

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    root = job.spec.storage.uri.removeprefix("s3://runs/")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="runs", Prefix=f"{root}/")["Contents"]}
    for key in ["reference/samples.jsonl", "reference/stats.jsonl", "train/model/config.json",
                "train/model/model.safetensors", "eval/base/summary.json", "eval/pruned/summary.json",
                "report/report.json", "report/report.png", "manifest.json"]:
        assert f"{root}/{key}" in keys, key
    assert any(k.startswith(f"{root}/train/checkpoints/step-") for k in keys)

    store = open_storage(job.spec.storage)
    samples = store.read_jsonl("reference/samples.jsonl")
    assert len(samples) == 6 * 3  # K samples per problem
    assert all(1 <= s["length"] <= 10 for s in samples)
    stats = store.read_jsonl("reference/stats.jsonl")
    assert len(stats) == 6 and all(s["k"] == 3 for s in stats)

    report = json.loads(s3.get_object(Bucket="runs", Key=f"{root}/report/report.json")["Body"].read())
    row = report["results"]["datasets"]["held-out"]
    assert set(row) >= {"baseAccuracy", "prunedAccuracy", "baseLength", "prunedLength", "lengthReduction", "aes"}
    assert report["tokens"]["base"] > 0
    m = Manifest(store)
    assert all(m.is_done(p) for p in ["sample", "train", "evaluate-base", "evaluate-pruned", "report"])
    trained = m.outputs("train")
    assert trained["examples"] == 6 * job.spec.sampling.samples_per_problem
    _, examples = pipeline.training_examples(pipeline.open_context(job, with_metrics=False))
    assert trained["correct_examples"] == sum(e["correct"] for e in examples)


class _FailAfter(Sampler):
    """Wraps a sampler and dies (like a killed sampler pod) after ``n`` problems."""

    def __init__(self, inner: Sampler, n: int):
        self.inner, self.n, self.seen = inner, n, []

    def generate(self, prompts, params):
        for i, item in enumerate(self.inner.generate(prompts, params)):
            if i >= self.n:
                raise ConnectionError("sampler pod killed")
            self.seen.append(item[0])
            yield item


def test_interrupted_sampling_resumes_without_resampling(s3_job):
    job, _ = s3_job
    job.spec.sampling.batch_size = 1  # one problem per generate call, so shards are flushed per problem
    ctx = pipeline.open_context(job, with_metrics=False)
    inner = pipeline.make_sampler(ctx, str(job.spec.model.source))

    flaky = _FailAfter(inner, 3)
    with pytest.raises(ConnectionError):
        pipeline.phase_sample(ctx, sampler=flaky, flush_every=1)
    assert not ctx.manifest.is_done("sample")
    done_before = {r["problem_id"] for r in read_shards(ctx.store, "reference")}
    assert done_before == set(flaky.seen) and len(done_before) == 3

    class _Recording(Sampler):
        def __init__(self):
            self.asked = []

        def generate(self, prompts, params):
            self.asked.extend(k for k, _ in prompts)
            yield from inner.generate(prompts, params)

    rec = _Recording()
    out = pipeline.phase_sample(ctx, sampler=rec, flush_every=1)
    assert set(rec.asked).isdisjoint(done_before) and len(rec.asked) == 3
    assert out["resumed_problems"] == 3 and out["samples_total"] == 18

    # a finished phase is skipped entirely on rerun
    class _Never(Sampler):
        def generate(self, prompts, params):
            raise AssertionError("finished work must not be resampled")

    assert pipeline.phase_sample(ctx, sampler=_Never())["samples_total"] == 18
