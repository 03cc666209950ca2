"""Resolve what a pod asks for (models, instance type, scoring container) before anything is edited.

Every lookup that can fail happens here, so a denial is raised before the pod copy is touched and
the steps that follow only apply decisions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from instance_types.instance_type import InstanceType
from models.registration import Registration
from webhook.config import InjectionConfig
from webhook.inject import keys
from webhook.inject.names import dns_label, hashed
from webhook.inject.problems import FieldDenied, annotation_field, at_field, quote
from webhook.inject.refs import ModelRef, check_routing, parse_models, unknown_annotations
from webhook.inject.status import Status, parse_status

if TYPE_CHECKING:
    from webhook.catalog import Catalog

APP_VOLUME = "inferplane-app"


@dataclass(frozen=True)
class ModelPlan:
    ref: ModelRef
    registration: Registration
    config_volume: str  # the registration ConfigMap, mounted into model-init
    source_volume: str  # the storage holding the model's bytes, mounted read-only into model-init


@dataclass(frozen=True)
class Plan:
    namespace: str
    workload: str | None  # the owning Deployment's (...) name when known, for the router labels
    models: tuple[ModelPlan, ...]
    instance_type: InstanceType
    container: int  # index of the scoring container in spec.containers
    config: InjectionConfig
    prior: Status  # what an earlier pass recorded as ours
    entry_script: str | None
    delivers_code: bool


def _volume_names(refs: tuple[ModelRef, ...], kind: str) -> list[str]:
    """Readable names, hashed where two models would otherwise share one (`a-b:c` and `a:b-c`)."""
    names = [dns_label("inferplane", kind, ref.name, ref.version) for ref in refs]
    counts = Counter(names)
    return [
        hashed(name, f"{kind}/{ref.name}/{ref.version}") if counts[name] > 1 else name
        for name, ref in zip(names, refs, strict=True)
    ]


def _scoring_container(containers: list[dict[str, Any]], wanted: str | None, prior: Status) -> int:
    names = [container["name"] for container in containers]
    if wanted is not None:
        if wanted not in names:
            raise FieldDenied(
                annotation_field(keys.CONTAINER),
                f"container {quote(wanted)} named by {keys.CONTAINER} not found; "
                f"containers: {', '.join(names)}",
            )
        return names.index(wanted)
    # A sidecar another webhook put first must not become the scoring container on a later pass.
    return names.index(prior.container) if prior.container in names else 0


def _entry_script(models: list[ModelPlan]) -> str | None:
    scripts = {plan.registration.entry_script: plan.ref for plan in models if plan.registration.entry_script}
    if len(scripts) > 1:
        listed = ", ".join(f"{ref} runs {script}" for script, ref in scripts.items())
        raise FieldDenied(
            annotation_field(keys.MODEL),
            f"models disagree on the entry script ({listed}); only one registration may name one",
        )
    return next(iter(scripts), None)


def build_plan(
    pod: Mapping[str, Any],
    namespace: str,
    workload: str | None,
    catalog: Catalog,
    config: InjectionConfig,
) -> tuple[Plan, list[str]]:
    """The decisions for an opted-in pod, and warnings; raises FieldDenied naming the field."""
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    refs = parse_models(annotations[keys.MODEL])
    warnings = [*unknown_annotations(annotations), *check_routing(annotations)]
    prior, status_warnings = parse_status(annotations.get(keys.INJECTED))
    warnings += status_warnings

    registrations = []
    with at_field(annotation_field(keys.MODEL)):
        for ref in refs:
            registrations.append(catalog.registration(namespace, ref.name, ref.version))
    models = [
        ModelPlan(ref, registration, config_name, source_name)
        for ref, registration, config_name, source_name in zip(
            refs, registrations, _volume_names(refs, "config"), _volume_names(refs, "model"), strict=True
        )
    ]

    wanted_type = annotations.get(keys.INSTANCE_TYPE)
    if wanted_type is not None and not wanted_type.strip():
        raise FieldDenied(
            annotation_field(keys.INSTANCE_TYPE),
            f"annotation {keys.INSTANCE_TYPE} is empty; name an instance type or remove it for the default",
        )
    with at_field(annotation_field(keys.INSTANCE_TYPE)):
        instance_type = catalog.instance_type(wanted_type.strip() if wanted_type else None)

    containers = pod["spec"]["containers"]
    plan = Plan(
        namespace=namespace,
        workload=workload,
        models=tuple(models),
        instance_type=instance_type,
        container=_scoring_container(containers, annotations.get(keys.CONTAINER), prior),
        config=config,
        prior=prior,
        entry_script=_entry_script(models),
        delivers_code=any(plan.registration.code for plan in models),
    )
    return plan, warnings
