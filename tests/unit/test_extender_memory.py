"""What the extender keeps of the pods it watches: the same placement facts from a pod as a real
cluster serves it as from a minimal one, a few hundred bytes each, and a LIST that never holds more
than a page of full objects (150,000 pods overran the container's limit when it held them all)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fake_apiserver import FakeApiserver
from hypothesis import given, settings
from hypothesis import strategies as st

from extender import fixtures as fx
from extender.service import BOUND_PODS, PODS
from extender.state import ClusterState
from inferplane import kube
from inferplane.reflector import Backoff, Reflector


def as_watched(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the reflector gets it: parsed from the apiserver's JSON, nothing shared."""
    return orjson.loads(orjson.dumps(obj))


@settings(max_examples=100, deadline=None)
@given(
    node=st.sampled_from([None, "n1"]),
    gpus=st.integers(0, 2),
    phase=st.sampled_from(["Pending", "Running", "Succeeded"]),
    deployment=st.sampled_from([None, "web"]),
    seq=st.integers(0, 100_000),
)
def test_a_served_pod_gives_the_record_its_minimal_version_gives(node, gpus, phase, deployment, seq):
    state = ClusterState()
    pod = fx.pod("web-1", node_name=node, gpus=gpus, phase=phase, deployment=deployment, uid="u-1")
    assert state.pod_record(as_watched(fx.served(pod, seq=seq))) == state.pod_record(pod)


def test_a_record_keeps_nothing_of_the_json_it_came_from():
    state = ClusterState()
    served = [
        as_watched(fx.served(fx.pod(f"web-{i}", node_name="n1", deployment="web", gpus=i % 2), seq=i))
        for i in range(2000)
    ]
    gc.collect()
    tracemalloc.start()
    try:
        records = [state.pod_record(obj) for obj in served]
        del served
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(bound is not None for _, bound in records)
    # A record is a uid and a small frozen value (~0.2 KB); the dict tree it came from is ~25 KB.
    assert held / len(records) < 500


@pytest.fixture
def apiserver() -> Iterator[FakeApiserver]:
    with FakeApiserver() as fake:
        for i in range(2000):
            pod = fx.served(
                fx.pod(f"web-{i:04d}", node_name=f"n{i % 50}", deployment="web", gpus=i % 2), seq=i
            )
            fake.apply(PODS, pod)
        yield fake


def list_peak(apiserver: FakeApiserver, reflector_for: Callable[[ClusterState], Reflector[Any]]) -> float:
    """Bytes allocated at the peak of one paginated LIST into a fresh cache, over what was live before."""
    state = ClusterState()
    reflector = reflector_for(state)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        reflector.start()
        assert reflector.wait_synced(60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        reflector.stop()
    assert state.sizes()["pods"] == 2000
    return peak - base


def test_a_list_holds_one_page_of_full_pods_at_a_time(apiserver):
    client = kube.for_host(apiserver.url)
    common: dict[str, Any] = {"field_selector": BOUND_PODS, "page_size": 100, "backoff": Backoff(0.01, 0.05)}
    whole = list_peak(
        apiserver,
        lambda state: Reflector(
            client, PODS, on_replace=state.replace_pods, on_event=state.pod_event, **common
        ),
    )
    paged = list_peak(
        apiserver,
        lambda state: Reflector(
            client, PODS, transform=state.pod_record, on_replace=state.replace_pod_records,
            on_event=state.pod_record_event, **common,
        ),
    )  # fmt: skip
    # Whole: all 2,000 parsed pods at once (~50 MB); paged: one page of 100 and the records.
    assert paged < whole / 4, (paged / 2**20, whole / 2**20)
