"""What the injection can be told by the operator (chart values, flags)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_APP_ROOT = "/var/azureml-app"
DEFAULT_INIT_IMAGE = "inferplane:0.1.0"


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
