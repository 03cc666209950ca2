"""webhook.cluster: two reflectors keep the webhook's Catalog in step with a (fake) apiserver."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from test_reflector import FAST, FakeApiserver, wait_for

from inferplane import kube
from inferplane.errors import Denied
from webhook.catalog import Catalog
from webhook.cluster import CONFIGMAPS_PATH, CRD_MISSING, INSTANCE_TYPES_PATH, ClusterFeed


@pytest.fixture
def apiserver() -> Iterator[FakeApiserver]:
    with FakeApiserver() as fake:
        yield fake


REGISTRATION_LABELS = {"ml.example/model-name": "iris", "ml.example/model-version": "3"}
MANIFEST = "storage:\n  pvc: {claimName: models}\nfiles:\n  - {path: model.json, containerPath: model.json}\n"


def instance_type(fake: FakeApiserver, name: str, cpu: str = "1") -> dict:
    # Custom resources carry kind and apiVersion in a LIST, as the apiserver sends them.
    amounts = {"cpu": cpu, "memory": "1Gi"}
    return fake.put(
        name, INSTANCE_TYPES_PATH, apiVersion="ml.example/v1alpha1", kind="InstanceType",
        spec={"resources": {"requests": amounts, "limits": amounts}},
    )  # fmt: skip


def registration(fake: FakeApiserver, name: str = "iris-3") -> dict:
    # A built-in type's LIST items carry no kind: the feed must supply it.
    return fake.put(
        name, CONFIGMAPS_PATH, metadata={"namespace": "team-a", "labels": REGISTRATION_LABELS},
        data={"model.yaml": MANIFEST},
    )  # fmt: skip


@pytest.fixture
def feed(apiserver: FakeApiserver) -> Iterator[ClusterFeed]:
    started = ClusterFeed(kube.for_host(apiserver.url), Catalog(), backoff=FAST)
    yield started
    started.stop()


def test_ready_once_both_kinds_are_listed_and_the_catalog_answers_from_them(apiserver, feed):
    instance_type(apiserver, "cpu-small")
    registration(apiserver)
    assert not feed.ready.is_set()
    feed.start()
    assert feed.ready.wait(5)
    assert feed.catalog.ready is True
    assert feed.catalog.instance_type("cpu-small").name == "cpu-small"
    assert feed.catalog.registration("team-a", "iris", "3").configmap == "iris-3"
    selector = {q.get("labelSelector") for path, q in apiserver.requests if path == CONFIGMAPS_PATH}
    assert selector == {"ml.example/model-name"}
    status = feed.status()
    assert status[INSTANCE_TYPES_PATH]["synced"] and status[CONFIGMAPS_PATH]["synced"]


def test_without_the_crd_it_says_so_and_stays_unready_until_it_is_installed(apiserver, feed, caplog):
    registration(apiserver)
    apiserver.missing.add(INSTANCE_TYPES_PATH)
    with caplog.at_level(logging.WARNING, logger="inferplane.reflector"):
        feed.start()
        wait_for(lambda: sum(p == INSTANCE_TYPES_PATH for p, _ in apiserver.requests) >= 3)
        wait_for(lambda: feed.status()[CONFIGMAPS_PATH]["synced"])
        assert not feed.ready.is_set()
    hints = {getattr(r, "hint", None) for r in caplog.records}
    assert CRD_MISSING in hints
    apiserver.missing.discard(INSTANCE_TYPES_PATH)
    assert feed.ready.wait(5)


def test_watch_events_add_and_remove_catalog_entries(apiserver, feed):
    instance_type(apiserver, "cpu-small")
    cm = registration(apiserver)
    added = {
        "apiVersion": "ml.example/v1alpha1", "kind": "InstanceType",
        "metadata": {"name": "gpu-a100", "resourceVersion": "50"},
        "spec": {"resources": {"limits": {"nvidia.com/gpu": 1}}},
    }  # fmt: skip
    deleted = {
        "metadata": {**cm["metadata"], "resourceVersion": "51"},
        "data": cm["data"],
    }  # no kind, as sent
    apiserver.script(("event", "ADDED", added), ("end",), path=INSTANCE_TYPES_PATH)
    apiserver.script(("event", "DELETED", deleted), ("end",), path=CONFIGMAPS_PATH)
    feed.start()
    assert feed.ready.wait(5)
    wait_for(lambda: "gpu-a100" in feed.catalog.instance_type_names())
    wait_for(lambda: feed.catalog.registered("team-a") == [])
    with pytest.raises(Denied, match="iris:3"):
        feed.catalog.registration("team-a", "iris", "3")
