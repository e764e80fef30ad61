"""A small async Kubernetes REST client for the children (kopf only watches PruningJobs).

It reuses the credentials kopf's login handler resolved (server, token or client cert, CA).
Writes are create (409 = already there), JSON merge patch, and delete (404 = already gone).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "o1pruner-operator"
TRANSPORT_RETRIES = (0.05, 0.5, 2.0)  # pauses between attempts after a transport failure


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
PRUNINGJOBS = Resource("o1pruner.dev", "v1alpha1", "pruningjobs", "PruningJob")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}: {message}")


@dataclass
class Credentials:
    server: str
    token: str | None = None
    ca_path: str | None = None
    ca_data: str | None = None
    certificate_path: str | None = None
    private_key_path: str | None = None
    insecure: bool = False
    #: In-cluster: the projected token file, re-read on 401 (bound tokens rotate).
    token_path: str | None = None

    @classmethod
    def from_connection_info(cls, info: Any) -> "Credentials":
        """From a ``kopf.ConnectionInfo``."""
        return cls(
            server=str(info.server).rstrip("/"),
            token=getattr(info, "token", None),
            ca_path=getattr(info, "ca_path", None),
            ca_data=(info.ca_data.decode() if isinstance(getattr(info, "ca_data", None), bytes)
                     else getattr(info, "ca_data", None)),
            certificate_path=getattr(info, "certificate_path", None),
            private_key_path=getattr(info, "private_key_path", None),
            insecure=bool(getattr(info, "insecure", False)),
        )


class KubeClient:
    def __init__(self, creds: Credentials, *, timeout: float = 30.0):
        self.creds = creds
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ssl_ctx: Any = None
        self._ssl_ready = False

    def _ssl(self) -> Any:
        if not self._ssl_ready:
            self._ssl_ready = True
            if not self.creds.server.startswith("https"):
                self._ssl_ctx = None
            elif self.creds.insecure:
                self._ssl_ctx = False
            else:
                ctx = ssl.create_default_context(cafile=self.creds.ca_path, cadata=self.creds.ca_data)
                if self.creds.certificate_path and self.creds.private_key_path:
                    ctx.load_cert_chain(self.creds.certificate_path, self.creds.private_key_path)
                self._ssl_ctx = ctx
        return self._ssl_ctx

    async def _request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                       content_type: str = "application/json") -> Any:
        """One API call; transport failures (a keep-alive connection closed by the server, a
        reset) are retried on fresh connections. Every call is safe to repeat: create treats
        409 as done, merge patches are idempotent, delete treats 404 as done."""
        for attempt, pause in enumerate(TRANSPORT_RETRIES + (None,)):
            try:
                return await self._request_auth(method, path, json=json, params=params, content_type=content_type)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError):
                if pause is None:
                    raise
                await self.close()
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_auth(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                            content_type: str = "application/json") -> Any:
        try:
            return await self._request_once(method, path, json=json, params=params, content_type=content_type)
        except ApiError as exc:
            if exc.status != 401 or not self.creds.token_path:
                raise
            with open(self.creds.token_path) as fh:  # rotated token: reload once and retry
                self.creds.token = fh.read().strip()
            await self.close()
            return await self._request_once(method, path, json=json, params=params, content_type=content_type)

    async def _request_once(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                            content_type: str = "application/json") -> Any:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            if self.creds.token:
                headers["Authorization"] = f"Bearer {self.creds.token}"
            self._session = aiohttp.ClientSession(headers=headers, timeout=self._timeout)
        async with self._session.request(
            method, self.creds.server + path, json=json, params=params,
            headers={"Content-Type": content_type}, ssl=self._ssl(),
        ) as resp:
            try:
                body = await resp.json(content_type=None)
            except Exception:  # non-JSON error page
                body = {"message": (await resp.text())[:500]}
            if resp.status >= 400:
                body = body if isinstance(body, dict) else {}
                raise ApiError(resp.status, str(body.get("reason", resp.reason)), str(body.get("message", "")))
            return body

    async def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._request("GET", res.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, res: Resource, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        body = await self._request("GET", res.path(namespace), params={"labelSelector": label_selector})
        return list(body.get("items") or [])

    async def create(self, res: Resource, namespace: str, obj: dict[str, Any]) -> bool:
        """True if created, False if it was already there (409)."""
        try:
            await self._request("POST", res.path(namespace), json=obj)
            return True
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise

    async def patch(self, res: Resource, namespace: str, name: str, patch: dict[str, Any],
                    *, sub: str | None = None) -> dict[str, Any]:
        return await self._request("PATCH", res.path(namespace, name, sub), json=patch, content_type=MERGE_PATCH)

    async def delete(self, res: Resource, namespace: str, name: str) -> bool:
        """True if deleted, False if it was already gone."""
        try:
            await self._request("DELETE", res.path(namespace, name), json={"propagationPolicy": "Background"})
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
