"""The reflector and the webhook's cluster feed against the real kube-apiserver: the LIST pages and
WATCH stream shapes, client-certificate auth from a kubeconfig, and the InstanceType CRD's collection.

A 410 Gone cannot be provoked here: the harness's etcd is compacted every 5 minutes (the apiserver
default), so any resourceVersion a test can name is still in history; the unit tests' fake apiserver
plays both forms of it."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from inferplane import kube
from inferplane.localcluster.controlplane import ControlPlane
from inferplane.reflector import Backoff, Reflector
from webhook.catalog import Catalog
from webhook.cluster import ClusterFeed

pytestmark = pytest.mark.e2e

FAST = Backoff(initial=0.05, maximum=0.5)


class Seen:
    def __init__(self) -> None:
        self.names: set[str] = set()
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def replace(self, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.names = {i["metadata"]["name"] for i in items}

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, obj["metadata"]["name"]))
            (self.names.discard if kind == "DELETED" else self.names.add)(obj["metadata"]["name"])


def configmap(name: str, namespace: str, labels: dict[str, str] | None = None, **data: str) -> str:
    meta = {"name": name, "namespace": namespace, "labels": labels or {}}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})


@pytest.fixture
def client(control_plane: ControlPlane) -> kube.KubeClient:
    return kube.connect(str(control_plane.kubeconfig))


def test_lists_then_follows_adds_and_deletes(control_plane, fresh_namespace, client):
    control_plane.kubectl("apply", "-f", "-", input=configmap("first", fresh_namespace))
    seen = Seen()
    reflector = Reflector(
        client, f"/api/v1/namespaces/{fresh_namespace}/configmaps",
        on_replace=seen.replace, on_event=seen.event, page_size=1, backoff=FAST,
    )  # fmt: skip
    reflector.start()
    try:
        assert reflector.wait_synced(30)
        assert "first" in seen.names  # beside kube-root-ca.crt, in pages of one
        control_plane.kubectl("apply", "-f", "-", input=configmap("second", fresh_namespace))
        control_plane.kubectl("delete", "configmap", "first", "-n", fresh_namespace)
        control_plane.wait_for(lambda: ("DELETED", "first") in seen.events, message="the DELETED event")
        assert ("ADDED", "second") in seen.events
        assert "first" not in seen.names and "second" in seen.names
        assert int(reflector.resource_version or 0) > 0
    finally:
        reflector.stop()


def test_the_cluster_feed_is_ready_and_follows_instance_types(control_plane, fresh_namespace, client, crd):
    labels = {"ml.example/model-name": "iris", "ml.example/model-version": "3"}
    manifest = "storage:\n  pvc: {claimName: models}\nfiles:\n  - {path: m.json, containerPath: m.json}\n"
    control_plane.kubectl(
        "apply", "-f", "-", input=configmap("iris-3", fresh_namespace, labels, **{"model.yaml": manifest})
    )
    feed = ClusterFeed(client, Catalog(), backoff=FAST)
    feed.start()
    name = f"e2e-{fresh_namespace}"
    try:
        assert feed.ready.wait(30)
        assert feed.catalog.registration(fresh_namespace, "iris", "3").configmap == "iris-3"
        amounts = {"cpu": "1", "memory": "1Gi"}
        instance_type = {
            "apiVersion": "ml.example/v1alpha1", "kind": "InstanceType", "metadata": {"name": name},
            "spec": {"resources": {"requests": amounts, "limits": amounts}},
        }  # fmt: skip
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(instance_type))
        control_plane.wait_for(
            lambda: name in feed.catalog.instance_type_names(), message="the new InstanceType"
        )
        assert feed.catalog.instance_type(name).name == name
        control_plane.kubectl("delete", "instancetype", name)
        control_plane.wait_for(lambda: name not in feed.catalog.instance_type_names(), message="its deletion")
    finally:
        feed.stop()
        control_plane.kubectl("delete", "instancetype", name, "--ignore-not-found")
