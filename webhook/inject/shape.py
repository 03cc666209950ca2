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


# The helpers take the parent's path (`at`, "" or ending in "." or "]") and spell a field's full
# path only when it is wrong: formatting ~15 paths for a pod that is fine cost ~1 µs a review.


def mapping(parent: Mapping[str, Any], key: str, at: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise Malformed(at + key, f"expected a map, got {describe(value)}")


def items(parent: Mapping[str, Any], key: str, at: str, *, named: bool = False) -> list[Any]:
    """A list of maps (None and absent read as empty); with `named`, each must have a string name."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(at + key, f"expected a list, got {describe(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise Malformed(f"{at}{key}[{index}]", f"expected a map, got {describe(item)}")
        if named and not isinstance(item.get("name"), str):
            raise Malformed(f"{at}{key}[{index}].name", "expected a string name")
    return value


def string_map(parent: Mapping[str, Any], key: str, at: str) -> dict[str, Any]:
    value = mapping(parent, key, at) or {}
    for name, item in value.items():
        if not isinstance(item, str):
            raise Malformed(f"{at}{key}[{name}]", f"expected a string, got {describe(item)}")
    return value


def string(parent: Mapping[str, Any], key: str, at: str) -> str | None:
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Malformed(at + key, f"expected a string, got {describe(value)}")


def check_pod(pod: Any) -> None:
    """Raise Malformed naming the first field that injection reads and that is not Pod-shaped."""
    if not isinstance(pod, dict):
        raise Malformed("", f"expected a Pod object (a map), got {describe(pod)}")
    metadata = mapping(pod, "metadata", "") or {}
    string_map(metadata, "annotations", "metadata.")
    string_map(metadata, "labels", "metadata.")
    for key in ("name", "generateName", "namespace"):
        string(metadata, key, "metadata.")
    for index, ref in enumerate(items(metadata, "ownerReferences", "metadata.")):
        where = f"metadata.ownerReferences[{index}]."
        for key in ("kind", "name"):
            string(ref, key, where)
    spec = mapping(pod, "spec", "")
    if spec is None:
        raise Malformed("spec", "missing; a Pod needs spec.containers")
    if not items(spec, "containers", "spec.", named=True):
        raise Malformed("spec.containers", "empty; a Pod needs at least one container")
    for key in CONTAINER_LISTS:
        for index, container in enumerate(items(spec, key, "spec.", named=True)):
            _check_container(container, f"spec.{key}[{index}].")
    items(spec, "volumes", "spec.", named=True)
    string_map(spec, "nodeSelector", "spec.")
    for index, toleration in enumerate(items(spec, "tolerations", "spec.")):
        where = f"spec.tolerations[{index}]."
        for key in ("key", "operator", "value", "effect"):
            string(toleration, key, where)
        seconds = toleration.get("tolerationSeconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            raise Malformed(
                f"spec.tolerations[{index}].tolerationSeconds", f"expected a number, got {describe(seconds)}"
            )
    string(spec, "schedulerName", "spec.")


def _check_container(container: Mapping[str, Any], at: str) -> None:
    items(container, "env", at, named=True)
    for index, mount in enumerate(items(container, "volumeMounts", at)):
        where = f"{at}volumeMounts[{index}]."
        string(mount, "name", where)
        string(mount, "mountPath", where)
    resources = mapping(container, "resources", at) or {}
    within = f"{at}resources."
    for key in ("requests", "limits"):
        for name, value in (mapping(resources, key, within) or {}).items():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise Malformed(f"{at}resources.{key}[{name}]", f"expected a quantity, got {describe(value)}")
