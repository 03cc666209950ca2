"""The placement policy on tables of nodes and pods: which nodes pass, why the others do not, and
the order the passing ones are scored in."""

from __future__ import annotations

import pytest

from extender import fixtures as fx
from extender.config import Settings
from extender.model import BoundPod
from extender.parse import GPU_MEMORY_ANNOTATION, GPU_PRODUCT_ANNOTATION, pod_from
from extender.policy import filter_nodes, preempt_nodes, prioritize_nodes
from extender.state import ClusterState

A100 = "NVIDIA-A100-SXM4-80GB"
H100 = "NVIDIA-H100-80GB-HBM3"
T4 = "Tesla-T4"
ALL = ["cpu-1", "cpu-2", "gpu-a", "gpu-b", "gpu-t4", "gpu-big"]


def cluster(bound: list[dict] | None = None) -> ClusterState:
    state = ClusterState()
    state.replace_nodes(
        [
            fx.node("cpu-1", zone="z1"),
            fx.node("cpu-2", zone="z2"),
            fx.node("gpu-a", gpus=4, product=A100, gpu_memory_mib=81920, zone="z1"),
            fx.node("gpu-b", gpus=4, product=A100, gpu_memory_mib=81920, zone="z2"),
            fx.node("gpu-t4", gpus=1, product=T4, gpu_memory_mib=15360, zone="z1"),
            fx.node("gpu-big", cpu="64", memory="512Gi", gpus=8, product=H100, gpu_memory_mib=81920),
        ]
    )
    state.replace_pods(
        [
            fx.pod("held-a", gpus=2, node_name="gpu-a", uid="u-held-a"),
            fx.pod("held-t4", gpus=1, node_name="gpu-t4", uid="u-held-t4"),
            *(bound or []),
        ]
    )
    return state


def place(pod: dict, names: list[str] = ALL, state: ClusterState | None = None, **settings):
    return filter_nodes(pod_from(pod), names, state or cluster(), Settings(**settings))


def test_gpu_pod_goes_only_where_enough_gpus_of_its_kind_are_free():
    result = place(fx.pod("p", gpus=1, instance_type="gpu-small"))
    assert result.passed == ["gpu-a", "gpu-b", "gpu-big"]
    assert result.failed == {"gpu-t4": "gpu-t4: 0 of 1 nvidia.com/gpu free; instance type gpu-small needs 1"}
    assert result.unresolvable == {
        "cpu-1": "cpu-1: no nvidia.com/gpu on this node",
        "cpu-2": "cpu-2: no nvidia.com/gpu on this node",
    }


def test_gpus_held_by_bound_pods_count_and_finished_or_unbound_ones_do_not():
    bound = [
        fx.pod("two-more", gpus=2, node_name="gpu-a"),
        fx.pod("done", gpus=4, node_name="gpu-b", phase="Succeeded"),
        fx.pod("pending", gpus=4),
    ]
    result = place(fx.pod("p", gpus=1), state=cluster(bound))
    assert result.passed == ["gpu-b", "gpu-big"]
    assert result.failed["gpu-a"] == "gpu-a: 0 of 4 nvidia.com/gpu free; the pod needs 1"


def test_gpu_product_annotation_accepts_any_listed_product_and_names_what_the_node_has():
    pod = fx.pod("p", gpus=1, instance_type="a100", annotations={GPU_PRODUCT_ANNOTATION: f"{A100}, {T4}"})
    result = place(pod, ["gpu-a", "gpu-t4", "gpu-big"])
    assert result.passed == ["gpu-a"]
    assert result.failed == {"gpu-t4": "gpu-t4: 0 of 1 nvidia.com/gpu free; instance type a100 needs 1"}
    assert result.unresolvable == {
        "gpu-big": f"gpu-big: GPU product {H100}; instance type a100 needs one of {A100}, {T4}"
    }


