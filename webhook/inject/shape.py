"""Check that the parts of a pod injection reads are shaped like a Pod, before anything reads them.

The apiserver only sends decoded, typed Pods, but `inferplane inject` reads whatever a file holds and
the handler must answer a hostile body with a 400, not a stack trace. Only what the steps touch is
checked; the rest of the pod is passed through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferplane.wording import describe
from webhook.inject.problems import Malformed

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def mapping(parent: Mapping[str, Any], key: str, field: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise Malformed(field, f"expected a map, got {describe(value)}")


def items(parent: Mapping[str, Any], key: str, field: str, *, named: bool = False) -> list[Any]:
    """A list of maps (None and absent read as empty); with `named`, each must have a string name."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(field, f"expected a list, got {describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise Malformed(f"{field}[{index}]", f"expected a map, got {describe(item)}")
        if named and not isinstance(item.get("name"), str):
            raise Malformed(f"{field}[{index}].name", "expected a string name")
    return value


def string_map(parent: Mapping[str, Any], key: str, field: str) -> dict[str, Any]:
    value = mapping(parent, key, field) or {}
    for name, item in value.items():
        if not isinstance(item, str):
            raise Malformed(f"{field}[{name}]", f"expected a string, got {describe(item)}")
    return value


def string(parent: Mapping[str, Any], key: str, field: str) -> str | None:
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Malformed(field, f"expected a string, got {describe(value)}")


def check_pod(pod: Any) -> None:
    """Raise Malformed naming the first field that injection reads and that is not Pod-shaped."""
    if not isinstance(pod, dict):
        raise Malformed("", f"expected a Pod object (a map), got {describe(pod)}")
    metadata = mapping(pod, "metadata", "metadata") or {}
    string_map(metadata, "annotations", "metadata.annotations")
    string_map(metadata, "labels", "metadata.labels")
    for key in ("name", "generateName", "namespace"):
        string(metadata, key, f"metadata.{key}")
    for index, ref in enumerate(items(metadata, "ownerReferences", "metadata.ownerReferences")):
        for key in ("kind", "name"):
            string(ref, key, f"metadata.ownerReferences[{index}].{key}")
    spec = mapping(pod, "spec", "spec")
    if spec is None:
        raise Malformed("spec", "missing; a Pod needs spec.containers")
    if not items(spec, "containers", "spec.containers", named=True):
        raise Malformed("spec.containers", "empty; a Pod needs at least one container")
    for key in CONTAINER_LISTS:
        for index, container in enumerate(items(spec, key, f"spec.{key}", named=True)):
            _check_container(container, f"spec.{key}[{index}]")
    items(spec, "volumes", "spec.volumes", named=True)
    string_map(spec, "nodeSelector", "spec.nodeSelector")
    for index, toleration in enumerate(items(spec, "tolerations", "spec.tolerations")):
        for key in ("key", "operator", "value", "effect"):
            string(toleration, key, f"spec.tolerations[{index}].{key}")
        seconds = toleration.get("tolerationSeconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            raise Malformed(
                f"spec.tolerations[{index}].tolerationSeconds", f"expected a number, got {describe(seconds)}"
            )
    string(spec, "schedulerName", "spec.schedulerName")


def _check_container(container: Mapping[str, Any], field: str) -> None:
    items(container, "env", f"{field}.env", named=True)
    for index, mount in enumerate(items(container, "volumeMounts", f"{field}.volumeMounts")):
        string(mount, "name", f"{field}.volumeMounts[{index}].name")
        string(mount, "mountPath", f"{field}.volumeMounts[{index}].mountPath")
    resources = mapping(container, "resources", f"{field}.resources") or {}
    for key in ("requests", "limits"):
        for name, value in (mapping(resources, key, f"{field}.resources.{key}") or {}).items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise Malformed(
                    f"{field}.resources.{key}[{name}]", f"expected a quantity, got {describe(value)}"
                )
