"""Resolve what a pod asks for (models, instance type, scoring container) before anything is edited.

Every lookup that can fail happens here, so a denial is raised before the pod copy is touched and
the steps that follow only apply decisions.

What the annotations resolve to (registrations, volume names, the instance type) depends only on
the catalog snapshot, the namespace, the annotation values and the config, so it is a `Choice`
kept in the snapshot's memo: every replica of a Deployment after the first reuses it, with the
pieces the steps inject for it (`Choice.fresh`). A new snapshot starts empty, so a changed catalog
is seen by the next review. Denials are not kept: they are rare and must name the catalog as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson

from instance_types.instance_type import InstanceType
from models.registration import Registration
from webhook.config import InjectionConfig
from webhook.inject import keys
from webhook.inject.names import dns_label, hashed
from webhook.inject.problems import FieldDenied, annotation_field, at_field, quote
from webhook.inject.refs import ModelRef, check_routing, parse_models, unknown_annotations
from webhook.inject.status import Status, parse_status

if TYPE_CHECKING:
    from webhook.catalog import Catalog, CatalogView

APP_VOLUME = "inferplane-app"
T = TypeVar("T")


@dataclass(frozen=True)
class ModelPlan:
    ref: ModelRef
    registration: Registration
    config_volume: str  # the registration ConfigMap, mounted into model-init
    source_volume: str  # the storage holding the model's bytes, mounted read-only into model-init


@dataclass(frozen=True)
class Choice:
    """What a pod's model and instance-type annotations resolve to, under one config.

    The same for every pod with the same annotations in one catalog snapshot, and kept there.
    """

    models: tuple[ModelPlan, ...]
    instance_type: InstanceType
    config: InjectionConfig
    entry_script: str | None
    delivers_code: bool
    # The webhook's node selector joined with the instance type's (they agree: checked when chosen).
    node_selector: Mapping[str, str]
    # Why the models cannot be served together (two entry scripts), raised after the pod's own checks.
    conflict: str | None
    _pieces: dict[Hashable, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def once(self, build: Callable[[Choice], T]) -> T:
        """`build(self)`, computed once per choice; for immutable results (tuples, strings)."""
        try:
            return self._pieces[build]  # type: ignore[no-any-return]
        except KeyError:
            value = self._pieces[build] = build(self)
            return value

    def fresh(self, build: Callable[[Choice], Any]) -> Any:
        """`build(self)`: computed once per choice and kept as JSON, so each pod gets its own copy
        (a caller editing the pod it got back cannot change what the next pod gets) at the cost of
        one `orjson.loads`, a fraction of building the maps again."""
        try:
            data = self._pieces[(build, bytes)]
        except KeyError:
            data = self._pieces[(build, bytes)] = orjson.dumps(build(self))
        return orjson.loads(data)


class Plan(NamedTuple):
    """A tuple rather than a frozen dataclass: one is made per review, and cheaper to make."""

    namespace: str
    workload: str | None  # the owning Deployment's (...) name when known, for the router labels
    choice: Choice
    container: int  # index of the scoring container in spec.containers
    prior: Status  # what an earlier pass recorded as ours

    @property
    def models(self) -> tuple[ModelPlan, ...]:
        return self.choice.models

    @property
    def instance_type(self) -> InstanceType:
        return self.choice.instance_type

    @property
    def config(self) -> InjectionConfig:
        return self.choice.config

    @property
    def entry_script(self) -> str | None:
        return self.choice.entry_script

    @property
    def delivers_code(self) -> bool:
        return self.choice.delivers_code


def _volume_names(refs: tuple[ModelRef, ...], kind: str) -> list[str]:
    """Readable names, hashed where two models would otherwise share one (`a-b:c` and `a:b-c`)."""
    names = [dns_label("inferplane", kind, ref.name, ref.version) for ref in refs]
    counts = Counter(names)
    return [
        hashed(name, f"{kind}/{ref.name}/{ref.version}") if counts[name] > 1 else name
        for name, ref in zip(names, refs, strict=True)
    ]


def _scoring_container(containers: list[dict[str, Any]], wanted: str | None, prior: Status) -> int:
    if wanted is None and not prior.container:
        return 0
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


def _entry_script(models: list[ModelPlan]) -> tuple[str | None, str | None]:
    """The entry script and, when the registrations name more than one, why that is refused."""
    scripts = {plan.registration.entry_script: plan.ref for plan in models if plan.registration.entry_script}
    if len(scripts) > 1:
        listed = ", ".join(f"{ref} runs {script}" for script, ref in scripts.items())
        return None, f"models disagree on the entry script ({listed}); only one registration may name one"
    return next(iter(scripts), None), None


def _node_selector(instance_type: InstanceType, config: InjectionConfig) -> Mapping[str, str]:
    """Every model pod's node labels (the operator's) and the instance type's; a key they set to
    different values is a denial naming both, as no node could satisfy the pod."""
    joined = dict(config.node_selector)
    for key, value in instance_type.node_selector.items():
        if joined.get(key, value) != value:
            raise FieldDenied(
                annotation_field(keys.INSTANCE_TYPE),
                f"instance type {quote(instance_type.name)} needs nodeSelector {key}={value}, but the "
                f"webhook places every model pod on {key}={joined[key]} (its node selector setting); "
                "pick another instance type or change that setting",
            )
        joined[key] = value
    return MappingProxyType(joined)


def _choose(
    view: CatalogView, namespace: str, models_value: str, wanted_type: str | None, config: InjectionConfig
) -> Choice:
    """Resolve the annotations against one snapshot; raises FieldDenied naming the annotation."""
    refs = parse_models(models_value)
    registrations = []
    with at_field(annotation_field(keys.MODEL)):
        for ref in refs:
            registrations.append(view.registration(namespace, ref.name, ref.version))
    models = [
        ModelPlan(ref, registration, config_name, source_name)
        for ref, registration, config_name, source_name in zip(
            refs, registrations, _volume_names(refs, "config"), _volume_names(refs, "model"), strict=True
        )
    ]
    if wanted_type is not None and not wanted_type.strip():
        raise FieldDenied(
            annotation_field(keys.INSTANCE_TYPE),
            f"annotation {keys.INSTANCE_TYPE} is empty; name an instance type or remove it for the default",
        )
    with at_field(annotation_field(keys.INSTANCE_TYPE)):
        instance_type = view.instance_type(wanted_type.strip() if wanted_type else None)
    node_selector = _node_selector(instance_type, config)
    entry_script, conflict = _entry_script(models)
    return Choice(
        models=tuple(models),
        instance_type=instance_type,
        config=config,
        entry_script=entry_script,
        delivers_code=any(plan.registration.code for plan in models),
        node_selector=node_selector,
        conflict=conflict,
    )


def build_plan(
    pod: Mapping[str, Any],
    namespace: str,
    workload: str | None,
    catalog: Catalog,
    config: InjectionConfig,
) -> tuple[Plan, list[str]]:
    """The decisions for an opted-in pod, and warnings; raises FieldDenied naming the field."""
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    models_value = annotations[keys.MODEL]
    parse_models(models_value)  # a malformed list is refused before anything else is said
    warnings = [*unknown_annotations(annotations), *check_routing(annotations)]
    prior, status_warnings = parse_status(annotations.get(keys.INJECTED))
    warnings += status_warnings

    view = catalog.view()
    wanted_type = annotations.get(keys.INSTANCE_TYPE)
    key: Hashable = (namespace, models_value, wanted_type, config)
    choice = view.memo.get(key)
    if choice is None:
        choice = _choose(view, namespace, models_value, wanted_type, config)
        view.remember(key, choice)

    container = _scoring_container(pod["spec"]["containers"], annotations.get(keys.CONTAINER), prior)
    if choice.conflict is not None:
        raise FieldDenied(annotation_field(keys.MODEL), choice.conflict)
    plan = Plan(namespace=namespace, workload=workload, choice=choice, container=container, prior=prior)
    return plan, warnings
