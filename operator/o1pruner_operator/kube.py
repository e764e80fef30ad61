"""The operator's client for its children, over the official async Kubernetes client.

Requests go through ``kubernetes_asyncio``'s ``ApiClient`` (transport, TLS, bearer-token
auth, API errors), configured from the credentials kopf's login handler resolved (service
account in-cluster, kubeconfig outside). Objects stay plain dicts: every call is the generic
``call_api`` that the library's own DynamicClient makes, without its discovery round-trips.

What this module adds on top, because the reconciler relies on it:

* writes are idempotent: create treats 409 as "already there", a JSON merge patch can be
  repeated, delete treats 404 as "already gone";
* a request whose connection dropped (a keep-alive connection the server closed, a reset, a
  timeout) is repeated on a fresh client, so on fresh connections;
* a 401 with an in-cluster token re-reads the projected token file once (bound tokens rotate);
* every error names the request and the object: ``PATCH Deployment research/x: 422 Invalid: ...``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "o1pruner-operator"
TRANSPORT_RETRIES = (0.05, 0.5, 2.0)  # pauses between attempts after a transport failure
#: What a dropped or stalled connection raises through kubernetes_asyncio (aiohttp underneath).
TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)
#: ``call_api`` returns the JSON body as is for these statuses (no model deserialization).
_AS_JSON = {status: "object" for status in (200, 201, 202)}


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core API
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SERVICES = Resource("", "v1", "services", "Service")
PODS = Resource("", "v1", "pods", "Pod")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
JOBS = Resource("batch", "v1", "jobs", "Job")
NETWORKPOLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
PYTORCHJOBS = Resource("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob")
TRAINJOBS = Resource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
PRUNINGJOBS = Resource("o1pruner.dev", "v1alpha1", "pruningjobs", "PruningJob")


class ApiError(Exception):
    """An API request that failed: ``status`` (HTTP) and ``reason`` (the Status reason).
    ``status`` 0: no answer at all (the connection failed on every retry; ``reason`` names the
    transport error). ``str()`` starts with the request and the object it was about."""

    def __init__(self, status: int, reason: str, message: str, *, target: str = ""):
        self.status = status
        self.reason = reason
        self.message = message
        self.target = target  # "PATCH Deployment research/x"
        super().__init__(f"{target + ': ' if target else ''}{status} {reason}: {message}")


def api_error(exc: ApiException, target: str) -> ApiError:
    """Our ApiError from the client's: reason and message from the API's Status body."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        body = {"message": str(exc.body)[:500]}
    body = body if isinstance(body, dict) else {}
    return ApiError(int(exc.status or 0), str(body.get("reason") or exc.reason or ""),
                    str(body.get("message", "")), target=target)


