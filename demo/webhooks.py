"""The webhook configurations a local run registers: the chart's own two, rendered by the pinned helm,
pointed at a webhook on loopback instead of the chart's Service.

Rendered rather than written again here, so the demo and the e2e tests register exactly what a
cluster gets from `helm install` (rules, matchConditions, failure policies, timeouts, namespace
exclusions); a hand-kept copy had already drifted from the chart.
"""

from __future__ import annotations

import base64
import copy
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "inferplane"
TEMPLATES = ("templates/webhook/mutatingwebhook.yaml", "templates/webhook/validatingwebhook.yaml")
KINDS = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


class RenderError(Exception):
    pass


def render_chart_webhooks(
    helm: Path, release: str, *, namespace: str = "inferplane-system", chart: Path = CHART
) -> list[dict[str, Any]]:
    """The chart's Mutating- and ValidatingWebhookConfiguration with its default values."""
    show = [arg for template in TEMPLATES for arg in ("--show-only", template)]
    result = subprocess.run(
        [str(helm), "template", release, str(chart), "--namespace", namespace, *show],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RenderError(f"helm template {chart} failed: {result.stderr.strip()}")
    configs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    if sorted(c.get("kind") for c in configs) != KINDS:
        rendered = [c.get("kind") for c in configs]
        raise RenderError(f"helm template {chart} rendered {rendered}, expected {KINDS}")
    return configs


def point_at_loopback(
    config: Mapping[str, Any],
    *,
    name: str,
    base_url: str,
    ca_pem: bytes,
    scope: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`config` calling `base_url` instead of the chart's Service; with `scope`, only for namespaces
    carrying those labels (tests sharing one control plane keep out of each other's way).

    Everything else is left exactly as rendered.
    """
    rewritten = copy.deepcopy(dict(config))
    rewritten["metadata"]["name"] = name
    for webhook in rewritten["webhooks"]:
        path = webhook["clientConfig"]["service"]["path"]
        webhook["clientConfig"] = {"url": f"{base_url}{path}", "caBundle": base64.b64encode(ca_pem).decode()}
        if scope:
            selector = webhook.setdefault("namespaceSelector", {})
            selector["matchLabels"] = {**selector.get("matchLabels", {}), **scope}
    return rewritten


def webhook_configurations(helm: Path, base_url: str, ca_pem: bytes) -> dict[str, Any]:
    """What `inferplane demo` applies: both configurations as one List."""
    items = [
        point_at_loopback(config, name="inferplane-demo", base_url=base_url, ca_pem=ca_pem)
        for config in render_chart_webhooks(helm, "inferplane-demo")
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}
