"""What the injection can be told by the operator (chart values, flags).

Checked when built, so a bad chart value stops the webhook at start with a sentence naming the
value and the fix, instead of producing pods the apiserver refuses one by one.
"""

from __future__ import annotations

import argparse
import posixpath
import re
from dataclasses import dataclass

from inferplane.errors import UserError
from instance_types.quantity import QuantityError, parse_quantity
from instance_types.resource_names import is_extended_resource, is_qualified_name
from webhook.inject.problems import quote

DEFAULT_APP_ROOT = "/var/azureml-app"
DEFAULT_INIT_IMAGE = "inferplane:0.1.0"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
UNKNOWN_REFERENCE = ("deny", "warn")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
DEFAULT_EXAMPLES = {"cpu": "600m", "memory": "1536Mi"}


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
    # Node labels every injected pod must match besides its InstanceType's (the Azure extension's
    # `nodeSelector` setting, which also places the extension's own pods). Pairs, so the config
    # stays hashable: it is part of the key under which a catalog snapshot keeps resolved choices.
    node_selector: tuple[tuple[str, str], ...] = ()

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
        for name, value in (("cpu", self.default_cpu), ("memory", self.default_memory)):
            _check_default(name, value)
        _check_node_selector(self.node_selector)


def _check_default(name: str, value: str) -> None:
    """The built-in defaultinstancetype's request and limit: a quantity above zero."""
    try:
        ok = parse_quantity(value) > 0
    except QuantityError:
        ok = False
    if not ok:
        raise UserError(
            f"default instance type {name} {quote(value)} must be a quantity above zero, "
            f"e.g. {DEFAULT_EXAMPLES[name]}"
        )


def _check_node_selector(pairs: tuple[tuple[str, str], ...]) -> None:
    seen: dict[str, str] = {}
    for key, value in pairs:
        if not is_qualified_name(key):
            raise UserError(
                f"node selector key {quote(key)} is not a label key: an optional DNS prefix and '/', then "
                "1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, "
                "e.g. kubernetes.io/os"
            )
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise UserError(
                f"node selector {key}={value} has no valid label value: at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit, e.g. linux"
            )
        if seen.get(key, value) != value:
            raise UserError(f"node selector {key} is given twice, as {seen[key]} and {value}; keep one")
        seen[key] = value


def parse_node_selector(text: str) -> tuple[str, str]:
    """`KEY=VALUE` as a flag gives it; raises UserError naming the text and the fix."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"node selector {quote(text)} must be KEY=VALUE, e.g. kubernetes.io/os=linux")
    return key, value


def add_injection_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that shape what is injected, the same for `inferplane webhook`, `inject` and
    `lint`, so the offline tools are told exactly what the cluster's webhook was told."""
    defaults = InjectionConfig()
    parser.add_argument(
        "--app-root", help=f"where the model lands in the scoring container (default {DEFAULT_APP_ROOT})"
    )
    parser.add_argument("--init-image", help=f"the model-init image injected (default {DEFAULT_INIT_IMAGE})")
    parser.add_argument(
        "--scheduler-name", help="set spec.schedulerName of model pods on the default scheduler"
    )
    parser.add_argument(
        "--scheduler-marker-resource",
        metavar="NAME",
        help="extended resource (limit 1) added to model pods, so a default scheduler configured with "
        "the inferplane extender for it consults the extender for them only",
    )
    parser.add_argument(
        "--default-cpu",
        metavar="QUANTITY",
        help=f"cpu request and limit of the built-in defaultinstancetype (default {defaults.default_cpu})",
    )
    parser.add_argument(
        "--default-memory",
        metavar="QUANTITY",
        help="memory request and limit of the built-in defaultinstancetype "
        f"(default {defaults.default_memory})",
    )
    parser.add_argument(
        "--node-selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="node label every model pod must match, besides its instance type's; repeatable",
    )


def injection_config(args: argparse.Namespace, **settings: str) -> InjectionConfig:
    """The InjectionConfig the flags of `add_injection_arguments` (and `settings`) describe;
    raises UserError naming a bad value."""
    given = {
        "app_root": args.app_root,
        "init_image": args.init_image,
        "scheduler_name": args.scheduler_name,
        "scheduler_marker_resource": args.scheduler_marker_resource,
        "default_cpu": args.default_cpu,
        "default_memory": args.default_memory,
        **settings,
    }
    pairs = tuple(parse_node_selector(text) for text in args.node_selector)
    return InjectionConfig(node_selector=pairs, **{k: v for k, v in given.items() if v is not None})
