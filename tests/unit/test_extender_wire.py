"""The scheduler's extender JSON: CapitalCase keys in (read without regard to case), canonical keys
out, integer scores, victims echoed back."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from extender import fixtures as fx
from extender import wire
from extender.policy import FilterResult, Priorities, Refusal
from inferplane.errors import BadRequest


def test_keys_are_read_without_regard_to_case():
    body = orjson.dumps({"pod": fx.pod("p", namespace="team-a"), "nodes": None, "nodenames": ["n1"]})
    args = wire.decode_args(body)
    assert (args.pod.namespace, args.pod.name, args.names, args.items) == ("team-a", "p", ["n1"], None)


def test_filter_answer_has_the_canonical_keys_and_null_nodes_when_cache_capable():
    result = FilterResult(
        ["n1"],
        [
            Refusal("busy", False, ["n2", "n4"]),
            Refusal('GPU product "A10"; needs \\ one', True, ["n3"]),
            Refusal("not in the cache", False, ['we"ird'], from_cache=False),
        ],
    )
    assert orjson.loads(wire.encode_filter(result)) == {
        "Nodes": None,
        "NodeNames": ["n1"],
        "FailedNodes": {"n2": "n2: busy", "n4": "n4: busy", 'we"ird': 'we"ird: not in the cache'},
        "FailedAndUnresolvableNodes": {"n3": 'n3: GPU product "A10"; needs \\ one'},
        "Error": "",
    }
    assert orjson.loads(wire.encode_filter(FilterResult([]))) == {
        "Nodes": None,
        "NodeNames": [],
        "FailedNodes": {},
        "FailedAndUnresolvableNodes": {},
        "Error": "",
    }
    error = orjson.loads(wire.encode_filter_error("not yet"))
    assert error["Error"] == "not yet" and error["NodeNames"] is None and error["Nodes"] is None


def test_prioritize_answer_is_a_bare_array_of_integer_scores():
    priorities = Priorities(["a", "b", "c"], np.array([10, 3, 10]), ['odd "name"'])
    decoded = orjson.loads(wire.encode_prioritize(priorities))
    assert sorted(decoded, key=lambda h: h["Host"]) == [
        {"Host": "a", "Score": 10},
        {"Host": "b", "Score": 3},
        {"Host": "c", "Score": 10},
        {"Host": 'odd "name"', "Score": 0},
    ]
    assert all(type(h["Score"]) is int for h in decoded)
    assert wire.encode_prioritize(Priorities([], np.array([], dtype=int), [])) == b"[]"


@pytest.mark.parametrize("meta", [True, False])
def test_preempt_reads_meta_or_full_victims_and_echoes_the_kept_nodes(meta):
    pods = (
        [{"UID": "u1"}, {"UID": "u2"}] if meta else [{"metadata": {"uid": "u1"}}, {"metadata": {"uid": "u2"}}]
    )
    key = "NodeNameToMetaVictims" if meta else "NodeNameToVictims"
    body = orjson.dumps(
        {"Pod": fx.pod("p", gpus=1), key: {"n1": {"Pods": pods, "NumPDBViolations": 1}, "n2": {}}}
    )
    args = wire.decode_preempt(body)
    assert args.victims == {"n1": ["u1", "u2"], "n2": []}
    answer = orjson.loads(wire.encode_preempt(args, {"n1": ["u1", "u2"]}))
    assert answer == {
        "NodeNameToMetaVictims": {"n1": {"Pods": [{"UID": "u1"}, {"UID": "u2"}], "NumPDBViolations": 1}}
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (orjson.dumps({"Pod": fx.pod("p"), "NodeNames": ["a", 3]}), "NodeNames must be a list of node names"),
        (
            orjson.dumps({"Pod": fx.pod("p"), "Nodes": {"items": [{}]}}),
            "every item of Nodes needs metadata.name",
        ),
        (
            orjson.dumps({"Pod": {"metadata": {}, "spec": {"containers": {}}}, "NodeNames": []}),
            "spec.containers",
        ),
        (orjson.dumps({"Pod": {"metadata": {}}, "NodeNames": []}), "Pod needs the objects metadata and spec"),
    ],
)
def test_malformed_bodies_name_what_is_wrong(body, reason):
    with pytest.raises(BadRequest, match=reason):
        wire.decode_args(body)


def test_the_command_refuses_a_missing_kubeconfig_with_exit_2(capsys, tmp_path):
    from inferplane.cli import main

    assert main(["extender", "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
