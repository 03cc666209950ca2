"""Which InstanceType a pod gets, by the name in its `ml.example/instance-type` annotation."""

from __future__ import annotations

from collections.abc import Mapping

from inferplane.errors import Denied
from instance_types.default import DEFAULT_NAME
from instance_types.instance_type import InstanceType

__all__ = ["resolve"]


def resolve(name: str | None, defined: Mapping[str, InstanceType], default: InstanceType) -> InstanceType:
    """The named InstanceType, or the default when `name` is None.

    A CR called `defaultinstancetype` wins over the built-in `default`. An unknown name is a
    denial listing every name that would have worked, so the fix is in the message: the CRs
    sorted, then the default, which always exists.
    """
    wanted = DEFAULT_NAME if name is None else name
    if wanted in defined:
        return defined[wanted]
    if wanted == DEFAULT_NAME:
        return default
    names = ", ".join([*sorted(set(defined) - {DEFAULT_NAME}), DEFAULT_NAME])
    raise Denied(f'instance type "{wanted}" not found; defined: {names}')
