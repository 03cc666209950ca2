"""The webhook configurations the demo registers: the chart's two (charts/inferplane/templates/webhook/),
pointed at the local webhook's URL instead of the chart's Service."""

from __future__ import annotations

from typing import Any

HAS_MODEL = "has(object.metadata.annotations) && 'ml.example/model' in object.metadata.annotations"


def webhook_configurations(base_url: str, ca_bundle: str) -> dict[str, Any]:
    """The chart's two webhook configurations (charts/inferplane/templates/webhook/), pointed at a
    local URL instead of the chart's Service."""
    client = lambda path: {"url": f"{base_url}{path}", "caBundle": ca_bundle}  # noqa: E731
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "inferplane-demo"},
        "webhooks": [
            {
                "name": "mutate-pod.inferplane.ml.example",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "reinvocationPolicy": "IfNeeded",
                "timeoutSeconds": 10,
                "clientConfig": client("/mutate-pod"),
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "matchConditions": [
                    {
                        "name": "has-model-annotation",
                        "expression": HAS_MODEL,
                    }
                ],
            }
        ],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "inferplane-demo"},
        "webhooks": [
            {
                "name": "validate-workload.inferplane.ml.example",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "matchPolicy": "Equivalent",
                "timeoutSeconds": 5,
                "clientConfig": client("/validate-workload"),
                "rules": [
                    {
                        "operations": ["CREATE", "UPDATE"],
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "resources": ["deployments"],
                        "scope": "Namespaced",
                    }
                ],
            }
        ],
    }
    return {"apiVersion": "v1", "kind": "List", "items": [mutating, validating]}
