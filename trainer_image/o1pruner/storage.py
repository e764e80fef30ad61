"""One storage interface over a local directory and S3 (AWS, MinIO, any S3 endpoint).

Every phase reads and writes through :class:`Storage`, with '/'-separated keys relative to
the storage root (``spec.storage.uri``); the layout is in ``docs/architecture.md``.

Atomicity
    * A local write goes to a hidden temp file in the same directory, is fsynced, then
      ``os.replace``-d over the target: a reader sees the old object or the new one, never a
      half-written file (temp files are never listed).
    * An S3 PUT is atomic per object (multipart uploads only appear when completed).
    * A multi-object directory (a checkpoint, a model) is complete only when its
      ``_COMPLETE`` marker exists; :meth:`Storage.upload_dir` removes an old marker first and
      writes the new one LAST, so a crash mid-upload leaves a directory that
      :meth:`Storage.is_dir_complete` reports as incomplete.
    * :class:`Manifest` is one JSON object updated by read-modify-write (single writer per
      job: the phases run one after another).

Credentials
    S3 credentials come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (the cluster
    fills them from the Secret that ``spec.storage.credentialsSecret`` names) or boto3's default
    chain (instance role, IRSA, ``~/.aws``). They are never logged or put in messages.

Errors
    A failure that survives boto3's retries raises :class:`StorageError` naming the URI and
    the S3 error code; a missing object raises :class:`ObjectNotFound` (also a
    ``FileNotFoundError``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .spec import StorageSpec

__all__ = [
    "COMPLETE_MARKER",
    "LocalStorage",
    "Manifest",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageError",
    "make_s3_client",
    "open_storage",
    "read_uri",
    "split_s3_uri",
]


#: Written last into a multi-object directory; its presence means the directory is complete.
COMPLETE_MARKER = "_COMPLETE"
_TMP_PREFIX = ".o1tmp-"


class StorageError(RuntimeError):
    """A storage operation that failed for good. ``uri`` and ``code`` say where and why."""

    def __init__(self, message: str, uri: str = "", code: str | None = None):
        super().__init__(message)
        self.uri = uri
        self.code = code


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object does not exist."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _norm_key(key: str, allow_empty: bool = False) -> str:
    """``a//b/./c/`` → ``a/b/c``; rejects ``..`` and (unless allowed) the empty key."""
    if not isinstance(key, str):
        raise TypeError(f"storage keys are strings, got {type(key).__name__}")
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"storage key {key!r} must not contain '..'")
    if not parts and not allow_empty:
        raise ValueError("empty storage key")
    return "/".join(parts)


def _join(prefix: str, name: str) -> str:
    if not prefix or not name:
        return prefix or name
    return f"{prefix}/{name}"


