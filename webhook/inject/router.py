"""Labels the bundled router selects by: `ml.example/endpoint` and `ml.example/deployment`.

The deployment name is what a person called their Deployment, recovered from the pod: the
ReplicaSet owner's name without the pod-template-hash suffix, else the owning controller's name,
else the `app` label or the generateName. The same pod always yields the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.inject import keys
from webhook.inject.done import Done
from webhook.inject.plan import Plan
from webhook.inject.podspec import child
from webhook.inject.problems import quote
from webhook.inject.refs import LABEL_VALUE


def deployment_name(pod: Mapping[str, Any]) -> str | None:
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    for ref in metadata.get("ownerReferences") or []:
        if not ref.get("controller") or not ref.get("name"):
            continue
        name = ref["name"]
        template_hash = labels.get("pod-template-hash")
        if ref.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
            return name.removesuffix(f"-{template_hash}")
        return name
    if labels.get("app"):
        return labels["app"]
    generated = (metadata.get("generateName") or "").rstrip("-")
    return generated or metadata.get("name") or None


def apply_router_labels(pod: dict[str, Any], plan: Plan) -> Done:
    metadata = pod.get("metadata") or {}
    endpoint = (metadata.get("annotations") or {}).get(keys.ENDPOINT)
    if endpoint is None:
        return Done()
    labels = child(child(pod, "metadata"), "labels")
    warnings = []
    deployment = plan.workload or deployment_name(pod)
    wanted = {keys.ENDPOINT_LABEL: endpoint}
    if deployment and len(deployment) <= 63 and LABEL_VALUE.match(deployment):
        wanted[keys.DEPLOYMENT_LABEL] = deployment
    else:
        warnings.append(
            f"no deployment name usable as a label ({quote(deployment)}); the router cannot split to this pod"
        )
    for key, value in wanted.items():
        had = labels.get(key)
        if had is not None and had != value:
            warnings.append(f"label {key}={had} replaced by {value}")
        labels[key] = value
    return Done(tuple(warnings))
