"""Small helpers over the private pod copy that the steps edit."""

from __future__ import annotations

from typing import Any


def child(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """`parent[key]` as a map, created when absent or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def child_list(parent: dict[str, Any], key: str) -> list[Any]:
    """`parent[key]` as a list, created when absent or null."""
    value = parent.get(key)
    if not isinstance(value, list):
        value = parent[key] = []
    return value


def find(items: list[dict[str, Any]], name: str) -> int | None:
    """Index of the first item named `name`."""
    for index, item in enumerate(items):
        if item.get("name") == name:
            return index
    return None


def covers(existing: Any, desired: Any) -> bool:
    """Whether `existing` already holds everything `desired` says, extra fields allowed.

    The apiserver defaults fields in what we injected (a configMap volume's `defaultMode`, a
    container's `terminationMessagePath`) before a later pass sees it; those additions must not make
    us rewrite our own item, or a reinvocation would never reach an empty patch.

    Lists of objects (volumeMounts, env, ports) may likewise hold items others added: when our
    webhook changes a pod the apiserver re-runs its own admission plugins, and the ServiceAccount
    plugin then mounts its token into our model-init as into every container. Ours are covered when
    each appears, in order; replacing the list would strip the plugin's mount on reinvocation.
    Lists of scalars (a command, capabilities) must match exactly.
    """
    if isinstance(desired, dict):
        return isinstance(existing, dict) and all(
            key in existing and covers(existing[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list) and desired and all(isinstance(item, dict) for item in desired):
        remaining = iter(existing) if isinstance(existing, list) else iter(())
        return all(any(covers(item, wanted) for item in remaining) for wanted in desired)
    if isinstance(desired, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(desired)
            and all(covers(e, d) for e, d in zip(existing, desired, strict=True))
        )
    return type(existing) is type(desired) and existing == desired


def ensure_named(
    items: list[dict[str, Any]], desired: dict[str, Any], owned: bool
) -> tuple[bool, dict[str, Any] | None]:
    """Put `desired` into `items` by name. Returns (ok, conflicting item).

    Absent: appended. Present and already covering `desired`: left as it is. Present, different and
    ours: replaced in place, at the same index, so the patch never reorders anything. Present,
    different and not ours: nothing changes and the caller refuses with the conflicting item.
    """
    index = find(items, desired["name"])
    if index is None:
        items.append(desired)
        return True, None
    if covers(items[index], desired):
        return True, None
    if owned:
        items[index] = desired
        return True, None
    return False, items[index]