def _atomic_write_file(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through a temp file in its directory: fsync, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass


class Storage(ABC):
    """Objects under a root, addressed by '/'-separated keys.

    A *prefix* is a folder: ``"a/b"`` and ``"a/b/"`` mean the same and ``""`` is the whole
    storage; ``list("train/checkpoints/step-1")`` never returns keys of ``step-10``.
    """

    # -- primitives each backend implements

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """The full URI (``s3://bucket/...``) or local path of ``key``."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether the object ``key`` exists."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's content; :class:`ObjectNotFound` if it does not exist."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write the object atomically (readers see the old or the new content, never a part)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object (no error if it does not exist)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys under the folder ``prefix``, recursively, sorted."""

    @abstractmethod
    def list_dirs(self, prefix: str = "") -> list[str]:
        """Names of the immediate sub-folders of ``prefix`` (e.g. checkpoint steps), sorted."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder ``prefix``; returns how many were deleted."""

    @abstractmethod
    def _upload_file(self, path: Path, key: str) -> None:
        """Copy a local file to ``key`` (atomically)."""

    @abstractmethod
    def _download_file(self, key: str, path: Path) -> None:
        """Copy ``key`` to a local file (atomically)."""

    # -- conveniences

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, obj: Any) -> None:
        self.write_text(key, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def read_jsonl(self, key: str) -> list[dict[str, Any]]:
        """Records of a JSONL object (blank lines skipped)."""
        return [json.loads(line) for line in self.read_text(key).splitlines() if line.strip()]

    def write_jsonl(self, key: str, records: Iterable[Mapping[str, Any]]) -> None:
        """Write records as one JSONL object, atomically."""
        self.write_text(key, "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records))

    # -- multi-object directories

    def commit_dir(self, prefix: str, info: Mapping[str, Any] | None = None) -> None:
        """Mark the folder ``prefix`` complete (call after every other object is written)."""
        marker = _join(_norm_key(prefix, allow_empty=True), COMPLETE_MARKER)
        self.write_json(marker, {"completed_at": _now(), **(info or {})})

    def is_dir_complete(self, prefix: str) -> bool:
        """Whether ``prefix`` has its ``_COMPLETE`` marker."""
        return self.exists(_join(_norm_key(prefix, allow_empty=True), COMPLETE_MARKER))

    def upload_dir(self, local_dir: str | Path, prefix: str, complete: bool = True) -> list[str]:
        """Copy a local directory tree to ``prefix``; returns the keys written.

        With ``complete`` the old marker is removed first and a new one written last. Objects
        already under ``prefix`` that are not in ``local_dir`` are left alone.
        """
        root = Path(local_dir)
        if not root.is_dir():
            raise StorageError(f"upload_dir: {root} is not a directory", uri=str(root))
        prefix = _norm_key(prefix, allow_empty=True)
        marker = _join(prefix, COMPLETE_MARKER)
        if complete:
            self.delete(marker)
        keys = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if rel == COMPLETE_MARKER or path.name.startswith(_TMP_PREFIX):
                continue
            key = _join(prefix, rel)
            self._upload_file(path, key)
            keys.append(key)
        if complete:
            self.commit_dir(prefix, {"files": len(keys)})
        return keys

    def download_dir(self, prefix: str, local_dir: str | Path, require_complete: bool = False) -> list[Path]:
        """Copy every object under ``prefix`` into ``local_dir``; returns the files written.

        With ``require_complete`` an incomplete directory (no marker) raises :class:`StorageError`.
        """
        prefix = _norm_key(prefix, allow_empty=True)
        if require_complete and not self.is_dir_complete(prefix):
            raise StorageError(f"{self.uri(prefix)} is incomplete (no {COMPLETE_MARKER} marker)", uri=self.uri(prefix))
        keys = self.list(prefix)
        if not keys:
            raise ObjectNotFound(f"nothing under {self.uri(prefix)}", uri=self.uri(prefix), code="NoSuchKey")
        out = []
        dest_root = Path(local_dir)
        for key in keys:
            dest = dest_root / (key[len(prefix) + 1 :] if prefix else key)
            self._download_file(key, dest)
            out.append(dest)
        return out

    def manifest(self) -> Manifest:
        """The job's phase manifest (``manifest.json``) in this storage."""
        return Manifest(self)

    def child(self, prefix: str) -> Storage:
        """The folder ``prefix`` as a storage of its own (``""``: this storage itself)."""
        prefix = _norm_key(prefix, allow_empty=True)
        return SubStorage(self, prefix) if prefix else self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri()!r})"