def test_gpu_memory_annotation_is_a_minimum_per_gpu():
    pod = fx.pod("p", gpus=1, annotations={GPU_MEMORY_ANNOTATION: "40Gi"})
    result = place(pod, ["gpu-b", "gpu-t4", "gpu-big"])
    assert result.passed == ["gpu-b", "gpu-big"]
    assert result.unresolvable == {"gpu-t4": "gpu-t4: GPU memory 15360 MiB; the pod needs 40960 MiB per GPU"}


@pytest.mark.parametrize("value", ["40000", "lots", ""])
def test_unreadable_gpu_memory_annotation_refuses_every_node_with_the_fix(value):
    result = place(fx.pod("p", gpus=1, annotations={GPU_MEMORY_ANNOTATION: value}))
    assert result.passed == []
    assert set(result.unresolvable) == set(ALL)
    assert (
        f"annotation {GPU_MEMORY_ANNOTATION}={value!r} is not a size such as 40Gi"
        in result.unresolvable["gpu-b"]
    )


def test_node_too_small_even_when_empty_is_unresolvable():
    result = place(fx.pod("p", gpus=8, cpu="16", memory="64Gi"), ["gpu-a", "gpu-big", "cpu-1"])
    assert result.passed == ["gpu-big"]
    assert (
        result.unresolvable["gpu-a"]
        == "gpu-a: too small even when empty: 8000m cpu allocatable; the pod needs 16000m"
    )
    big_cpu = place(fx.pod("p", gpus=8), ["gpu-a"])
    assert (
        big_cpu.unresolvable["gpu-a"] == "gpu-a: too small even when empty: 4 nvidia.com/gpu; the pod needs 8"
    )
    memory = place(fx.pod("p", memory="40Gi"), ["cpu-1"])
    assert (
        memory.unresolvable["cpu-1"]
        == "cpu-1: too small even when empty: 32768Mi memory allocatable; the pod needs 40960Mi"
    )


def test_cpu_pod_kept_off_gpu_nodes_while_a_cpu_node_fits():
    result = place(fx.pod("p", instance_type="cpu-small"))
    assert result.passed == ["cpu-1", "cpu-2"]
    assert result.failed["gpu-b"] == "gpu-b: GPU node kept for GPU pods; a CPU node fits this CPU-only pod"
    assert set(result.failed) == {"gpu-a", "gpu-b", "gpu-t4", "gpu-big"}
    assert result.unresolvable == {}


def test_cpu_pod_too_big_for_cpu_nodes_may_use_a_gpu_node_when_allowed():
    result = place(fx.pod("p", cpu="32", memory="64Gi"))
    assert result.passed == ["gpu-big"]
    assert "cpu-1: too small even when empty" in result.unresolvable["cpu-1"]


def test_cpu_pod_refused_on_gpu_nodes_when_no_cpu_node_fits_and_setting_says_refuse():
    result = place(fx.pod("p"), ["gpu-a", "gpu-b"], cpu_pods_on_gpu_nodes="refuse")
    assert result.passed == []
    assert result.unresolvable["gpu-a"] == (
        "gpu-a: GPU node refused to a CPU-only pod and no CPU node fits (cpu-pods-on-gpu-nodes=refuse)"
    )
    allowed = place(fx.pod("p"), ["gpu-a", "gpu-b"])
    assert allowed.passed == ["gpu-a", "gpu-b"]


def test_node_the_cache_has_not_seen_is_refused_for_now():
    result = place(fx.pod("p"), ["cpu-1", "new-node"])
    assert result.passed == ["cpu-1"]
    assert result.failed == {"new-node": "new-node: not in the extender's node cache yet"}


def test_only_names_we_were_given_come_back():
    names = ["gpu-big", "gpu-a"]
    result = place(fx.pod("p", gpus=1), names)
    assert set(result.passed) | set(result.failed) | set(result.unresolvable) == set(names)


def scores(pod: dict, names: list[str], state: ClusterState | None = None) -> dict[str, int]:
    return dict(prioritize_nodes(pod_from(pod), names, state or cluster()).pairs())


