"""The InstanceType value: what the webhook writes into a pod that names it.

Quantities stay the strings the user wrote (`"1.5Gi"` is not rewritten to `"1536Mi"`), because
they go into pods as written and a person comparing the pod with the InstanceType should see the
same text; comparisons parse them exactly (instance_types.quantity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from inferplane.errors import UserError
from instance_types.validation import name_problems, spec_problems, validate_spec

GROUP = "ml.example"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InstanceType"
LIST_KIND = "InstanceTypeList"
# Azure ML's group for the same kind: files written for it are recognised and pointed here.
AZURE_API_VERSION = "amlarc.azureml.com/v1alpha1"

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "LIST_KIND",
    "VERSION",
    "InstanceType",
    "InvalidInstanceType",
    "validate_spec",
]


class InvalidInstanceType(UserError):
    """An InstanceType that breaks a rule; the message names the object, the field and the fix."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = tuple(problems)
        if len(problems) == 1:
            text = f'InstanceType "{name}" is invalid: {problems[0]}'
        else:
            text = f'InstanceType "{name}" is invalid:\n' + "\n".join(f"* {p}" for p in problems)
        super().__init__(text)


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class InstanceType:
    name: str
    node_selector: Mapping[str, str] = field(default_factory=dict)
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    builtin: bool = False

    def __post_init__(self) -> None:
        # Read-only views: one InstanceType is shared by every request the webhook serves.
        object.__setattr__(self, "node_selector", _frozen(self.node_selector))
        object.__setattr__(self, "requests", _frozen(self.requests))
        object.__setattr__(self, "limits", _frozen(self.limits))
        object.__setattr__(self, "tolerations", tuple(_frozen(t) for t in self.tolerations))

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> InstanceType:
        """Build from an `InstanceType` object as applied to a cluster; raises InvalidInstanceType."""
        metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        label = name if isinstance(name, str) and name else "(unnamed)"
        if not isinstance(obj, Mapping):
            raise InvalidInstanceType(label, [f"an InstanceType must be an object, not {type(obj).__name__}"])
        identity = _identity_problem(obj)
        if identity:
            raise InvalidInstanceType(label, [identity])
        problems = [p.message for p in name_problems(name)]
        if "spec" not in obj:
            problems.append(
                "spec is required, with resources.requests and resources.limits for cpu and memory"
            )
        else:
            problems += [p.message for p in spec_problems(obj["spec"])]
        if problems:
            raise InvalidInstanceType(label, problems)
        spec = obj["spec"]
        resources = spec["resources"]
        return cls(
            name=name,  # type: ignore[arg-type]  # checked by name_problems
            node_selector=dict(spec.get("nodeSelector") or {}),
            requests={k: str(v) for k, v in resources["requests"].items()},
            limits={k: str(v) for k, v in resources["limits"].items()},
            tolerations=tuple(spec.get("tolerations") or ()),
        )

    def to_object(self) -> dict[str, Any]:
        """The object as `kubectl apply` takes it; `from_object(x.to_object()) == x` for CRs."""
        spec: dict[str, Any] = {}
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        spec["resources"] = {"requests": dict(self.requests), "limits": dict(self.limits)}
        if self.tolerations:
            spec["tolerations"] = [dict(t) for t in self.tolerations]
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": self.name}, "spec": spec}


def _identity_problem(obj: Mapping[str, Any]) -> str | None:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version == AZURE_API_VERSION and kind == KIND:
        return f"apiVersion {AZURE_API_VERSION} is Azure ML's; use apiVersion: {API_VERSION}"
    if api_version != API_VERSION or kind != KIND:
        return (
            f"expected apiVersion: {API_VERSION} and kind: {KIND}, "
            f"got apiVersion: {api_version} and kind: {kind}"
        )
    return None
