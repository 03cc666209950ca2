"""The InstanceType value and its validation. (Interface stub: the instance_types owner fills it in.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inferplane.errors import UserError

GROUP = "ml.example"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InstanceType"
LIST_KIND = "InstanceTypeList"


class InvalidInstanceType(UserError):
    """An InstanceType that breaks a rule; the message names the object, the field and the fix."""


@dataclass(frozen=True)
class InstanceType:
    name: str
    node_selector: Mapping[str, str] = field(default_factory=dict)
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    builtin: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> InstanceType:
        """Build from an `InstanceType` object as applied to a cluster; raises InvalidInstanceType."""
        raise NotImplementedError

    def to_object(self) -> dict[str, Any]:
        raise NotImplementedError


def validate_spec(spec: Mapping[str, Any]) -> list[str]:
    """Every rule the CRD's schema and CEL rules enforce, with the same messages; [] when valid."""
    raise NotImplementedError
