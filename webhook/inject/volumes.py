"""The pod volumes: the app emptyDir model-init fills, and per model its ConfigMap and its storage.

The storage volume comes from `models.storage.volume_source`, the models package's single mapping
from a registration's `storage:` block to a read-only pod volume. Storage kinds that Pod Security
refuses are injected as asked, with a warning naming the profile that will refuse them, because an
edge box in a `privileged` namespace is a legitimate place for hostPath.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from models.storage import volume_source
from webhook.inject.done import Done
from webhook.inject.plan import APP_VOLUME, Choice, ModelPlan, Plan
from webhook.inject.podspec import child_list, ensure_named, find
from webhook.inject.problems import FieldDenied, quote

_POD_SECURITY = {
    "nfs": "Pod Security restricted refuses nfs volumes (use pvc)",
    "flexVolume": "Pod Security restricted refuses flexVolume volumes (use csi or pvc)",
    "hostPath": "Pod Security baseline and restricted refuse hostPath volumes",
    "image": "image volumes need Kubernetes 1.33+ with the ImageVolume feature gate",
}


def desired_volumes(choice: Choice) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": APP_VOLUME, "emptyDir": {}}]
    for model in choice.models:
        volumes.append(_config_volume(model))
        volumes.append({"name": model.source_volume, **volume_source(model.registration.storage)})
    return volumes


def _config_volume(model: ModelPlan) -> dict[str, Any]:
    # 420 (0644) is what the apiserver defaults; writing it ourselves keeps later passes quiet.
    return {
        "name": model.config_volume,
        "configMap": {"name": model.registration.configmap, "defaultMode": 420},
    }


def add_volumes(pod: dict[str, Any], plan: Plan) -> Done:
    volumes = child_list(pod["spec"], "volumes")
    desired: list[dict[str, Any]] = plan.choice.fresh(desired_volumes)
    for volume in desired:
        name = volume["name"]
        ok, _ = ensure_named(volumes, volume, owned=name in plan.prior.volumes)
        if not ok:
            raise FieldDenied(
                f"spec.volumes[{find(volumes, name)}]",
                f"the pod already has a volume named {quote(name)} with different content; "
                "rename it, inferplane injects a volume of that name",
            )
    return Done(plan.choice.once(_warnings), plan.choice.once(_owned))


def _warnings(choice: Choice) -> tuple[str, ...]:
    return tuple(
        f"model {model.ref}: {_POD_SECURITY[model.registration.storage.kind]}"
        for model in choice.models
        if model.registration.storage.kind in _POD_SECURITY
    )


def _owned(choice: Choice) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({"volumes": tuple(volume["name"] for volume in desired_volumes(choice))})
