"""The shared table of good and bad InstanceTypes (testdata/cases.yaml), as objects.

The unit tests run it through the Python validation and the apiserver's own code (crdcheck); the
e2e test applies it to a real control plane. One table, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from instance_types.instance_type import API_VERSION, KIND

CASES_PATH = Path(__file__).with_name("testdata") / "cases.yaml"


@dataclass(frozen=True)
class Case:
    name: str
    obj: dict[str, Any]
    rule: str | None = None  # None: a valid object
    messages: tuple[str, ...] = ()
    pruned_by_apiserver: bool = False

    def cel_sentences(self) -> tuple[str, ...]:
        """The messages as a CEL rule writes them: a toleration item's rule cannot know its index,
        so its sentence is the part after `spec.tolerations[i]: ` (the apiserver prints the path
        itself, in front of `Invalid value: "object": `)."""
        return tuple(_after_item_path(message) for message in self.messages)


def _after_item_path(message: str) -> str:
    path, sep, sentence = message.partition("]: ")
    return sentence if sep and path.startswith("spec.tolerations[") else message


def _spec(base: dict[str, Any], spec: dict[str, Any], replace: bool) -> dict[str, Any]:
    """The case's spec over the base, replacing whole requests/limits maps so a case can drop a key."""
    if replace:
        return spec
    merged = {**base, **spec}
    merged["resources"] = {**base["resources"], **spec.get("resources", {})}
    return merged


def _object(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


def load_cases(path: Path = CASES_PATH) -> tuple[list[Case], list[Case]]:
    """(invalid, valid) cases."""
    table = yaml.safe_load(path.read_text())
    base = table["base"]
    invalid = [
        Case(
            name=entry["name"],
            obj=_object(entry["name"], _spec(base, entry["spec"], entry.get("replace", False))),
            rule=entry["rule"],
            messages=tuple(entry["messages"]),
            pruned_by_apiserver=entry.get("apiserver") == "pruned",
        )
        for entry in table["invalid"]
    ]
    valid = [
        Case(entry["name"], _object(entry["name"], _spec(base, entry["spec"], False)))
        for entry in table["valid"]
    ]
    return invalid, valid
