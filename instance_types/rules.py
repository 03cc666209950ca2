"""The rules an InstanceType must follow, by id: one list for the Python checks and the CRD.

Each CEL rule in crd.yaml opens with `// rule: <id>`; each problem the Python validation finds
carries the id of the rule it broke. The tests hold the two sides to the same ids and the same
sentences, so `inferplane lint` offline and `kubectl apply` online refuse the same objects with
the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Enforcer(Enum):
    """Where the apiserver enforces a rule, which decides whose words the user reads there."""

    SCHEMA = "schema"  # OpenAPI schema: the apiserver's own wording
    CEL = "cel"  # x-kubernetes-validations: our sentence, the same as the Python one
    APISERVER = "apiserver"  # built into every object (metadata.name)


@dataclass(frozen=True)
class Rule:
    id: str
    enforcer: Enforcer
    summary: str


@dataclass(frozen=True)
class Problem:
    """One broken rule: the id ties it to the CRD; the message is what a person reads."""

    rule: str
    message: str


RULES: tuple[Rule, ...] = (
    Rule("name", Enforcer.APISERVER, "metadata.name is a DNS subdomain"),
    Rule("shape", Enforcer.SCHEMA, "fields have their types; spec, resources, requests, limits are present"),
    Rule("known-fields", Enforcer.SCHEMA, "no field the CRD does not declare (kubectl validates strictly)"),
    Rule("bounds", Enforcer.SCHEMA, "maps, lists and strings stay within their maximum sizes"),
    Rule("toleration-enums", Enforcer.SCHEMA, "operator is Exists or Equal; effect is a taint effect"),
    Rule("quantity", Enforcer.CEL, "every resource value is a quantity"),
    Rule("resource-name", Enforcer.CEL, "every resource name is one a container may carry"),
    Rule("cpu-memory-required", Enforcer.CEL, "cpu and memory are set in requests and in limits"),
    Rule("cpu-memory-positive", Enforcer.CEL, "cpu and memory are greater than zero"),
    Rule("not-negative", Enforcer.CEL, "no other resource is negative"),
    Rule("extended-in-limits-only", Enforcer.CEL, "GPUs and other extended resources appear in limits only"),
    Rule("extended-whole-number", Enforcer.CEL, "an extended resource limit is a whole number of at least 1"),
    Rule("request-within-limit", Enforcer.CEL, "a request does not exceed the limit of the same resource"),
    Rule("node-selector-label", Enforcer.CEL, "nodeSelector keys and values are valid labels"),
    Rule("toleration-key", Enforcer.CEL, "a toleration key is a valid label key"),
    Rule("toleration-operator", Enforcer.CEL, "a toleration without a key uses operator Exists"),
    Rule("toleration-value", Enforcer.CEL, "a toleration value is a label value, and empty for Exists"),
    Rule("toleration-seconds", Enforcer.CEL, "tolerationSeconds goes with effect NoExecute only"),
)

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
