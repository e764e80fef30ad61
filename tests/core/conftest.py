"""Fixtures for the core library tests. ``s3_server`` comes from ``tests/conftest.py``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from o1pruner.spec import StorageSpec

S3_TEST_BUCKET = "o1pruner-test"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def s3_bucket(s3_server: str) -> str:
    """The test bucket on the moto server (created once)."""
    import boto3

    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=S3_TEST_BUCKET)
    return S3_TEST_BUCKET


@pytest.fixture
def s3_storage_spec(s3_server: str, s3_bucket: str) -> StorageSpec:
    """A StorageSpec for a fresh, empty prefix in the test bucket on the moto server."""
    return StorageSpec(uri=f"s3://{s3_bucket}/t-{uuid.uuid4().hex[:12]}", endpoint_url=s3_server)


@pytest.fixture
def sample_dataset_path() -> Path:
    """The committed GSM8K-style example dataset (20 good lines, 2 malformed)."""
    return REPO_ROOT / "examples" / "data" / "gsm8k-style-sample.jsonl"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh ``O1PRUNER_CACHE`` (embedded models are built there once per test module)."""
    import os

    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("O1PRUNER_CACHE")
    os.environ["O1PRUNER_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("O1PRUNER_CACHE", None)
    else:
        os.environ["O1PRUNER_CACHE"] = old
