"""Storage: the same tests against a local directory and S3 (moto server over HTTP)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from o1pruner.spec import StorageSpec
from o1pruner.storage import (
    COMPLETE_MARKER,
    LocalStorage,
    Manifest,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    open_storage,
    read_uri,
)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return open_storage(StorageSpec(uri=str(tmp_path / "store")))
    spec = request.getfixturevalue("s3_storage_spec")
    return open_storage(spec, max_attempts=2)


@pytest.fixture
def no_backoff(monkeypatch):
    """Make botocore's retry back-off instant so retry tests stay fast."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


@contextlib.contextmanager
def crashing_writes(storage: Storage, monkeypatch) -> Iterator[None]:
    """Make the commit step of a write fail, as if the process died there.

    Local: ``os.replace`` (after the temp file is fully written). S3: the PUT request.
    """
    if isinstance(storage, LocalStorage):
        def boom(*args, **kwargs):
            raise KeyboardInterrupt("simulated crash before rename")

        with monkeypatch.context() as mp:
            mp.setattr(os, "replace", boom)
            yield
    else:
        def fail(**kwargs):
            raise KeyboardInterrupt("simulated crash mid-upload")

        events = storage.client.meta.events
        events.register("before-send.s3.PutObject", fail, unique_id="crash")
        try:
            yield
        finally:
            events.unregister("before-send.s3.PutObject", unique_id="crash")


def _response(status: int, code: str):
    from botocore.awsrequest import AWSResponse

    class Raw:
        def __init__(self, body: bytes):
            self.body = body

        def stream(self, **kwargs):
            yield self.body

    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return AWSResponse("http://injected", status, {"Content-Type": "application/xml"}, Raw(body))


# --------------------------------------------------------------------------- basic operations


def test_roundtrip_all_formats(storage):
    storage.write_bytes("a/b.bin", b"\x00\x01")
    storage.write_text("t.txt", "héllo")
    storage.write_json("cfg/x.json", {"k": [1, 2], "u": "é"})
    storage.write_jsonl("r/rows.jsonl", [{"i": 1}, {"i": 2}])
    storage.write_jsonl("r/empty.jsonl", [])
    assert storage.read_bytes("a/b.bin") == b"\x00\x01"
    assert storage.read_text("t.txt") == "héllo"
    assert storage.read_json("cfg/x.json") == {"k": [1, 2], "u": "é"}
    assert storage.read_jsonl("r/rows.jsonl") == [{"i": 1}, {"i": 2}]
    assert storage.read_jsonl("r/empty.jsonl") == []
    assert storage.exists("a/b.bin") and not storage.exists("a/nope") and not storage.exists("a")
    storage.write_text("t.txt", "v2")
    assert storage.read_text("t.txt") == "v2"


def test_missing_object_raises_not_found(storage):
    with pytest.raises(ObjectNotFound) as info:
        storage.read_bytes("missing/key.json")
    assert "missing/key.json" in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, StorageError)


def test_keys_are_normalised_and_confined(storage):
    storage.write_text("a//b/./c.txt", "x")
    assert storage.read_text("a/b/c.txt") == "x"
    assert storage.uri("a/b/c.txt").endswith("a/b/c.txt")
    for bad in ("../escape.txt", "a/../../b", ""):
        with pytest.raises(ValueError):
            storage.write_text(bad, "x")


def test_list_and_delete_prefix(storage):
    for key in ["x/1", "x/2", "x/sub/3", "x10/4", "y/5", "top"]:
        storage.write_text(key, key)
    assert storage.list("x") == ["x/1", "x/2", "x/sub/3"]  # a folder, not a string prefix
    assert storage.list("x/") == storage.list("x")
    assert storage.list("") == ["top", "x/1", "x/2", "x/sub/3", "x10/4", "y/5"]
    assert storage.list("nothing") == [] and storage.list("top") == []
    assert storage.list_dirs("") == ["x", "x10", "y"]
    assert storage.list_dirs("x") == ["sub"]
    assert storage.delete_prefix("x") == 3
    assert storage.list("") == ["top", "x10/4", "y/5"]
    assert storage.delete_prefix("absent") == 0
    storage.delete("top")
    storage.delete("top")  # deleting a missing object is fine
    assert storage.delete_prefix("") == 2 and storage.list("") == []


def test_many_objects_paginate(storage, monkeypatch):
    if isinstance(storage, S3Storage):
        monkeypatch.setattr(storage, "page_size", 7)  # several LIST pages and DeleteObjects batches
    keys = [f"many/{i:03d}" for i in range(30)]
    for k in keys:
        storage.write_bytes(k, b"")
    storage.write_bytes("many/d1/x", b"")
    storage.write_bytes("many/d2/x", b"")
    assert storage.list("many") == sorted([*keys, "many/d1/x", "many/d2/x"])
    assert storage.list_dirs("many") == ["d1", "d2"]
    assert storage.delete_prefix("many") == len(keys) + 2
    assert storage.list("many") == []


