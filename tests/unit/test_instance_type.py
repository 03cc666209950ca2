"""InstanceType objects in and out, and every rule's sentence (the table in testdata/cases.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from inferplane.errors import UserError
from instance_types.cases import Case, load_cases
from instance_types.instance_type import InstanceType, InvalidInstanceType, validate_spec
from instance_types.rules import RULES
from instance_types.validation import spec_problems

INVALID, VALID = load_cases()
CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog" / "instancetypes.yaml"

GPU_T4: dict[str, Any] = {
    "apiVersion": "ml.example/v1alpha1",
    "kind": "InstanceType",
    "metadata": {"name": "gpu-t4"},
    "spec": {
        "nodeSelector": {"nvidia.com/gpu.product": "Tesla-T4"},
        "resources": {
            "requests": {"cpu": 2, "memory": "8Gi"},
            "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1},
        },
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def test_from_object_keeps_quantities_as_written() -> None:
    it = InstanceType.from_object(GPU_T4)
    assert it.name == "gpu-t4"
    assert it.requests == {"cpu": "2", "memory": "8Gi"}  # an int in YAML becomes its string
    assert it.limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert it.node_selector == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert it.tolerations == ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    assert not it.builtin


def test_to_object_round_trips() -> None:
    it = InstanceType.from_object(GPU_T4)
    assert InstanceType.from_object(it.to_object()) == it
    minimal = InstanceType(
        "cpu", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"}
    )
    assert "nodeSelector" not in minimal.to_object()["spec"]
    assert "tolerations" not in minimal.to_object()["spec"]


def test_values_cannot_be_changed_behind_the_webhooks_back() -> None:
    it = InstanceType.from_object(GPU_T4)
    with pytest.raises(TypeError):
        it.limits["cpu"] = "64"  # type: ignore[index]
    with pytest.raises(TypeError):
        it.tolerations[0]["effect"] = "NoExecute"  # type: ignore[index]


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.name)
def test_invalid_cases_are_refused_with_their_sentences(case: Case) -> None:
    with pytest.raises(InvalidInstanceType) as err:
        InstanceType.from_object(case.obj)
    assert err.value.problems == case.messages
    assert err.value.name == case.name
    if case.rule != "name":
        assert {p.rule for p in spec_problems(case.obj["spec"])} == {case.rule}


@pytest.mark.parametrize("case", VALID, ids=lambda case: case.name)
def test_valid_cases_are_accepted(case: Case) -> None:
    assert validate_spec(case.obj["spec"]) == []
    InstanceType.from_object(case.obj)


def test_every_rule_has_a_bad_example() -> None:
    assert {rule.id for rule in RULES} == {case.rule for case in INVALID}


def test_all_problems_are_reported_at_once() -> None:
    spec = {
        "resources": {
            "requests": {"cpu": "2", "nvidia.com/gpu": 1},
            "limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "0.5"},
        }
    }
    assert validate_spec(spec) == [
        "spec.resources.requests.memory is required, e.g. memory: 1Gi",
        "spec.resources.requests.nvidia.com/gpu is not allowed; "
        "GPUs and other extended resources go in spec.resources.limits only",
        "spec.resources.limits.nvidia.com/gpu (0.5) must be a whole number of at least 1",
        "spec.resources.requests.cpu (2) must not exceed spec.resources.limits.cpu (1)",
    ]


def test_message_names_the_object() -> None:
    bad = {**GPU_T4, "spec": {**GPU_T4["spec"], "tolerations": "all"}}
    with pytest.raises(InvalidInstanceType) as err:
        InstanceType.from_object(bad)
    assert (
        str(err.value)
        == 'InstanceType "gpu-t4" is invalid: spec.tolerations must be a list of tolerations, not a string'
    )
    assert isinstance(err.value, UserError)


def test_several_problems_are_listed_one_per_line() -> None:
    bad = {**GPU_T4, "spec": {"resources": {"requests": {}, "limits": {"cpu": "1", "memory": "1Gi"}}}}
    with pytest.raises(InvalidInstanceType) as err:
        InstanceType.from_object(bad)
    assert str(err.value) == (
        'InstanceType "gpu-t4" is invalid:\n'
        "* spec.resources.requests.cpu is required, e.g. cpu: 500m\n"
        "* spec.resources.requests.memory is required, e.g. memory: 1Gi"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "Deployment"}, "expected apiVersion: ml.example/v1alpha1 and kind: InstanceType, got"),
        ({"apiVersion": "ml.example/v1"}, "got apiVersion: ml.example/v1 and kind: InstanceType"),
        ({"apiVersion": "amlarc.azureml.com/v1alpha1"}, "is Azure ML's; use apiVersion: ml.example/v1alpha1"),
        ({"metadata": {}}, "metadata.name is required"),
        ({"spec": None}, "spec must be an object with resources, not empty \\(null\\)"),
    ],
)
def test_identity_problems(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInstanceType, match=message.replace(".", r"\.")):
        InstanceType.from_object({**GPU_T4, **changes})


def test_missing_spec() -> None:
    obj = {key: value for key, value in GPU_T4.items() if key != "spec"}
    with pytest.raises(InvalidInstanceType, match="spec is required"):
        InstanceType.from_object(obj)


@pytest.mark.parametrize(
    ("spec", "called"), [(None, "empty (null)"), ([], "a list"), ("x", "a string"), (3, "a number (3)")]
)
def test_validate_spec_survives_any_input(spec: Any, called: str) -> None:
    assert validate_spec(spec) == [f"spec must be an object with resources, not {called}"]


def test_example_catalog_is_valid() -> None:
    document = yaml.safe_load(CATALOG.read_text())
    assert document["kind"] == "List"  # kubectl cannot apply InstanceTypeList
    names = [InstanceType.from_object(item).name for item in document["items"]]
    assert names == ["cpu-small", "cpu-large", "gpu-t4", "gpu-a100"]
    by_name = {item["metadata"]["name"]: InstanceType.from_object(item) for item in document["items"]}
    assert by_name["cpu-small"].requests == {"cpu": "500m", "memory": "1Gi"}
    assert by_name["cpu-small"].limits == {"cpu": "1", "memory": "2Gi"}
    assert by_name["gpu-t4"].limits["nvidia.com/gpu"] == "1"
    assert by_name["gpu-a100"].limits["nvidia.com/gpu"] == "2"


def test_sizes_are_bounded_like_the_crd() -> None:
    spec = {
        "nodeSelector": {f"k{i}": "v" for i in range(33)},
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "1Gi", **{f"example.com/device-{i}": 1 for i in range(15)}},
        },
        "tolerations": [{"operator": "Exists"}] * 33,
    }
    assert validate_spec(spec) == [
        "spec.nodeSelector has 33 entries; at most 32 are allowed",
        "spec.resources.limits has 17 entries; at most 16 are allowed",
        "spec.tolerations has 33 entries; at most 32 are allowed",
    ]
