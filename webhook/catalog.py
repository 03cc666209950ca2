"""What the webhook knows: InstanceTypes and model registrations. (Interface stub.)

Fed either from files (`--catalog DIR`, the offline CLI) or by list+watch from the cluster; reads never
touch the network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instance_types.instance_type import InstanceType
from models.registration import Registration


class Catalog:
    def put(self, obj: Mapping[str, Any]) -> None:
        """Add or replace an InstanceType or a registration ConfigMap (other objects are ignored)."""
        raise NotImplementedError

    def remove(self, obj: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def replace_all(self, kind: str, objs: list[Mapping[str, Any]]) -> None:
        """Replace every object of `kind` ("InstanceType" or "ConfigMap") at once (a relist)."""
        raise NotImplementedError

    def instance_type(self, name: str | None) -> InstanceType:
        """The named InstanceType, or the default for None; raises Denied naming what exists."""
        raise NotImplementedError

    def registration(self, namespace: str, name: str, version: str) -> Registration:
        """Raises Denied naming the registrations that exist, or the ConfigMap and its parse error."""
        raise NotImplementedError

    @classmethod
    def from_dir(cls, path: str) -> Catalog:
        """Every YAML file in `path`; raises UserError naming the file and document that is bad."""
        raise NotImplementedError
