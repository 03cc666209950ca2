"""Picking an InstanceType by name, the built-in default, and which resources count as GPUs."""

from __future__ import annotations

import pytest

from inferplane.errors import Denied
from instance_types.default import DEFAULT_NAME, builtin_default
from instance_types.instance_type import InstanceType, InvalidInstanceType
from instance_types.resolve import resolve
from instance_types.resource_names import is_container_resource, is_extended_resource, is_native_resource

RESOURCES = {"cpu": "1", "memory": "1Gi"}
CPU_SMALL = InstanceType("cpu-small", requests=RESOURCES, limits=RESOURCES)
GPU_A100 = InstanceType("gpu-a100", requests=RESOURCES, limits={**RESOURCES, "nvidia.com/gpu": "2"})
DEFINED = {"gpu-a100": GPU_A100, "cpu-small": CPU_SMALL}
DEFAULT = builtin_default()


def test_builtin_default() -> None:
    assert DEFAULT.name == DEFAULT_NAME == "defaultinstancetype"
    assert DEFAULT.requests == DEFAULT.limits == {"cpu": "600m", "memory": "1536Mi"}
    assert DEFAULT.builtin
    assert not DEFAULT.node_selector and not DEFAULT.tolerations


def test_builtin_default_takes_the_operators_numbers() -> None:
    default = builtin_default(cpu="2", memory="4Gi")
    assert default.requests == default.limits == {"cpu": "2", "memory": "4Gi"}


@pytest.mark.parametrize(("cpu", "memory"), [("0", "1Gi"), ("1", "lots"), ("-1", "1Gi")])
def test_builtin_default_refuses_bad_numbers(cpu: str, memory: str) -> None:
    with pytest.raises(InvalidInstanceType, match='InstanceType "defaultinstancetype" is invalid'):
        builtin_default(cpu=cpu, memory=memory)


def test_resolve_by_name() -> None:
    assert resolve("gpu-a100", DEFINED, DEFAULT) is GPU_A100


def test_no_name_means_the_default() -> None:
    assert resolve(None, DEFINED, DEFAULT) is DEFAULT
    assert resolve(DEFAULT_NAME, DEFINED, DEFAULT) is DEFAULT


def test_a_cr_named_defaultinstancetype_overrides_the_builtin() -> None:
    custom = InstanceType(DEFAULT_NAME, requests=RESOURCES, limits=RESOURCES)
    defined = {**DEFINED, DEFAULT_NAME: custom}
    assert resolve(None, defined, DEFAULT) is custom
    assert resolve(DEFAULT_NAME, defined, DEFAULT) is custom


def test_unknown_name_is_denied_naming_what_exists() -> None:
    with pytest.raises(Denied) as err:
        resolve("gpu-l", DEFINED, DEFAULT)
    assert (
        str(err.value) == 'instance type "gpu-l" not found; defined: cpu-small, gpu-a100, defaultinstancetype'
    )


def test_denial_lists_the_default_once_even_when_it_is_a_cr() -> None:
    defined = {DEFAULT_NAME: DEFAULT, "b": CPU_SMALL, "a": CPU_SMALL}
    with pytest.raises(Denied, match=r"defined: a, b, defaultinstancetype$"):
        resolve("c", defined, DEFAULT)
    with pytest.raises(Denied, match=r'"x" not found; defined: defaultinstancetype$'):
        resolve("x", {}, DEFAULT)


@pytest.mark.parametrize(
    "name",
    ["nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915", "nvidia.com/mig-1g.5gb", "example.com/fpga"],
)
def test_device_plugin_resources_are_extended(name: str) -> None:
    assert is_extended_resource(name) and is_container_resource(name)
    assert not is_native_resource(name)


@pytest.mark.parametrize(
    "name",
    [
        "cpu",
        "memory",
        "ephemeral-storage",
        "hugepages-2Mi",
        "kubernetes.io/something",
        "requests.nvidia.com/gpu",
    ],
)
def test_native_resources_are_not_extended(name: str) -> None:
    assert not is_extended_resource(name)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("cpu", True),
        ("hugepages-1Gi", True),
        ("hugepages-big", False),
        ("gpu", False),  # no domain: neither standard nor extended
        ("nvidia.com/", False),
        ("Nvidia.com/gpu", False),  # the domain must be lowercase
        ("nvidia.com/gpu/x", False),
        ("a" * 245 + "/gpu", False),  # "requests." + prefix would pass 253
        ("a" * 244 + "/gpu", True),
        ("nvidia.com/" + "g" * 64, False),
        ("nvidia.com/" + "g" * 63, True),
    ],
)
def test_container_resource_names(name: str, ok: bool) -> None:
    assert is_container_resource(name) is ok