def _pem(data: str | bytes) -> str:
    """PEM text from kubeconfig-style data: PEM already, or base64 of it (as kopf reads it)."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    return text if text.startswith("-----BEGIN ") else base64.b64decode(text).decode("ascii")


@dataclass
class Credentials:
    server: str
    token: str | None = None
    scheme: str | None = None  # the Authorization scheme kopf resolved; Bearer when unset
    ca_path: str | None = None
    ca_data: str | bytes | None = None
    certificate_path: str | None = None
    certificate_data: str | bytes | None = None
    private_key_path: str | None = None
    private_key_data: str | bytes | None = None
    insecure: bool = False
    #: In-cluster: the projected token file, re-read on 401 (bound tokens rotate).
    token_path: str | None = None

    @classmethod
    def from_connection_info(cls, info: Any) -> "Credentials":
        """From a ``kopf.ConnectionInfo``."""
        path = lambda v: os.fsdecode(v) if v else None  # noqa: E731
        return cls(
            server=str(info.server).rstrip("/"),
            token=getattr(info, "token", None),
            scheme=getattr(info, "scheme", None),
            ca_path=path(getattr(info, "ca_path", None)),
            ca_data=getattr(info, "ca_data", None),
            certificate_path=path(getattr(info, "certificate_path", None)),
            certificate_data=getattr(info, "certificate_data", None),
            private_key_path=path(getattr(info, "private_key_path", None)),
            private_key_data=getattr(info, "private_key_data", None),
            insecure=bool(getattr(info, "insecure", False)),
        )

    def configuration(self, workdir: str) -> Configuration:
        """The client's Configuration. In-memory CA/cert/key data is written under ``workdir``
        (Python's ssl loads them from files only); the caller removes it once the client is
        built, since the SSL context is made then."""

        def materialize(data: str | bytes | None, path: str | None, name: str) -> str | None:
            if path or data is None:
                return path
            target = os.path.join(workdir, name)
            with open(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                fh.write(_pem(data))
            return target

        cfg = Configuration(host=self.server)
        cfg.ssl_ca_cert = materialize(self.ca_data, self.ca_path, "ca.crt")
        cfg.cert_file = materialize(self.certificate_data, self.certificate_path, "tls.crt")
        cfg.key_file = materialize(self.private_key_data, self.private_key_path, "tls.key")
        cfg.verify_ssl = not self.insecure
        if self.token:
            cfg.api_key = {"BearerToken": self.token}
            cfg.api_key_prefix = {"BearerToken": self.scheme or "Bearer"}
        return cfg


class KubeClient:
    def __init__(self, creds: Credentials, *, timeout: float = 30.0):
        self.creds = creds
        self._timeout = timeout
        self._api: ApiClient | None = None

    def _client(self) -> ApiClient:
        if self._api is None:
            with tempfile.TemporaryDirectory(prefix="o1pruner-kube-") as workdir:
                self._api = ApiClient(self.creds.configuration(workdir))
            self._api.user_agent = USER_AGENT
        return self._api

    async def _request(self, method: str, res: Resource, namespace: str | None, name: str | None = None, *,
                       sub: str | None = None, body: Any = None, query: list[tuple[str, str]] | None = None,
                       content_type: str = "application/json", shown: str | None = None) -> Any:
        """One API call; transport failures (a keep-alive connection closed by the server, a
        reset) are retried on a fresh client. ``shown`` names the object in errors when its name
        is not in the path (create). Every call is safe to repeat: create treats
        409 as done, merge patches are idempotent, delete treats 404 as done."""
        target = f"{method} {res.kind}{'/' + sub if sub else ''} " + "/".join(
            p for p in (namespace, name or shown) if p)
        for pause in TRANSPORT_RETRIES + (None,):
            try:
                return await self._request_auth(method, res.path(namespace, name, sub), body=body, query=query,
                                                content_type=content_type)
            except ApiException as exc:
                raise api_error(exc, target) from None
            except TRANSPORT_ERRORS as exc:
                if pause is None:
                    raise ApiError(0, type(exc).__name__, str(exc) or "connection failed",
                                   target=target) from exc
                await self.close()
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_auth(self, method: str, path: str, **kw: Any) -> Any:
        try:
            return await self._request_once(method, path, **kw)
        except ApiException as exc:
            if exc.status != 401 or not self.creds.token_path:
                raise
            with open(self.creds.token_path) as fh:  # rotated token: reload once and retry
                self.creds.token = fh.read().strip()
            await self.close()
            return await self._request_once(method, path, **kw)

    async def _request_once(self, method: str, path: str, *, body: Any, query: list[tuple[str, str]] | None,
                            content_type: str) -> Any:
        api = self._client()
        return await api.call_api(
            path, method, query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, response_types_map=_AS_JSON, auth_settings=["BearerToken"],
            _return_http_data_only=True, _request_timeout=self._timeout,
        )

    async def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", res, namespace, name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, res: Resource, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        body = await self._request("GET", res, namespace, query=[("labelSelector", label_selector)])
        return list((body or {}).get("items") or [])

    async def discover(self, group_version: str) -> set[str]:
        """Plurals the API server serves in ``group_version`` ("v1", "batch/v1", ...); empty when
        it serves no such group/version (discovery 404)."""
        path = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        try:
            body = await self._request_auth("GET", path, body=None, query=None, content_type="application/json")
        except ApiException as exc:
            if exc.status == 404:
                return set()
            raise api_error(exc, f"GET {path}") from None
        return {str(r.get("name")) for r in (body or {}).get("resources") or [] if "/" not in str(r.get("name"))}

    async def create(self, res: Resource, namespace: str, obj: dict[str, Any]) -> bool:
        """True if created, False if it was already there (409)."""
        try:
            await self._request("POST", res, namespace, body=obj, shown=(obj.get("metadata") or {}).get("name"))
            return True
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise

    async def patch(self, res: Resource, namespace: str, name: str, patch: dict[str, Any],
                    *, sub: str | None = None) -> dict[str, Any]:
        return await self._request("PATCH", res, namespace, name, sub=sub, body=patch, content_type=MERGE_PATCH)

    async def delete(self, res: Resource, namespace: str, name: str) -> bool:
        """True if deleted, False if it was already gone."""
        try:
            await self._request("DELETE", res, namespace, name, body={"propagationPolicy": "Background"})
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    async def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await api.close()
