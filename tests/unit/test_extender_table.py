"""`NodeTable.rows` remembers the rows of name lists it was asked for; whatever happens to the nodes
in between, an answer from memory equals a fresh lookup (a stale row would place a pod elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender import fixtures as fx
from extender.config import Settings
from extender.parse import node_from, pod_from
from extender.policy import filter_nodes
from extender.state import ClusterState
from extender.table import NO_ROW, NodeTable

NAMES = [f"n{i}" for i in range(6)]


def fresh(table: NodeTable, names: list[str]) -> list[int]:
    return [table.row_of.get(name, NO_ROW) for name in names]


def put(table: NodeTable, name: str, gpus: int = 0) -> None:
    table.put(node_from(fx.node(name, gpus=gpus)), {})


steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(NAMES)),
        st.tuples(st.just("remove"), st.sampled_from(NAMES)),
        st.tuples(st.just("rows"), st.lists(st.sampled_from(NAMES), max_size=8)),
        st.tuples(st.just("rows"), st.sampled_from([NAMES, NAMES[::-1], NAMES[:3]])),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_rows_from_memory_equal_a_fresh_lookup_after_any_node_changes(sequence):
    table = NodeTable()
    for name in NAMES[:3]:
        put(table, name)
    for step, arg in sequence:
        if step == "put":
            put(table, arg)
        elif step == "remove":
            table.remove(arg)
        else:
            for _ in range(2):  # the second call is answered from memory unless nodes changed
                rows = table.rows(list(arg))
                assert rows.tolist() == fresh(table, arg)
                assert [table.nodes[row].name for row in rows.tolist() if row != NO_ROW] == [
                    name for name in arg if name in table.row_of
                ]
    for name, row in table.row_of.items():  # the FailedNodes entry rendered for each row
        assert table.name_pairs[row] == f'"{name}":"{name}'


def test_a_reused_row_is_not_served_from_memory():
    table = NodeTable()
    for name in ("a", "b"):
        put(table, name)
    names = ["a", "b", "c"]
    assert table.rows(names).tolist() == [0, 1, NO_ROW]
    table.remove("a")
    put(table, "c")  # takes the row "a" had
    assert table.rows(names).tolist() == [NO_ROW, 1, 0]
    assert table.rows(list(names)).tolist() == [NO_ROW, 1, 0]


def test_the_callers_list_changing_later_does_not_change_what_is_remembered():
    table = NodeTable()
    for name in ("a", "b"):
        put(table, name)
    names = ["a", "b"]
    table.rows(names)
    names[0] = "b"
    assert table.rows(names).tolist() == [1, 1]
    assert table.rows(["a", "b"]).tolist() == [0, 1]


def test_remembered_rows_cannot_be_written_through():
    table = NodeTable()
    put(table, "a")
    rows = table.rows(["a"])
    with pytest.raises(ValueError):
        rows[0] = 5
    assert table.rows(["a"]).tolist() == [0]


def test_filter_with_the_same_names_follows_nodes_that_change_between_requests():
    state = ClusterState()
    state.replace_nodes([fx.node("cpu-1"), fx.node("gpu-1", gpus=8, product="H100")])
    state.replace_pods([])
    pod = pod_from(fx.pod("p", gpus=1))
    names = ["cpu-1", "gpu-1", "gpu-2"]
    assert filter_nodes(pod, list(names), state, Settings()).passed == ["gpu-1"]
    state.node_event("DELETED", fx.node("gpu-1", gpus=8, product="H100"))
    state.node_event("ADDED", fx.node("gpu-2", gpus=8, product="H100"))  # reuses gpu-1's row
    result = filter_nodes(pod, list(names), state, Settings())
    assert result.passed == ["gpu-2"]
    assert "gpu-1" in result.failed
    state.node_event("ADDED", fx.node("gpu-1", gpus=8, product="H100"))
    assert filter_nodes(pod, list(names), state, Settings()).passed == ["gpu-1", "gpu-2"]
    assert np.array_equal(state.table.rows(names), [state.table.row_of.get(n, NO_ROW) for n in names])
