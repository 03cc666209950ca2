"""The append-only diff: minimal ops that apply to exactly the object received."""

from __future__ import annotations

import base64
import json

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.patch import diff, encode


def test_equal_objects_give_no_ops() -> None:
    pod = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    assert diff(pod, json.loads(json.dumps(pod))) == []


def test_missing_parent_is_added_whole_and_existing_parent_gets_a_key() -> None:
    old = {"metadata": {"labels": {"app": "x"}}}
    new = {"metadata": {"labels": {"app": "x", "ml.example/endpoint": "iris"}, "annotations": {"k": "v"}}}
    assert diff(old, new) == [
        {"op": "add", "path": "/metadata/labels/ml.example~1endpoint", "value": "iris"},
        {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
    ]


def test_pointer_escapes_tilde_before_slash() -> None:
    assert diff({}, {"a~/b": 1}) == [{"op": "add", "path": "/a~0~1b", "value": 1}]


def test_lists_are_appended_with_dash_and_edited_at_the_same_index() -> None:
    old = {"volumes": [{"name": "a", "emptyDir": {}}]}
    new = {"volumes": [{"name": "a", "emptyDir": {"medium": "Memory"}}, {"name": "b"}]}
    assert diff(old, new) == [
        {"op": "add", "path": "/volumes/0/emptyDir/medium", "value": "Memory"},
        {"op": "add", "path": "/volumes/-", "value": {"name": "b"}},
    ]


def test_a_bool_turned_number_is_a_change() -> None:
    assert diff({"x": True}, {"x": 1}) == [{"op": "replace", "path": "/x", "value": 1}]


def test_python_equal_but_json_different_values_deep_inside_are_changes() -> None:
    """Python calls `[True] == [1]` and `{"a": 1} == {"a": 1.0}` equal; JSON does not."""
    old = {"spec": {"args": [True], "limits": {"cpu": 1}}}
    new = {"spec": {"args": [1], "limits": {"cpu": 1.0}}}
    assert diff(old, new) == [
        {"op": "replace", "path": "/spec/args/0", "value": 1},
        {"op": "replace", "path": "/spec/limits/cpu", "value": 1.0},
    ]
    assert diff(old, {"spec": {"args": [True], "limits": {"cpu": 1}}}) == []


def test_removed_key_and_shrunk_list() -> None:
    ops = diff({"a": 1, "b": [1, 2]}, {"b": [1]})
    assert ops == [{"op": "remove", "path": "/a"}, {"op": "replace", "path": "/b", "value": [1]}]


def test_encode_is_standard_base64_of_compact_json() -> None:
    ops = [{"op": "add", "path": "/spec/replicas", "value": 3}]
    assert base64.b64decode(encode(ops)) == b'[{"op":"add","path":"/spec/replicas","value":3}]'


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text("ab/~", max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_any_diff_applies_to_the_old_object_and_yields_the_new(old: object, new: object) -> None:
    assert jsonpatch.apply_patch(old, diff(old, new)) == new