class SubStorage(Storage):
    """A folder of another storage, addressed with keys relative to the folder."""

    def __init__(self, parent: Storage, prefix: str):
        self.parent = parent
        self.prefix = _norm_key(prefix)

    def _key(self, key: str, allow_empty: bool = False) -> str:
        return _join(self.prefix, _norm_key(key, allow_empty=allow_empty))

    def uri(self, key: str = "") -> str:
        return self.parent.uri(self._key(key, allow_empty=True))

    def exists(self, key: str) -> bool:
        return self.parent.exists(self._key(key))

    def read_bytes(self, key: str) -> bytes:
        return self.parent.read_bytes(self._key(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        self.parent.write_bytes(self._key(key), data)

    def delete(self, key: str) -> None:
        self.parent.delete(self._key(key))

    def list(self, prefix: str = "") -> list[str]:
        return [k[len(self.prefix) + 1:] for k in self.parent.list(self._key(prefix, allow_empty=True))]

    def list_dirs(self, prefix: str = "") -> list[str]:
        return self.parent.list_dirs(self._key(prefix, allow_empty=True))

    def delete_prefix(self, prefix: str) -> int:
        return self.parent.delete_prefix(self._key(prefix, allow_empty=True))

    def _upload_file(self, path: Path, key: str) -> None:
        self.parent._upload_file(path, self._key(key))

    def _download_file(self, key: str, path: Path) -> None:
        self.parent._download_file(self._key(key), path)


class LocalStorage(Storage):
    """Storage in a local directory (created on first write)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str, allow_empty: bool = False) -> Path:
        norm = _norm_key(key, allow_empty=allow_empty)
        return self.root / norm if norm else self.root

    def uri(self, key: str = "") -> str:
        return str(self._path(key, allow_empty=True))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"no object {path}", uri=str(path), code="NoSuchKey") from None
        except OSError as exc:
            raise StorageError(f"read {path}: {exc.strerror}", uri=str(path), code=type(exc).__name__) from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            _atomic_write_file(path, lambda fh: fh.write(data))
        except OSError as exc:
            raise StorageError(f"write {path}: {exc.strerror}", uri=str(path), code=type(exc).__name__) from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, IsADirectoryError):
            pass

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix, allow_empty=True)
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith(_TMP_PREFIX):
                    keys.append((Path(dirpath) / name).relative_to(self.root).as_posix())
        return sorted(keys)

    def list_dirs(self, prefix: str = "") -> list[str]:
        base = self._path(prefix, allow_empty=True)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix, allow_empty=True)
        count = len(self.list(prefix))
        if base == self.root:
            for child in list(base.iterdir()) if base.is_dir() else []:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif base.is_dir():
            shutil.rmtree(base)
        return count

    def _upload_file(self, path: Path, key: str) -> None:
        dest = self._path(key)
        with open(path, "rb") as src:
            _atomic_write_file(dest, lambda fh: shutil.copyfileobj(src, fh, 1 << 20))

    def _download_file(self, key: str, path: Path) -> None:
        src_path = self._path(key)
        with open(src_path, "rb") as src:
            _atomic_write_file(path, lambda fh: shutil.copyfileobj(src, fh, 1 << 20))


# --------------------------------------------------------------------------- S3


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} has no bucket")
    return bucket, key.strip("/")


def make_s3_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    env: Mapping[str, str] = os.environ,
    *,
    max_attempts: int = 5,
    retry_mode: str = "standard",
    connect_timeout: float = 10.0,
    read_timeout: float = 120.0,
):
    """A boto3 S3 client with retries and timeouts.

    Credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``)
    from ``env`` if both are set, else boto3's default chain. ``endpoint_url``: the argument,
    else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` from ``env``; a custom endpoint
    (MinIO, Ceph, moto) gets path-style addressing and checksums only when required.
    ``max_attempts`` counts the first request too.
    """
    import boto3
    from botocore.config import Config

    if retry_mode not in ("standard", "adaptive", "legacy"):
        raise ValueError(f"retry_mode must be standard, adaptive or legacy, not {retry_mode!r}")
    endpoint_url = endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    config_kwargs: dict[str, Any] = dict(
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    if endpoint_url:
        config_kwargs.update(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key_id and secret:
        session = boto3.session.Session(
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
            region_name=region,
        )
    else:
        session = boto3.session.Session(region_name=region)
    return session.client("s3", endpoint_url=endpoint_url, config=Config(**config_kwargs))


def _s3_error(op: str, uri: str, exc: Exception) -> StorageError:
    """A :class:`StorageError` for a boto error: URI and error code, never credentials."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        cls = ObjectNotFound if code in ("NoSuchKey", "404", "NotFound") else StorageError
        detail = f" after {attempts} retries" if attempts else ""
        return cls(f"S3 {op} {uri} failed: {code} (HTTP {status}){detail}", uri=uri, code=code)
    if isinstance(exc, NoCredentialsError):
        return StorageError(
            f"S3 {op} {uri} failed: no credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "or reference a Secret in spec.storage.credentialsSecret)",
            uri=uri,
            code="NoCredentials",
        )
    # boto3's transfer errors (S3UploadFailedError) wrap the ClientError text: keep its code
    match = re.search(r"An error occurred \(([\w.-]+)\)", str(exc))
    code = match.group(1) if match else type(exc).__name__
    return StorageError(f"S3 {op} {uri} failed: {code}", uri=uri, code=code)


class S3Storage(Storage):
    """Storage under ``s3://bucket/prefix`` (any endpoint). The bucket must exist."""

    #: Keys per LIST page and per DeleteObjects call (S3 allows at most 1000).
    page_size = 1000

    def __init__(self, bucket: str, prefix: str = "", client: Any = None, **client_kwargs: Any):
        self.bucket = bucket
        self.prefix = _norm_key(prefix, allow_empty=True)
        self.client = client if client is not None else make_s3_client(**client_kwargs)

    def _key(self, key: str, allow_empty: bool = False) -> str:
        return _join(self.prefix, _norm_key(key, allow_empty=allow_empty))

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key, allow_empty=True)}".rstrip("/")

    def _call(self, op: str, key: str, fn: Callable[[], Any]) -> Any:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            raise _s3_error(op, self.uri(key) if key is not None else self.uri(), exc) from None

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self._call("HEAD", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full))
        except ObjectNotFound:
            return False
        return True

    def read_bytes(self, key: str) -> bytes:
        full = self._key(key)
        return self._call("GET", key, lambda: self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read())

    def write_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        self._call("PUT", key, lambda: self.client.put_object(Bucket=self.bucket, Key=full, Body=bytes(data)))

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call("DELETE", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=full))

    def _folder(self, prefix: str) -> str:
        full = self._key(prefix, allow_empty=True)
        return f"{full}/" if full else ""

    def _pages(self, prefix: str, **kwargs: Any) -> list[dict[str, Any]]:
        folder = self._folder(prefix)

        def pages() -> list[dict[str, Any]]:
            paginator = self.client.get_paginator("list_objects_v2")
            config = {"PageSize": self.page_size}
            return list(paginator.paginate(Bucket=self.bucket, Prefix=folder, PaginationConfig=config, **kwargs))

        return self._call("LIST", prefix, pages)

    def list(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys = [obj["Key"] for page in self._pages(prefix) for obj in page.get("Contents", [])]
        return sorted(k[len(root) :] for k in keys if k.startswith(root) and not k.endswith("/"))

    def list_dirs(self, prefix: str = "") -> list[str]:
        folder = self._folder(prefix)
        names = [
            cp["Prefix"][len(folder) :].rstrip("/")
            for page in self._pages(prefix, Delimiter="/")
            for cp in page.get("CommonPrefixes", [])
        ]
        return sorted(n for n in names if n)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for start in range(0, len(keys), self.page_size):
            batch = [{"Key": self._key(k)} for k in keys[start : start + self.page_size]]
            resp = self._call(
                "DELETE",
                prefix,
                lambda: self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}),
            )
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 DELETE s3://{self.bucket}/{first.get('Key')} failed: {first.get('Code')}"
                    f" ({len(errors)} objects not deleted)",
                    uri=f"s3://{self.bucket}/{first.get('Key')}",
                    code=first.get("Code"),
                )
        return len(keys)

    def _upload_file(self, path: Path, key: str) -> None:
        full = self._key(key)
        self._call("PUT", key, lambda: self.client.upload_file(str(path), self.bucket, full))

    def _download_file(self, key: str, path: Path) -> None:
        full = self._key(key)

        def fetch(fh: Any) -> None:
            self._call("GET", key, lambda: self.client.download_fileobj(self.bucket, full, fh))

        _atomic_write_file(path, fetch)


# --------------------------------------------------------------------------- factories


def _local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()


def open_storage(spec: StorageSpec, env: Mapping[str, str] = os.environ, **client_kwargs: Any) -> Storage:
    """The :class:`Storage` a :class:`~o1pruner.spec.StorageSpec` describes.

    ``client_kwargs`` go to :func:`make_s3_client` (``max_attempts``, ``retry_mode``, timeouts).
    """
    if spec.is_s3:
        bucket, prefix = split_s3_uri(spec.uri)
        client = make_s3_client(spec.endpoint_url, spec.region, env, **client_kwargs)
        return S3Storage(bucket, prefix, client=client)
    return LocalStorage(_local_path(spec.uri))


def read_uri(
    uri: str,
    env: Mapping[str, str] = os.environ,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> bytes:
    """The bytes of an ``s3://bucket/key`` object or a local file (datasets, single files)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        if not key:
            raise ValueError(f"{uri!r} names a bucket, not an object")
        return S3Storage(bucket, client=make_s3_client(endpoint_url, region, env)).read_bytes(key)
    path = _local_path(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ObjectNotFound(f"no file {path}", uri=str(path), code="NoSuchKey") from None


# --------------------------------------------------------------------------- manifest


class Manifest:
    """Which phases are done and what each produced, in ``manifest.json`` at the storage root.

    Shape::

        {"version": 1, "created_at": "...", "updated_at": "...",
         "phases": {"sample": {"done": true, "done_at": "...", "outputs": {...}}}}

    Every method reads the object afresh, so two ``Manifest`` instances (or processes run one
    after another) see each other's updates. Updates are read-modify-write of one object,
    written atomically; concurrent writers from different processes are not supported.
    """

    KEY = "manifest.json"
    VERSION = 1

    def __init__(self, storage: Storage, key: str = KEY):
        self.storage = storage
        self.key = key
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        """The manifest as a dict (an empty one if none is stored yet)."""
        try:
            data = self.storage.read_json(self.key)
        except ObjectNotFound:
            return {"version": self.VERSION, "phases": {}}
        if not isinstance(data, dict) or not isinstance(data.get("phases"), dict):
            raise StorageError(f"{self.storage.uri(self.key)} is not a manifest", uri=self.storage.uri(self.key))
        return data

    def data(self) -> dict[str, Any]:
        """Alias of :meth:`load` (the whole manifest, e.g. for the report)."""
        return self.load()

    def _update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        with self._lock:
            data = self.load()
            change(data["phases"])
            now = _now()
            data.setdefault("created_at", now)
            data["updated_at"] = now
            data["version"] = self.VERSION
            self.storage.write_json(self.key, data)
            return data

    def phases(self) -> dict[str, dict[str, Any]]:
        return self.load()["phases"]

    def is_done(self, phase: str) -> bool:
        return bool(self.phases().get(phase, {}).get("done"))

    def outputs(self, phase: str) -> dict[str, Any]:
        """What ``phase`` recorded when it finished (``{}`` if it has not)."""
        return dict(self.phases().get(phase, {}).get("outputs") or {})

    def mark_done(self, phase: str, outputs: Mapping[str, Any] | None = None) -> None:
        """Record ``phase`` as finished with its outputs (JSON-serialisable)."""
        record = {"done": True, "done_at": _now(), "outputs": dict(outputs or {})}
        json.dumps(record)  # fail before writing if outputs are not JSON
        self._update(lambda phases: phases.__setitem__(phase, record))

    def reset(self, phase: str) -> None:
        """Forget ``phase`` (it will run again)."""
        self._update(lambda phases: phases.pop(phase, None))
