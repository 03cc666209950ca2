"""What the injection can be told by the operator (chart values, flags).

Checked when built, so a bad chart value stops the webhook at start with a sentence naming the
value and the fix, instead of producing pods the apiserver refuses one by one.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from inferplane.errors import UserError
from instance_types.resource_names import is_extended_resource
from webhook.inject.problems import quote

DEFAULT_APP_ROOT = "/var/azureml-app"
DEFAULT_INIT_IMAGE = "inferplane:0.1.0"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
UNKNOWN_REFERENCE = ("deny", "warn")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class InjectionConfig:
    app_root: str = DEFAULT_APP_ROOT
    init_image: str = DEFAULT_INIT_IMAGE
    init_image_pull_policy: str = "IfNotPresent"
    # Built-in defaultinstancetype (seed 002's numbers); a CR of that name overrides it.
    default_cpu: str = "600m"
    default_memory: str = "1536Mi"
    # Set spec.schedulerName on injected pods that use the default scheduler (issue 4); None = leave.
    scheduler_name: str | None = None
    # Extended resource added to scoring pods so a configured default scheduler calls our extender.
    scheduler_marker_resource: str | None = None
    # /validate-workload: "deny" or "warn" for an unknown model or instance type.
    unknown_reference: str = "deny"

    def __post_init__(self) -> None:
        root = self.app_root
        if not root.startswith("/") or posixpath.normpath(root) != root or root == "/":
            raise UserError(
                f"app root {quote(root)} must be an absolute, normalised directory below /, "
                f"e.g. {DEFAULT_APP_ROOT}"
            )
        if not self.init_image.strip() or any(c.isspace() for c in self.init_image):
            raise UserError(
                f"init image {quote(self.init_image)} must be an image reference, e.g. {DEFAULT_INIT_IMAGE}"
            )
        if self.init_image_pull_policy not in PULL_POLICIES:
            raise UserError(
                f"init image pull policy {quote(self.init_image_pull_policy)} must be one of "
                f"{', '.join(PULL_POLICIES)}"
            )
        if self.unknown_reference not in UNKNOWN_REFERENCE:
            raise UserError(f"unknown_reference {quote(self.unknown_reference)} must be 'deny' or 'warn'")
        if self.scheduler_name is not None and not (
            len(self.scheduler_name) <= 253 and _DNS_SUBDOMAIN.match(self.scheduler_name)
        ):
            raise UserError(
                f"scheduler name {quote(self.scheduler_name)} must be a DNS subdomain, "
                "e.g. inferplane-scheduler"
            )
        marker = self.scheduler_marker_resource
        if marker is not None and not is_extended_resource(marker):
            raise UserError(
                f"scheduler marker resource {quote(marker)} must be an extended resource name, "
                "e.g. ml.example/scoring"
            )
