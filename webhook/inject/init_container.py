"""The `model-init` init container: lays each model (and code) out in the app volume, then exits.

It passes Pod Security `restricted` on its own (non-root numeric user, no privilege escalation, all
capabilities dropped, RuntimeDefault seccomp) and has a read-only root filesystem: it writes only
into the app volume. Its resources are modest and never above the instance type's limits, so the
pod's effective request (the larger of init and app containers) stays the instance type's.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from instance_types.quantity import format_quantity, parse_quantity
from webhook.inject import keys
from webhook.inject.done import Done
from webhook.inject.plan import APP_VOLUME, Choice, Plan
from webhook.inject.podspec import child_list, ensure_named, find
from webhook.inject.problems import FieldDenied, quote

# 65532 is the conventional "nonroot" user of distroless images; any non-zero uid would do.
USER_ID = 65532


def security_context() -> dict[str, Any]:
    """A fresh map each time: the pod we return must share nothing with module state."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsGroup": USER_ID,
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# Copying and unpacking streams; checksums stream. A core and a little memory are plenty.
REQUESTS = {"cpu": Fraction(1, 10), "memory": Fraction(128 * 2**20)}
LIMITS = {"cpu": Fraction(1), "memory": Fraction(2**30)}


def _resources(choice: Choice) -> dict[str, dict[str, str]]:
    """Modest defaults, capped by the instance type's own limits where it has them."""
    caps = choice.instance_type.limits
    spelled = _spelled(caps.get("cpu"), caps.get("memory"))
    return {kind: dict(values) for kind, values in spelled}


@functools.lru_cache(maxsize=256)
def _spelled(
    cpu_cap: str | None, memory_cap: str | None
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    caps = {"cpu": cpu_cap, "memory": memory_cap}
    limits = {
        name: min(value, parse_quantity(caps[name])) if caps[name] is not None else value
        for name, value in LIMITS.items()
    }
    requests = {name: min(value, limits[name]) for name, value in REQUESTS.items()}
    return tuple(
        (
            kind,
            tuple((name, format_quantity(value, binary=name == "memory")) for name, value in values.items()),
        )
        for kind, values in (("requests", requests), ("limits", limits))
    )


def container(choice: Choice) -> dict[str, Any]:
    app_root = choice.config.app_root
    mounts: list[dict[str, Any]] = [{"name": APP_VOLUME, "mountPath": app_root}]
    for model in choice.models:
        where = f"{model.ref.name}/{model.ref.version}"
        mounts.append(
            {"name": model.config_volume, "mountPath": f"{keys.CONFIG_ROOT}/{where}", "readOnly": True}
        )
        source: dict[str, Any] = {
            "name": model.source_volume,
            "mountPath": f"{keys.SOURCE_ROOT}/{where}",
            "readOnly": True,
        }
        sub_path = model.registration.storage.spec.get("subPath")
        if sub_path:
            source["subPath"] = sub_path
        mounts.append(source)
    return {
        "name": keys.INIT_CONTAINER,
        "image": choice.config.init_image,
        "imagePullPolicy": choice.config.init_image_pull_policy,
        "command": [
            "inferplane",
            "model-init",
            "--config",
            keys.CONFIG_ROOT,
            "--source",
            keys.SOURCE_ROOT,
            "--app-root",
            app_root,
        ],
        "resources": _resources(choice),
        "securityContext": security_context(),
        "volumeMounts": mounts,
    }


def add_init_container(pod: dict[str, Any], plan: Plan) -> Done:
    spec = pod["spec"]
    for key in ("containers", "ephemeralContainers"):
        index = find(spec.get(key) or [], keys.INIT_CONTAINER)
        if index is not None:
            raise FieldDenied(
                f"spec.{key}[{index}].name",
                f"the pod already has a container named {quote(keys.INIT_CONTAINER)}; rename it, "
                "inferplane injects its init container under that name",
            )
    init_containers = child_list(spec, "initContainers")
    ok, _ = ensure_named(
        init_containers, plan.choice.fresh(container), owned=keys.INIT_CONTAINER in plan.prior.init_containers
    )
    if not ok:
        raise FieldDenied(
            f"spec.initContainers[{find(init_containers, keys.INIT_CONTAINER)}].name",
            f"the pod already has an init container named {quote(keys.INIT_CONTAINER)}; rename it, "
            "inferplane injects its init container under that name",
        )
    return _DONE


_DONE = Done(owned=MappingProxyType({"init_containers": (keys.INIT_CONTAINER,)}))
