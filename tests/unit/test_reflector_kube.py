"""Building the raw API client from a kubeconfig, as `inferplane webhook --kubeconfig F` does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from test_reflector import FakeApiserver

from inferplane import kube
from inferplane.errors import UserError


@pytest.fixture
def apiserver() -> Iterator[FakeApiserver]:
    with FakeApiserver() as fake:
        yield fake


def write_kubeconfig(path, server: str, token: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_kubeconfig_server_and_token_reach_the_apiserver(apiserver, tmp_path):
    apiserver.put("a", "/api/v1/configmaps", data={"x": "1"})
    client = kube.connect(write_kubeconfig(tmp_path / "kubeconfig", apiserver.url, "s3cret"))
    body = client.get("/api/v1/configmaps", {"limit": 5}, timeout=5).json()
    assert [i["metadata"]["name"] for i in body["items"]] == ["a"]
    assert apiserver.authorizations == ["Bearer s3cret"]
    assert apiserver.requests == [("/api/v1/configmaps", {"limit": "5"})]


def test_an_error_status_carries_the_apiservers_reason(apiserver):
    apiserver.list_status = 404
    with pytest.raises(kube.ApiStatusError) as caught:
        kube.for_host(apiserver.url).get("/apis/ml.example/v1alpha1/instancetypes", timeout=5)
    assert caught.value.code == 404
    assert str(caught.value) == (
        "GET /apis/ml.example/v1alpha1/instancetypes: HTTP 404 NotFound: fake apiserver says 404"
    )


def test_a_missing_kubeconfig_file_is_named(tmp_path):
    with pytest.raises(UserError, match=r"--kubeconfig .*/nope: no such file"):
        kube.connect(str(tmp_path / "nope"))


def test_no_cluster_at_all_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setattr(kube.k8s_config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "absent"))
    with pytest.raises(
        UserError, match=r"no usable kubeconfig at .*absent .*; run it in a pod, or pass --kubeconfig FILE$"
    ):
        kube.connect()
    with pytest.raises(UserError, match=r"; or give --catalog DIR$"):
        kube.connect(hint="or give --catalog DIR")


def test_writes_carry_method_body_and_content_type(apiserver):
    client = kube.for_host(apiserver.url, token="t")
    created = client.post("/api/v1/namespaces/a/pods/p/binding", {"kind": "Binding"}, timeout=5)
    assert created.status == 201 and created.json() == {"kind": "Binding"}
    client.put("/apis/coordination.k8s.io/v1/namespaces/a/leases/l", b'{"spec":{}}', timeout=5)
    client.patch("/apis/apps/v1/namespaces/a/deployments/d/scale", {"spec": {"replicas": 3}}, timeout=5)
    client.patch("/api/v1/nodes/n", [{"op": "remove", "path": "/x"}], content_type=kube.JSON_PATCH, timeout=5)
    client.delete("/apis/coordination.k8s.io/v1/namespaces/a/leases/l", {"gracePeriodSeconds": 0}, timeout=5)
    assert apiserver.writes == [
        ("POST", "/api/v1/namespaces/a/pods/p/binding", "application/json", {"kind": "Binding"}),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", "application/json", {"spec": {}}),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", "application/merge-patch+json",
         {"spec": {"replicas": 3}}),
        ("PATCH", "/api/v1/nodes/n", "application/json-patch+json", [{"op": "remove", "path": "/x"}]),
        ("DELETE", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l?gracePeriodSeconds=0", None, None),
    ]  # fmt: skip
    assert apiserver.authorizations == ["Bearer t"] * 5


def test_a_refused_write_raises_with_the_apiservers_message(apiserver):
    apiserver.write_status = 409
    with pytest.raises(kube.ApiStatusError) as caught:
        kube.for_host(apiserver.url).post("/api/v1/namespaces/a/pods/p/binding", {}, timeout=5)
    assert (caught.value.code, caught.value.reason) == (409, "Conflict")
    assert str(caught.value).startswith("POST /api/v1/namespaces/a/pods/p/binding: HTTP 409 Conflict")