# --------------------------------------------------------------------------- atomicity


def test_crash_mid_write_keeps_old_value(storage, monkeypatch):
    storage.write_json("manifest-like.json", {"v": 1})
    with crashing_writes(storage, monkeypatch), pytest.raises(KeyboardInterrupt):
        storage.write_json("manifest-like.json", {"v": 2, "big": "x" * 100_000})
    assert storage.read_json("manifest-like.json") == {"v": 1}
    assert storage.list("") == ["manifest-like.json"]  # no temp file or partial object visible


def test_crash_on_first_write_leaves_nothing(storage, monkeypatch):
    with crashing_writes(storage, monkeypatch), pytest.raises(KeyboardInterrupt):
        storage.write_bytes("new/object.bin", b"x" * 10_000)
    assert not storage.exists("new/object.bin")
    assert storage.list("") == []


def test_local_temp_files_are_invisible(tmp_path):
    store = LocalStorage(tmp_path)
    store.write_text("d/real.txt", "ok")
    (tmp_path / "d" / ".o1tmp-real.txt.abc").write_text("half")  # what a killed writer leaves
    assert store.list("d") == ["d/real.txt"]
    assert store.read_text("d/real.txt") == "ok"


def _make_local_dir(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(os.urandom(2048))
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "opt.pt").write_bytes(b"optimizer")
    return root


def test_upload_download_dir_with_marker(storage, tmp_path):
    src = _make_local_dir(tmp_path / "src")
    keys = storage.upload_dir(src, "train/checkpoints/step-00000010")
    assert keys == [
        "train/checkpoints/step-00000010/config.json",
        "train/checkpoints/step-00000010/model.safetensors",
        "train/checkpoints/step-00000010/sub/opt.pt",
    ]
    assert storage.is_dir_complete("train/checkpoints/step-00000010")
    assert storage.read_json(f"train/checkpoints/step-00000010/{COMPLETE_MARKER}")["files"] == 3
    assert storage.list_dirs("train/checkpoints") == ["step-00000010"]

    dest = tmp_path / "dest"
    storage.download_dir("train/checkpoints/step-00000010", dest, require_complete=True)
    for rel in ("model.safetensors", "config.json", "sub/opt.pt"):
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    assert (dest / COMPLETE_MARKER).exists()
    with pytest.raises(ObjectNotFound):
        storage.download_dir("train/checkpoints/none", tmp_path / "x")


def test_interrupted_upload_is_not_complete(storage, tmp_path, monkeypatch):
    src = _make_local_dir(tmp_path / "src")
    prefix = "train/checkpoints/step-00000020"
    storage.upload_dir(src, prefix)
    assert storage.is_dir_complete(prefix)

    calls = {"n": 0}
    real = type(storage)._upload_file

    def flaky(self, path, key):
        calls["n"] += 1
        if calls["n"] == 2:
            raise StorageError("simulated crash mid-upload", uri=key)
        return real(self, path, key)

    monkeypatch.setattr(type(storage), "_upload_file", flaky)
    with pytest.raises(StorageError):
        storage.upload_dir(src, prefix)  # re-upload dies halfway: the old marker is gone first
    assert not storage.is_dir_complete(prefix)
    with pytest.raises(StorageError, match="incomplete"):
        storage.download_dir(prefix, tmp_path / "dest", require_complete=True)

    monkeypatch.setattr(type(storage), "_upload_file", real)
    storage.upload_dir(src, prefix, complete=False)
    assert not storage.is_dir_complete(prefix)
    storage.commit_dir(prefix)
    assert storage.is_dir_complete(prefix)


# --------------------------------------------------------------------------- manifest


def test_manifest(storage):
    m = storage.manifest()
    assert m.phases() == {} and not m.is_done("sample") and m.outputs("sample") == {}
    m.mark_done("sample", {"samples": storage.uri("reference/samples.jsonl"), "n": 3})
    other = Manifest(storage)  # a fresh reader (another process) sees the update
    assert other.is_done("sample") and other.outputs("sample")["n"] == 3
    other.mark_done("train", {"model": "train/model"})
    assert m.is_done("train") and m.is_done("sample")
    data = storage.read_json("manifest.json")
    assert data["version"] == 1 and data["created_at"] <= data["updated_at"]
    assert data["phases"]["sample"]["done_at"] <= data["phases"]["train"]["done_at"]
    m.reset("sample")
    assert not m.is_done("sample") and m.is_done("train")
    m.reset("never-ran")
    with pytest.raises(TypeError):
        m.mark_done("bad", {"x": object()})
    assert m.data()["phases"].keys() == {"train"}


