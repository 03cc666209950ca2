"""crd.yaml without an apiserver: structural, bounded, and the same rule set as the Python checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from instance_types import validation
from instance_types.crd import CRD_PATH, load_crd
from instance_types.instance_type import API_VERSION, GROUP, KIND, LIST_KIND, VERSION
from instance_types.quantity import format_quantity
from instance_types.rules import RULES, Enforcer

CRD = load_crd()
VERSION_ENTRY = CRD["spec"]["versions"][0]
SCHEMA = VERSION_ENTRY["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]
RESOURCES = SPEC["properties"]["resources"]
QUANTITY = RESOURCES["properties"]["limits"]["additionalProperties"]
TOLERATION = SPEC["properties"]["tolerations"]["items"]
RULE_ID = re.compile(r"^// rule: ([a-z-]+)$", re.MULTILINE)


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path, as the structural-schema rules see them."""
    yield path or ".", schema
    for name, child in schema.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")


def cel_rules() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, node in nodes(SCHEMA):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule


def test_identity() -> None:
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["metadata"]["name"] == f"instancetypes.{GROUP}"
    spec = CRD["spec"]
    assert (spec["group"], spec["scope"]) == (GROUP, "Cluster")
    assert spec["names"]["kind"] == KIND
    assert spec["names"]["listKind"] == LIST_KIND
    assert (spec["names"]["plural"], spec["names"]["singular"]) == ("instancetypes", "instancetype")
    assert spec["names"]["shortNames"] == ["mlit"]
    assert [v["name"] for v in spec["versions"]] == [VERSION]
    assert VERSION_ENTRY["served"] and VERSION_ENTRY["storage"]
    assert f"{GROUP}/{VERSION}" == API_VERSION


def test_every_node_is_typed() -> None:
    """Structural schema rule 1: a type everywhere, except int-or-string nodes."""
    for path, node in nodes(SCHEMA):
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), f"{path} has no type"


def test_junctors_only_hold_types_of_int_or_string() -> None:
    """Structural schema rule 3: the one anyOf allowed is the int-or-string pattern."""
    for path, node in nodes(SCHEMA):
        for junctor in ("anyOf", "allOf", "oneOf", "not"):
            if junctor in node:
                assert junctor == "anyOf" and node.get("x-kubernetes-int-or-string"), path
                assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path


def test_every_map_list_and_string_a_rule_reads_is_bounded() -> None:
    """The CEL cost trap: unbounded input makes the apiserver refuse the CRD."""
    for path, node in nodes(SCHEMA):
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path
        is_string = (node.get("type") == "string" and "enum" not in node) or node.get(
            "x-kubernetes-int-or-string"
        )
        if is_string and path not in (".apiVersion", ".kind"):
            assert "maxLength" in node, path


def test_bounds_match_the_python_checks() -> None:
    assert QUANTITY["maxLength"] == validation.MAX_QUANTITY_LENGTH
    for part in ("requests", "limits"):
        assert RESOURCES["properties"][part]["maxProperties"] == validation.MAX_RESOURCES
        assert RESOURCES["properties"][part]["additionalProperties"] == QUANTITY
    assert SPEC["properties"]["nodeSelector"]["maxProperties"] == validation.MAX_NODE_SELECTOR
    assert (
        SPEC["properties"]["nodeSelector"]["additionalProperties"]["maxLength"] == validation.MAX_LABEL_VALUE
    )
    assert SPEC["properties"]["tolerations"]["maxItems"] == validation.MAX_TOLERATIONS
    props = TOLERATION["properties"]
    assert props["key"]["maxLength"] == validation.MAX_LABEL_KEY
    assert props["value"]["maxLength"] == validation.MAX_LABEL_VALUE
    assert tuple(props["operator"]["enum"]) == validation.OPERATORS
    assert tuple(props["effect"]["enum"]) == validation.EFFECTS
    assert set(props) == set(validation.TOLERATION_FIELDS)
    assert set(SPEC["properties"]) == set(validation.SPEC_FIELDS)
    assert set(RESOURCES["properties"]) == set(validation.RESOURCES_FIELDS)
    assert SCHEMA["required"] == ["spec"]
    assert SPEC["required"] == ["resources"]
    assert RESOURCES["required"] == ["requests", "limits"]


def test_cel_rules_and_python_rules_are_the_same_set() -> None:
    ids: set[str] = set()
    for path, rule in cel_rules():
        found = RULE_ID.findall(rule["rule"])
        assert len(found) == 1, f"{path}: each CEL rule opens with one `// rule: <id>` comment"
        ids.add(found[0])
    assert ids == {rule.id for rule in RULES if rule.enforcer is Enforcer.CEL}


def test_every_cel_rule_has_a_fallback_message() -> None:
    """If a messageExpression fails at run time the apiserver prints `message`, not a CEL dump."""
    for path, rule in cel_rules():
        assert rule.get("message"), path


def test_printer_columns() -> None:
    columns = {c["name"]: c["jsonPath"] for c in VERSION_ENTRY["additionalPrinterColumns"]}
    assert columns == {
        "CPU": ".spec.resources.limits.cpu",
        "Memory": ".spec.resources.limits.memory",
        "GPU": r".spec.resources.limits.nvidia\.com/gpu",
        "NodeSelector": ".spec.nodeSelector",
        "Age": ".metadata.creationTimestamp",
    }


def test_yaml_anchor_is_the_only_copy_of_the_quantity_schema() -> None:
    text = CRD_PATH.read_text()
    assert text.count("x-kubernetes-int-or-string: true") == 1


# What format_quantity writes must pass the CRD's pattern (the pattern is never the stricter side).
@given(st.fractions(max_denominator=10**9), st.booleans())
def test_canonical_quantities_match_the_crd_pattern(value: Any, binary: bool) -> None:
    assert re.fullmatch(QUANTITY["pattern"], format_quantity(value, binary=binary))
