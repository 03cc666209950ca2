"""One pure function from (pod, catalog, config) to the injected pod or a denial.

`/mutate-pod`, `/validate-workload`, `inferplane inject`, `inferplane lint` and the tests all call
`mutate`; the server and the CLI are thin shells around it (Istio's `inject.go` shape). The steps
run in a fixed order (KServe's one-injector-per-concern shape) on a copy-on-write pod: only the maps
and lists they edit are copied, everything else is shared with the input, which is never modified.
The caller diffs the result against what it received to get the patch, and the diff passes over
every shared part by identity, so a review costs what was injected, not the size of the pod.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from webhook.config import InjectionConfig
from webhook.inject import keys
from webhook.inject.container import prepare_container
from webhook.inject.done import Done
from webhook.inject.init_container import add_init_container
from webhook.inject.placement import apply_placement
from webhook.inject.plan import Choice, Plan, build_plan
from webhook.inject.podspec import child
from webhook.inject.resources import apply_resources
from webhook.inject.router import apply_router_labels
from webhook.inject.scheduler import apply_scheduler
from webhook.inject.shape import check_pod
from webhook.inject.status import record
from webhook.inject.volumes import add_volumes

if TYPE_CHECKING:
    from webhook.catalog import Catalog

STEPS: tuple[Callable[[dict[str, Any], Plan], Done], ...] = (
    add_volumes,
    add_init_container,
    prepare_container,
    apply_resources,
    apply_placement,
    apply_scheduler,
    apply_router_labels,
)


class Mutation(NamedTuple):
    """A tuple rather than a frozen dataclass: one is made per review, and cheaper to make."""

    # The injected pod. It shares what it did not change with the input (never modified): copy it
    # before editing it.
    pod: dict[str, Any]
    warnings: tuple[str, ...]
    audit: Mapping[str, str]  # auditAnnotations: keys without "/" (the apiserver adds the prefix)


def _private(pod: Mapping[str, Any], container: int) -> dict[str, Any]:
    """The pod with private copies of exactly the maps and lists the steps edit in place.

    The steps replace list items and nested maps whole (`items[i] = desired`, `spec["nodeSelector"]
    = wanted`) and edit in place only these: the pod, metadata and its labels and annotations, spec
    and its volumes, initContainers and tolerations, the containers list, and the scoring container
    with its volumeMounts, env and resources. A full deep copy cost ~7 µs of a ~130 µs review in
    process, and made the diff compare every part of the pod; shared parts are skipped by identity.
    `tests/unit/test_webhook_properties.py` checks that no input is ever modified.
    """
    injected = dict(pod)
    metadata = injected["metadata"] = dict(pod["metadata"])  # opted in: metadata is a map
    spec = injected["spec"] = dict(pod["spec"])  # checked: spec is a map with containers
    for parent, names in ((metadata, ("labels", "annotations")), (spec, _SPEC_EDITED)):
        for key in names:
            value = parent.get(key)
            if value is not None:  # a map or a list: check_pod saw to that
                parent[key] = value.copy()
    containers = spec["containers"]
    containers[container] = scoring = dict(containers[container])
    for key in ("volumeMounts", "env", "resources"):
        value = scoring.get(key)
        if value is not None:
            scoring[key] = value.copy()
    return injected


_SPEC_EDITED = ("volumes", "initContainers", "tolerations", "containers")


def _model_names(choice: Choice) -> tuple[str, ...]:
    return tuple(str(model.ref) for model in choice.models)


def opted_in(pod: Mapping[str, Any]) -> bool:
    metadata = pod.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return isinstance(annotations, dict) and keys.MODEL in annotations


def mutate(
    pod: Mapping[str, Any],
    *,
    namespace: str,
    catalog: Catalog,
    config: InjectionConfig,
    workload: str | None = None,
) -> Mutation | None:
    """The injected pod, or None for a pod without `ml.example/model` (never touched).

    Raises FieldDenied (a denial naming the field) or Malformed (not Pod-shaped). `workload` names
    the owning Deployment when injecting a template, for the router's deployment label.
    """
    if not opted_in(pod):
        return None
    check_pod(pod)
    plan, warnings = build_plan(pod, namespace, workload, catalog, config)
    injected = _private(pod, plan.container)
    owned: dict[str, tuple[str, ...]] = {}
    for step in STEPS:
        done = step(injected, plan)
        warnings.extend(done.warnings)
        owned.update(done.owned)
    container = injected["spec"]["containers"][plan.container]["name"]
    models = plan.choice.once(_model_names)
    instance_type = plan.instance_type.name
    annotation = record(models, instance_type, container, tuple(owned.items()))
    child(child(injected, "metadata"), "annotations")[keys.INJECTED] = annotation
    audit = {"models": ",".join(models), "instance-type": instance_type, "container": container}
    return Mutation(injected, tuple(dict.fromkeys(warnings)), audit)