def test_gpu_pod_prefers_the_node_it_fills_best():
    # gpu-a: 2 of 4 held -> 3/4 after; gpu-b: 1/4; gpu-big: 1/8
    assert scores(fx.pod("p", gpus=1), ["gpu-big", "gpu-b", "gpu-a"]) == {
        "gpu-a": 10,
        "gpu-b": 9,
        "gpu-big": 8,
    }


def test_small_gpu_pod_takes_the_small_node_so_the_big_one_stays_whole():
    state = ClusterState()
    state.replace_nodes([fx.node("small", gpus=2), fx.node("big", gpus=8)])
    state.replace_pods([])
    assert scores(fx.pod("p", gpus=2), ["big", "small"], state) == {"small": 10, "big": 9}


def test_replicas_spread_over_zones_then_nodes_among_equally_good_nodes():
    state = ClusterState()
    state.replace_nodes(
        [fx.node("a1", zone="a"), fx.node("a2", zone="a"), fx.node("b1", zone="b"), fx.node("b2", zone="b")]
    )
    state.replace_pods(
        [
            fx.pod("web-1", deployment="web", node_name="a1"),
            fx.pod("web-2", deployment="web", node_name="a1"),
            fx.pod("web-3", deployment="web", node_name="b1"),
            fx.pod("other", deployment="other", node_name="b2"),
        ]
    )
    got = scores(fx.pod("web-4", deployment="web"), ["a1", "a2", "b1", "b2"], state)
    assert got == {"b2": 10, "b1": 9, "a2": 8, "a1": 7}
    assert scores(fx.pod("solo"), ["a1", "a2", "b1", "b2"], state) == dict.fromkeys(
        ["a1", "a2", "b1", "b2"], 10
    )


def test_bin_packing_outranks_spreading():
    state = cluster([fx.pod("m-1", gpus=1, deployment="m", node_name="gpu-a")])
    assert scores(fx.pod("m-2", gpus=1, deployment="m"), ["gpu-a", "gpu-b"], state) == {
        "gpu-a": 10,
        "gpu-b": 9,
    }


def test_cpu_pod_scores_cpu_nodes_above_gpu_nodes_and_unknown_nodes_zero():
    assert scores(fx.pod("p"), ["gpu-a", "cpu-1", "ghost"]) == {"gpu-a": 9, "cpu-1": 10, "ghost": 0}


def test_scores_stay_within_0_to_10_with_many_distinct_levels():
    state = ClusterState()
    state.replace_nodes([fx.node(f"n{i}", gpus=16) for i in range(16)])
    state.replace_pods([fx.pod(f"h{i}-{j}", gpus=1, node_name=f"n{i}") for i in range(16) for j in range(i)])
    got = scores(fx.pod("p", gpus=1), [f"n{i}" for i in range(16)], state)
    assert got["n15"] == 10 and got["n14"] == 9 and got["n5"] == 0 and got["n0"] == 0
    assert all(isinstance(s, int) and 0 <= s <= 10 for s in got.values())


def test_preempt_keeps_only_nodes_where_the_victims_free_enough_gpus():
    state = cluster([fx.pod("web", node_name="gpu-a", deployment="web", uid="u-web")])
    pod = pod_from(fx.pod("p", gpus=3))
    candidates = {
        "gpu-a": ["u-web"],  # a CPU pod: still 2 of 4 free
        "gpu-b": [],  # 4 free already
        "gpu-t4": ["u-held-t4"],  # frees its only GPU, but 1 < 3: too small anyway
        "ghost": ["u-x"],
    }
    assert preempt_nodes(pod, candidates, state, Settings()) == {"gpu-b": []}
    assert preempt_nodes(pod, {"gpu-a": ["u-held-a", "u-never-seen"]}, state, Settings()) == {
        "gpu-a": ["u-held-a", "u-never-seen"]
    }


