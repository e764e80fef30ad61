"""The operator's API client over kubernetes_asyncio, against the emulator: idempotent writes
(409 on create and 404 on delete are outcomes, not errors), errors that name the object, and
credentials as kopf hands them over (CA data from a kubeconfig, tokens)."""

from __future__ import annotations

import base64
import os

import kopf
import pytest

from o1pruner_operator.kube import CONFIGMAPS, DEPLOYMENTS, ApiError, Credentials, KubeClient

NS = "research"


def _cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
            "data": {"k": "v"}}


@pytest.fixture()
async def client(cluster):
    c = KubeClient(Credentials.from_connection_info(kopf.ConnectionInfo(server=cluster.url, insecure=True)))
    yield c
    await c.close()


async def test_create_get_patch_list_delete_are_idempotent(cluster, client):
    assert await client.create(CONFIGMAPS, NS, _cm("a")) is True
    assert await client.create(CONFIGMAPS, NS, _cm("a")) is False  # 409: already there
    assert (await client.get(CONFIGMAPS, NS, "a"))["data"] == {"k": "v"}
    await client.patch(CONFIGMAPS, NS, "a", {"data": {"k2": "w"}})
    assert cluster.obj("configmaps", "a")["data"] == {"k": "v", "k2": "w"}  # a merge patch
    assert [o["metadata"]["name"] for o in await client.list(CONFIGMAPS, NS, "")] == ["a"]
    assert await client.delete(CONFIGMAPS, NS, "a") is True
    assert await client.delete(CONFIGMAPS, NS, "a") is False  # 404: already gone
    assert await client.get(CONFIGMAPS, NS, "a") is None


async def test_errors_name_the_request_and_the_object(client):
    with pytest.raises(ApiError) as err:
        await client.patch(DEPLOYMENTS, NS, "missing", {"spec": {"replicas": 0}})
    assert err.value.status == 404
    assert str(err.value).startswith(f"PATCH Deployment {NS}/missing: 404 "), str(err.value)


async def test_the_operator_identifies_itself(cluster, client):
    await client.get(CONFIGMAPS, NS, "x")
    agents = {str((r.headers or {}).get("User-Agent", "")) for r in list(cluster.emu)}
    assert "o1pruner-operator" in agents, agents


def test_kubeconfig_style_credentials_become_the_clients_configuration(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    info = kopf.ConnectionInfo(server="https://k8s.example:6443/", token="t0k",
                               ca_data=base64.b64encode(pem.encode()).decode())  # as kubeconfig has it
    creds = Credentials.from_connection_info(info)
    cfg = creds.configuration(str(tmp_path))
    assert cfg.host == "https://k8s.example:6443" and cfg.verify_ssl
    assert open(cfg.ssl_ca_cert).read() == pem
    assert oct(os.stat(cfg.ssl_ca_cert).st_mode & 0o777) == "0o600"
    assert cfg.api_key == {"BearerToken": "t0k"} and cfg.api_key_prefix == {"BearerToken": "Bearer"}
    insecure = Credentials.from_connection_info(kopf.ConnectionInfo(server="https://x", insecure=True))
    assert insecure.configuration(str(tmp_path)).verify_ssl is False
