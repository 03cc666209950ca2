"""The sort-free ranking and the one-sort prioritize encoding give exactly what the plain np.unique
versions give, for any columns of scores."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from extender import wire
from extender.policy import MAX_SCORE, Priorities, dense_rank_scores


def reference_scores(columns: list[np.ndarray], size: int) -> np.ndarray:
    code = np.zeros(size, dtype=np.int64)
    for column in columns:
        levels, rank = np.unique(column, return_inverse=True)
        code = code * len(levels) + rank.reshape(-1)
    levels, rank = np.unique(code, return_inverse=True)
    return np.maximum(MAX_SCORE - (len(levels) - 1 - rank.reshape(-1)), 0)


def reference_prioritize(priorities: Priorities) -> list[dict]:
    names, scores = priorities.names, priorities.scores
    out = []
    for score in np.unique(scores).tolist():
        out.extend({"Host": names[i], "Score": score} for i in np.flatnonzero(scores == score).tolist())
    return out + [{"Host": name, "Score": 0} for name in priorities.unknown]


values = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 1.0, -3.0]),  # few levels: the comparison passes
    st.floats(-1e6, 1e6, allow_nan=False),  # many levels: np.unique
    st.just(float("nan")),
)


@st.composite
def score_columns(draw):
    size = draw(st.integers(0, 60))
    count = draw(st.integers(0, 4))
    columns = []
    for _ in range(count):
        if draw(st.booleans()):
            columns.append(np.array(draw(st.lists(st.integers(-5, 40), min_size=size, max_size=size))))
        else:
            columns.append(np.array(draw(st.lists(values, min_size=size, max_size=size)), dtype=float))
    return columns, size


@settings(max_examples=300, deadline=None)
@given(score_columns())
def test_dense_rank_scores_equal_the_np_unique_ranking(case):
    columns, size = case
    assert dense_rank_scores(columns, size).tolist() == reference_scores(columns, size).tolist()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, MAX_SCORE), max_size=40), st.lists(st.sampled_from(["x", 'odd "y"']), max_size=2)
)
def test_prioritize_encoding_lists_hosts_by_score_in_request_order(scores, unknown):
    priorities = Priorities([f"n{i}" for i in range(len(scores))], np.array(scores, dtype=np.int64), unknown)
    assert orjson.loads(wire.encode_prioritize(priorities)) == reference_prioritize(priorities)