def test_manifest_survives_crashed_update(storage, monkeypatch):
    m = storage.manifest()
    m.mark_done("sample", {"n": 1})
    with crashing_writes(storage, monkeypatch), pytest.raises(KeyboardInterrupt):
        m.mark_done("train", {"n": 2})
    assert m.is_done("sample") and not m.is_done("train")


def test_corrupt_manifest_is_reported(storage):
    storage.write_json("manifest.json", ["not", "a", "manifest"])
    with pytest.raises(StorageError, match="not a manifest"):
        storage.manifest().is_done("x")


# --------------------------------------------------------------------------- S3 specifics


def test_s3_transient_errors_are_retried(s3_storage_spec, no_backoff):
    store = open_storage(s3_storage_spec, max_attempts=4)
    assert isinstance(store, S3Storage)
    attempts = []

    def flaky(**kwargs):
        attempts.append(1)
        if len(attempts) <= 2:
            return _response(503, "SlowDown")
        return None  # let the real request through

    store.client.meta.events.register("before-send.s3.PutObject", flaky)
    store.write_text("retried.txt", "ok")
    assert len(attempts) == 3
    assert store.read_text("retried.txt") == "ok"


def test_s3_persistent_error_raises_storage_error(s3_storage_spec, no_backoff):
    store = open_storage(s3_storage_spec, max_attempts=3)
    attempts = []

    def always(**kwargs):
        attempts.append(1)
        return _response(503, "SlowDown")

    store.client.meta.events.register("before-send.s3.GetObject", always)
    with pytest.raises(StorageError) as info:
        store.read_text("reference/stats.jsonl")
    err = info.value
    assert len(attempts) == 3
    assert err.code == "SlowDown" and not isinstance(err, ObjectNotFound)
    assert f"{s3_storage_spec.uri}/reference/stats.jsonl" in str(err) and "SlowDown" in str(err)
    assert "testing" not in str(err)  # no credentials in the message


def test_s3_missing_bucket_and_bad_credentials(s3_server):
    store = open_storage(StorageSpec(uri="s3://no-such-bucket/p", endpoint_url=s3_server), max_attempts=1)
    with pytest.raises(StorageError) as info:
        store.write_text("k.txt", "x")
    assert info.value.code == "NoSuchBucket" and "s3://no-such-bucket/p/k.txt" in str(info.value)


def test_s3_no_credentials(s3_storage_spec, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_storage(s3_storage_spec, env={}, max_attempts=1)
    with pytest.raises(StorageError) as info:
        store.read_text("x")
    assert info.value.code == "NoCredentials"


def test_open_storage_env_credentials_and_endpoint(s3_storage_spec, s3_server, monkeypatch):
    # credentials and endpoint come from the env mapping given, not only os.environ
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": s3_server}
    spec = StorageSpec(uri=s3_storage_spec.uri)  # no endpointUrl in the spec
    store = open_storage(spec, env=env)
    store.write_text("via-env.txt", "ok")
    assert store.read_text("via-env.txt") == "ok"
    assert repr(store) == f"S3Storage('{s3_storage_spec.uri}')"


def test_read_uri_s3_and_local(s3_storage_spec, s3_server, tmp_path):
    store = open_storage(s3_storage_spec)
    store.write_text("data/ds.jsonl", '{"problem": "q", "answer": "1"}\n')
    uri = store.uri("data/ds.jsonl")
    assert read_uri(uri, endpoint_url=s3_server) == b'{"problem": "q", "answer": "1"}\n'
    assert read_uri(uri, env={**os.environ, "AWS_ENDPOINT_URL": s3_server}).startswith(b"{")
    with pytest.raises(ObjectNotFound):
        read_uri(store.uri("data/none.jsonl"), endpoint_url=s3_server)
    local = tmp_path / "f.jsonl"
    local.write_bytes(b"abc")
    assert read_uri(str(local)) == b"abc" and read_uri(f"file://{local}") == b"abc"
    with pytest.raises(ObjectNotFound):
        read_uri(str(tmp_path / "none"))


def test_local_storage_file_uri(tmp_path):
    store = open_storage(StorageSpec(uri=f"file://{tmp_path}/run"))
    assert isinstance(store, LocalStorage) and store.root == (tmp_path / "run").resolve()
    store.write_json("manifest.json", {"phases": {}})
    assert json.loads((tmp_path / "run" / "manifest.json").read_text()) == {"phases": {}}
