"""Workloads (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs) and bare Pods.

A workload's pod template is injected exactly as its pods will be: the template becomes a Pod, goes
through `webhook.mutate`, and comes back. So `/validate-workload` surfaces at `kubectl apply` time
every denial the pods would get, and `inferplane inject` prints what the pods will look like.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from webhook.config import InjectionConfig
from webhook.inject import keys
from webhook.inject.problems import FieldDenied, Malformed
from webhook.mutate import mutate

if TYPE_CHECKING:
    from webhook.catalog import Catalog

# kind -> where its pod template lives
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
POD = "Pod"
INJECTABLE = (POD, *TEMPLATE_PATHS)


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    field: str  # relative to the object: "spec.template.metadata.annotations[ml.example/model]"
    message: str
    reference: bool = False  # an unknown model or instance type, an invalid registration
    # A warning for the webhook (it cannot be sure), an error for `inferplane lint` (it exists to be).
    strict: bool = False

    def line(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True)
class Checked:
    obj: dict[str, Any]  # the injected object; the input object itself when nothing applies
    findings: tuple[Finding, ...]

    @property
    def denied(self) -> Finding | None:
        return next((f for f in self.findings if f.severity == "error"), None)


def describe(obj: Mapping[str, Any], namespace: str) -> str:
    """`Deployment team-a/iris-blue`, how every message names an object."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = metadata.get("name") or metadata.get("generateName") or "<unnamed>"
    return f"{obj.get('kind')} {metadata.get('namespace') or namespace}/{name}"


def template_of(obj: Mapping[str, Any]) -> Any:
    node: Any = obj
    for key in TEMPLATE_PATHS[obj["kind"]]:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _misplaced(obj: Mapping[str, Any], template: Mapping[str, Any]) -> list[Finding]:
    """`ml.example/*` on the workload itself does nothing; the pods only see the template's."""
    own = _annotations(obj)
    in_template = _annotations(template)
    where = ".".join(TEMPLATE_PATHS[obj["kind"]])
    return [
        Finding(
            "warning",
            f"metadata.annotations[{key}]",
            f"{key} is on the {obj['kind']}, not on its pod template; "
            f"move it to {where}.metadata.annotations",
            strict=True,
        )
        for key in own
        if key in keys.USER_ANNOTATIONS and key not in in_template
    ]


def check_object(
    obj: dict[str, Any], *, namespace: str, catalog: Catalog, config: InjectionConfig
) -> Checked:
    """Inject a Pod or a workload's template; a denial becomes an error finding, never an exception.

    Raises Malformed (with the field path from the object's root) when the pod part is not shaped
    like a Pod. Other kinds come back unchanged with no findings.
    """
    kind = obj.get("kind")
    if kind not in INJECTABLE:
        return Checked(obj, ())
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = metadata.get("namespace") or namespace
    if kind == POD:
        prefix, pod, findings, workload = "", obj, [], None
    else:
        prefix = ".".join(TEMPLATE_PATHS[kind]) + "."
        template = template_of(obj)
        if not isinstance(template, dict):
            raise Malformed(prefix.rstrip("."), f"a {kind} needs a pod template here")
        findings = _misplaced(obj, template)
        pod = {
            "apiVersion": "v1",
            "kind": POD,
            "metadata": template.get("metadata") or {},
            "spec": template.get("spec"),
        }
        workload = metadata.get("name") or None
    try:
        mutation = mutate(pod, namespace=namespace, catalog=catalog, config=config, workload=workload)
    except FieldDenied as exc:
        return Checked(obj, (*findings, Finding("error", prefix + exc.field, exc.message, exc.reference)))
    except Malformed as exc:
        raise Malformed(prefix + exc.field if exc.field else prefix.rstrip("."), exc.message) from exc
    if mutation is None:
        return Checked(obj, tuple(findings))
    findings += [Finding("warning", prefix.rstrip("."), warning) for warning in mutation.warnings]
    if kind == POD:
        return Checked(mutation.pod, tuple(findings))
    injected = copy.deepcopy(obj)
    template = template_of(injected)
    template["metadata"] = mutation.pod["metadata"]
    template["spec"] = mutation.pod["spec"]
    return Checked(injected, tuple(findings))
