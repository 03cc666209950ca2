"""Every chart value is typed by values.schema.json and documented in docs/install.md.

helm only validates what the schema describes, and a value nobody can find in the docs is a value
nobody sets right; both drift silently when a value is added to values.yaml alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inferplane"
# Maps whose keys are the user's (resources, selectors, annotations): documented as one value.
FREE_FORM = {"resources", "nodeSelector", "affinity", "podAnnotations", "annotations", "issuerRef"}


def leaves(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and key not in FREE_FORM:
            yield from leaves(value, path)
        else:
            yield path


def schema_at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for key in path.split("."):
        assert node.get("additionalProperties") is False, (
            f"{path}: the schema accepts unknown keys beside {key}"
        )
        node = node["properties"][key]
    return node


VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
PATHS = sorted(leaves(VALUES))


def test_the_walk_sees_the_values_it_should() -> None:
    assert "webhook.failurePolicy" in PATHS and "router.tls.certKey" in PATHS
    assert "webhook.resources" in PATHS and "webhook.resources.requests" not in PATHS
    assert len(PATHS) > 80


@pytest.mark.parametrize("path", PATHS)
def test_value_is_typed_and_described_in_the_schema(path: str) -> None:
    node = schema_at(SCHEMA, path)
    assert {"type", "enum", "anyOf", "const"} & set(node), f"{path} has no type in values.schema.json"
    assert node.get("description") or path.endswith(("maxUnavailable", "enabled")) or "properties" in node, (
        path
    )


def test_every_value_is_in_the_install_guide_table() -> None:
    guide = (REPO / "docs" / "install.md").read_text()
    missing = [path for path in PATHS if f"| `{path}` |" not in guide]
    assert not missing, f"docs/install.md has no row for: {missing}"


def test_the_install_guide_documents_no_value_that_does_not_exist() -> None:
    guide = (REPO / "docs" / "install.md").read_text()
    table = guide.split("## 7. Values", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert sorted(rows) == PATHS