def test_equally_best_nodes_yield_one_expected_node_for_pods_that_interact():
    state = ClusterState()
    state.replace_nodes([fx.node(f"g{i}", gpus=4) for i in range(4)])
    state.replace_pods([])
    pod = pod_from(fx.pod("p", gpus=1))
    priorities = prioritize_nodes(pod, ["g0", "g1", "g2", "g3"], state)
    got = dict(priorities.pairs())
    assert sorted(got.values()) == [9, 9, 9, 10] and got[priorities.chosen] == 10
    # the same workload (here: the same GPU resource) gets the same pick every time
    assert (
        prioritize_nodes(pod_from(fx.pod("q", gpus=2)), ["g3", "g2", "g1", "g0"], state).chosen
        == priorities.chosen
    )
    # a lone CPU pod keeps its ties: the scheduler's own scores decide among them
    lone = prioritize_nodes(pod_from(fx.pod("c")), ["g0", "g1"], state)
    assert lone.chosen is None and lone.scores.tolist() == [10, 10]


def test_a_reserved_pod_counts_until_the_api_says_where_it_went():
    state = cluster()
    first = pod_from(fx.pod("m-1", gpus=1, deployment="m", uid="u-m1"))
    best = prioritize_nodes(first, ["gpu-b", "gpu-big"], state).chosen
    assert best == "gpu-b"
    state.reserve(first.uid, BoundPod(best, first.demand.gpus, first.group))
    second = pod_from(fx.pod("m-2", gpus=1, deployment="m", uid="u-m2"))
    assert dict(prioritize_nodes(second, ["gpu-b", "gpu-big"], state).pairs()) == {"gpu-b": 10, "gpu-big": 9}
    assert filter_nodes(second, ["gpu-b"], state, Settings()).passed == ["gpu-b"]
    assert dict(state.held("gpu-b")) == {"nvidia.com/gpu": 1}
    # the scheduler bound it elsewhere after all: the watch event moves the count
    state.pod_event("ADDED", fx.pod("m-1", gpus=1, deployment="m", uid="u-m1", node_name="gpu-big"))
    assert dict(state.held("gpu-b")) == {} and dict(state.held("gpu-big")) == {"nvidia.com/gpu": 1}
    state.unreserve("u-m1")  # a bound pod is not a guess any more
    assert dict(state.held("gpu-big")) == {"nvidia.com/gpu": 1}


def test_a_reservation_lapses_when_the_pod_is_placed_again_or_never_bound():
    state = cluster()
    pod = pod_from(fx.pod("p", gpus=4, uid="u-p"))
    state.reserve(pod.uid, BoundPod("gpu-b", pod.demand.gpus, None))
    assert filter_nodes(pod_from(fx.pod("q", gpus=1)), ["gpu-b"], state, Settings()).passed == []
    state.unreserve(pod.uid)
    assert filter_nodes(pod_from(fx.pod("q", gpus=1)), ["gpu-b"], state, Settings()).passed == ["gpu-b"]
    state.reserve(pod.uid, BoundPod("gpu-b", pod.demand.gpus, None), ttl=-1)
    state.expire_reservations()
    assert dict(state.held("gpu-b")) == {}


def test_a_node_with_other_extended_resources_only_takes_cpu_pods_like_any_cpu_node():
    state = ClusterState()
    state.replace_nodes([fx.node("rdma-1", gpus=8, gpu_resource="rdma/hca"), fx.node("gpu-1", gpus=4)])
    state.replace_pods([])
    result = place(fx.pod("p"), ["rdma-1", "gpu-1"], state)
    assert result.passed == ["rdma-1"]
    assert result.failed == {"gpu-1": "gpu-1: GPU node kept for GPU pods; a CPU node fits this CPU-only pod"}
    scores = dict(prioritize_nodes(pod_from(fx.pod("p")), ["rdma-1", "gpu-1"], state).pairs())
    assert scores["rdma-1"] > scores["gpu-1"]  # cpu-node-first, when the filter lets both through
