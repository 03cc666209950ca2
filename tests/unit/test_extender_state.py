"""The cache's aggregates stay equal to a recount from scratch whatever the order of watch events,
and node changes reach placement."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from extender import fixtures as fx
from extender.config import Settings
from extender.parse import pod_from
from extender.policy import filter_nodes
from extender.state import ClusterState

NODES = ["n1", "n2", "n3"]

pod_versions = st.builds(
    lambda node, gpus, phase, deployment: fx.pod(
        "p", node_name=node, gpus=gpus, phase=phase, deployment=deployment, uid="fixed"
    ),
    node=st.sampled_from([None, *NODES]),
    gpus=st.integers(0, 3),
    phase=st.sampled_from(["Pending", "Running", "Succeeded"]),
    deployment=st.sampled_from([None, "web", "api"]),
)
events = st.lists(
    st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), st.integers(0, 5), pod_versions), max_size=30
)


def snapshot(state: ClusterState) -> tuple:
    table = state.table
    rows = [table.row_of[name] for name in NODES]
    held = {resource: column[rows].tolist() for resource, column in table.held.items() if column[rows].any()}
    return (
        {name: dict(state.held(name)) for name in NODES if state.held(name)},
        held,
        {
            group: dict(state.replicas(group))
            for group in ("default/Deployment/web", "default/Deployment/api")
        },
    )


@settings(max_examples=150, deadline=None)
@given(events)
def test_incremental_counts_equal_a_recount_after_any_event_sequence(sequence):
    state = ClusterState()
    state.replace_nodes([fx.node(name, gpus=8) for name in NODES])
    state.replace_pods([])
    latest: dict[str, dict] = {}
    for kind, index, version in sequence:
        uid = f"uid-{index}"
        version["metadata"]["uid"] = uid
        version["metadata"]["name"] = uid
        state.pod_event(kind, version)
        if kind == "DELETED":
            latest.pop(uid, None)
        else:
            latest[uid] = version
    fresh = ClusterState()
    fresh.replace_nodes([fx.node(name, gpus=8) for name in NODES])
    fresh.replace_pods(list(latest.values()))
    assert snapshot(state) == snapshot(fresh)


def test_a_node_deleted_and_added_again_still_counts_its_pods():
    state = ClusterState()
    state.replace_nodes([fx.node("n1", gpus=4)])
    state.replace_pods([fx.pod("held", gpus=3, node_name="n1")])
    state.node_event("DELETED", fx.node("n1", gpus=4))
    pod = pod_from(fx.pod("p", gpus=2))
    assert filter_nodes(pod, ["n1"], state, Settings()).failed == {
        "n1": "n1: not in the extender's node cache yet"
    }
    state.node_event("ADDED", fx.node("n1", gpus=4))
    assert filter_nodes(pod, ["n1"], state, Settings()).failed == {
        "n1": "n1: 1 of 4 nvidia.com/gpu free; the pod needs 2"
    }


def test_a_relabelled_node_is_judged_by_its_new_labels_and_rows_are_reused():
    state = ClusterState()
    state.replace_nodes([fx.node("n1", gpus=4, product="Tesla-T4"), fx.node("n2")])
    state.replace_pods([])
    pod = pod_from(fx.pod("p", gpus=1, annotations={"ml.example/gpu-product": "NVIDIA-A100-SXM4-80GB"}))
    assert filter_nodes(pod, ["n1"], state, Settings()).passed == []
    state.node_event("MODIFIED", fx.node("n1", gpus=4, product="NVIDIA-A100-SXM4-80GB"))
    assert filter_nodes(pod, ["n1"], state, Settings()).passed == ["n1"]
    state.node_event("DELETED", fx.node("n2"))
    state.node_event("ADDED", fx.node("n3", gpus=2, product="NVIDIA-A100-SXM4-80GB"))
    assert len(state.table.nodes) == 2 and state.sizes()["nodes"] == 2
    assert filter_nodes(pod, ["n3", "n2"], state, Settings()).passed == ["n3"]


def test_a_relist_drops_nodes_that_are_gone_and_keeps_counts():
    state = ClusterState()
    state.replace_nodes([fx.node("n1", gpus=4), fx.node("n2", gpus=4)])
    state.replace_pods([fx.pod("held", gpus=2, node_name="n2")])
    state.replace_nodes([fx.node("n2", gpus=4)])
    assert state.node("n1") is None
    assert state.table.held_of("nvidia.com/gpu", np.array([state.table.row_of["n2"]])).tolist() == [2]


def test_pods_holding_nothing_placement_reads_are_not_kept():
    state = ClusterState()
    state.replace_nodes([fx.node("n1")])
    state.replace_pods([fx.pod("bare", node_name="n1"), fx.pod("web-1", node_name="n1", deployment="web")])
    assert state.sizes()["pods"] == 1
