"""Which resource names a container may carry.

Mirrors Kubernetes' own helpers (`IsExtendedResourceName`, `IsStandardContainerResourceName` in
pkg/apis/core/helper and validation): a name the apiserver would refuse in a pod must be refused
in an InstanceType too, or the mistake only shows up as a pod that never appears.
"""

from __future__ import annotations

import re

from instance_types.quantity import is_quantity

STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
HUGEPAGES_PREFIX = "hugepages-"

# apimachinery/pkg/util/validation: IsQualifiedName and IsDNS1123Subdomain.
_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MAX_NAME_PART = 63
MAX_PREFIX = 253


def is_qualified_name(name: str) -> bool:
    """`[prefix/]name` as in label keys: a DNS-subdomain prefix of at most 253 and a name of at most 63."""
    prefix, slash, local = name.rpartition("/")
    if slash and not (len(prefix) <= MAX_PREFIX and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(local) <= MAX_NAME_PART and _NAME_PART.fullmatch(local) is not None


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= MAX_PREFIX and _DNS_SUBDOMAIN.fullmatch(name) is not None


def is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended_resource(name: str) -> bool:
    """A device-plugin resource such as `nvidia.com/gpu`: integer-only, never overcommitted."""
    return (
        not is_native_resource(name)
        and not name.startswith("requests.")
        and is_qualified_name(f"requests.{name}")
    )


def is_container_resource(name: str) -> bool:
    """What the apiserver accepts as a key of a container's `resources.requests`/`limits`."""
    if name in STANDARD_CONTAINER_RESOURCES:
        return True
    if name.startswith(HUGEPAGES_PREFIX):
        return is_quantity(name.removeprefix(HUGEPAGES_PREFIX))
    return is_extended_resource(name)
