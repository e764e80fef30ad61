"""Fixtures for the reliability tests (issue #6). ``s3_server`` and ``tiny_model_dir`` come
from ``tests/conftest.py``; everything here is local to this folder."""

from __future__ import annotations

import socket
import sys
import uuid
from pathlib import Path

import pytest

from o1pruner.spec import dump_job, parse_job
from o1pruner.storage import Manifest, open_storage

RELIABILITY_BUCKET = "reliability"
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
# helper modules of this folder (rel_*.py) are imported by name from the tests
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def reliability_bucket(s3_server: str) -> str:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    if RELIABILITY_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=RELIABILITY_BUCKET)
    return RELIABILITY_BUCKET


def job_dict(model_dir: str, uri: str, endpoint: str | None, name: str = "rel", **overrides) -> dict:
    """A small PruningJob on the tiny model and the built-in generator; ``overrides`` are
    merged into ``spec.training`` / ``spec.sampling`` (keys ``training=``, ``sampling=``)."""
    storage = {"uri": uri} | ({"endpointUrl": endpoint} if endpoint else {})
    spec = {
        "model": {"source": model_dir},
        "datasets": {
            "train": {"name": "train", "source": "builtin:arithmetic", "generator": {"count": 4, "seed": 1}},
            "eval": [{"name": "held-out", "source": "builtin:arithmetic", "generator": {"count": 2, "seed": 2}}],
        },
        "sampling": {"k": 4, "maxTokens": 16, "backend": "transformers", "samplesPerProblem": 2}
        | overrides.get("sampling", {}),
        "training": {
            "learningRate": 1e-3, "epochs": 2, "batchSize": 2, "microBatchSize": 2, "maxLength": 160,
            "checkpointEverySteps": 2, "keepCheckpoints": 2, "warmupRatio": 0.0, "lrScheduler": "cosine",
            "seed": 7,
        }
        | overrides.get("training", {}),
        "evaluation": {"maxTokens": 8},
        "storage": storage,
        "metrics": {"port": free_port()},
    }
    return {"apiVersion": "o1pruner.dev/v1alpha1", "kind": "PruningJob", "metadata": {"name": name}, "spec": spec}


def fake_reference_samples(problems, k: int) -> list[dict]:
    """Graded reference samples of varied lengths (what ``o1pruner sample`` would have written)."""
    records = []
    for pi, p in enumerate(problems):
        for i in range(k):
            words = 3 + ((pi * 7 + i * 5) % 23)
            correct = (pi + i) % 3 != 0
            answer = p.answer if correct else str(int(p.answer) + 1)
            text = " ".join(["step"] * words) + f" so the answer is \\boxed{{{answer}}}."
            records.append({
                "dataset": "train", "problem_id": p.id, "sample_index": i, "difficulty": p.difficulty,
                "answer": p.answer, "text": text, "length": words + 8, "finish_reason": "stop",
                "extracted": answer, "correct": correct,
            })
    return records


def seed_sample_phase(job) -> None:
    """Write reference samples + stats and mark the ``sample`` phase done, so ``train`` can run."""
    from o1pruner.data import load_dataset
    from o1pruner.stats import reference_stats

    store = open_storage(job.spec.storage)
    problems = load_dataset(job.spec.datasets.train).problems
    records = fake_reference_samples(problems, job.spec.sampling.k)
    store.write_jsonl("reference/samples.jsonl", records)
    store.write_jsonl("reference/stats.jsonl", list(reference_stats(records).values()))
    Manifest(store).mark_done("sample", {"samples_total": len(records), "problems": len(problems)})


@pytest.fixture
def make_train_job(s3_server, reliability_bucket, tiny_model_dir, tmp_path):
    """``make_train_job(name) -> (job, yaml_path)``: a job in a fresh S3 prefix with the
    sample phase already done."""

    def make(name: str = "rel", **overrides):
        prefix = f"{name}-{uuid.uuid4().hex[:8]}"
        job = parse_job(job_dict(str(tiny_model_dir), f"s3://{reliability_bucket}/{prefix}", s3_server, name, **overrides))
        seed_sample_phase(job)
        path = tmp_path / f"{prefix}.yaml"
        path.write_text(dump_job(job))
        return job, path

    return make


# --------------------------------------------------------------------------- operator tier
@pytest.fixture()
def kmock_options():
    from rel_cluster import Emulator

    return {"cls": Emulator}


@pytest.fixture()
async def cluster(kmock):
    """The kmock emulator with the resources the operator uses (see rel_cluster.py)."""
    from rel_cluster import install

    return install(kmock)
