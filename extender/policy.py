"""Composes the rules into the three answers the scheduler asks for.

Every request holds the state lock for its whole evaluation, so it sees one consistent picture even
while watch events arrive; the work inside is a single pass over the names the scheduler sent, with
SHAPE rules memoised per shape (interned by the state, so `id()` is the key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from extender.config import Settings
from extender.model import Node, PodInfo, Reject
from extender.rules import RULES, Context, Rule, Scope
from extender.scores import SCORES, ScoreContext
from extender.state import ClusterState

MAX_SCORE = 10
UNKNOWN_NODE = "not in the extender's node cache yet"


@dataclass(frozen=True)
class FilterResult:
    passed: list[str]
    failed: dict[str, str]  # waiting or evicting may help
    unresolvable: dict[str, str]  # nothing on that node can change the answer
    rejections: dict[str, int] = field(default_factory=dict)  # rule name -> nodes refused


def _first(rules: Sequence[Rule], pod: PodInfo, node: Node, ctx: Context) -> tuple[str, Reject] | None:
    for rule in rules:
        reject = rule.check(pod, node, ctx)
        if reject is not None:
            return rule.name, reject
    return None


def filter_nodes(pod: PodInfo, names: Iterable[str], state: ClusterState, settings: Settings) -> FilterResult:
    """Which of `names` can take `pod`, and a one-line reason for each that cannot."""
    rules = [rule for rule in RULES if rule.applies(pod.demand)]
    shape_rules = [r for r in rules if r.scope is Scope.SHAPE]
    node_rules = [r for r in rules if r.scope is Scope.NODE]
    candidate_rules = [r for r in rules if r.scope is Scope.CANDIDATES]
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    rejections: dict[str, int] = {}
    passed: list[Node] = []
    memo: dict[int, tuple[str, Reject] | None] = {}

    def refuse(name: str, verdict: tuple[str, Reject]) -> None:
        rule_name, reject = verdict
        (unresolvable if reject.unresolvable else failed)[name] = f"{name}: {reject.reason}"
        rejections[rule_name] = rejections.get(rule_name, 0) + 1

    with state.lock:
        ctx = Context(gpus_used=state.gpus_used, cpu_pods_on_gpu_nodes=settings.cpu_pods_on_gpu_nodes)
        nodes = state.nodes
        for name in names:
            node = nodes.get(name)
            if node is None:
                failed[name] = f"{name}: {UNKNOWN_NODE}"
                rejections["unknown-node"] = rejections.get("unknown-node", 0) + 1
                continue
            key = id(node.shape)
            if key in memo:
                verdict = memo[key]
            else:
                verdict = memo[key] = _first(shape_rules, pod, node, ctx)
            if verdict is None and node_rules:
                verdict = _first(node_rules, pod, node, ctx)
            if verdict is None:
                passed.append(node)
            else:
                refuse(name, verdict)
        if candidate_rules and passed:
            ctx = replace(ctx, cpu_node_feasible=any(not node.shape.is_gpu for node in passed))
            survivors = []
            for node in passed:
                verdict = _first(candidate_rules, pod, node, ctx)
                if verdict is None:
                    survivors.append(node)
                else:
                    refuse(node.name, verdict)
            passed = survivors
    return FilterResult([node.name for node in passed], failed, unresolvable, rejections)


def prioritize_nodes(pod: PodInfo, names: Iterable[str], state: ClusterState) -> list[tuple[str, int]]:
    """Scores 0-10: nodes are ordered by the tuple of SCORES and given 10, 9, ... per distinct
    value (dense rank), so the best node always scores 10 and ties score alike."""
    with state.lock:
        nodes = state.nodes
        replicas = state.group_nodes.get(pod.group, {}) if pod.group else {}
        zone_replicas: dict[str | None, int] = {}
        for name, count in replicas.items():
            zone = nodes[name].zone if name in nodes else None
            zone_replicas[zone] = zone_replicas.get(zone, 0) + count
        ctx = ScoreContext(gpus_used=state.gpus_used, replicas=replicas, zone_replicas=zone_replicas)
        keyed: list[tuple[str, tuple | None]] = []
        for name in names:
            node = nodes.get(name)
            keyed.append((name, None if node is None else tuple([score(pod, node, ctx) for score in SCORES])))
    levels = sorted({key for _, key in keyed if key is not None}, reverse=True)
    rank = {key: max(MAX_SCORE - i, 0) for i, key in enumerate(levels)}
    return [(name, 0 if key is None else rank[key]) for name, key in keyed]


def preempt_nodes(
    pod: PodInfo, victims: Mapping[str, Sequence[str]], state: ClusterState, settings: Settings
) -> dict[str, list[str]]:
    """Keep the scheduler's candidate nodes where evicting the proposed victims (pod UIDs) really
    makes room by our count; drop the rest, so no pod is evicted for a node we would refuse."""
    rules = [r for r in RULES if r.applies(pod.demand) and r.scope is not Scope.CANDIDATES]
    kept: dict[str, list[str]] = {}
    with state.lock:
        for name, uids in victims.items():
            node = state.nodes.get(name)
            if node is None:
                continue
            held = dict(state.gpus_used.get(name, {}))
            for uid in uids:
                bound = state.bound_pod(uid)
                if bound is not None and bound.node == name:
                    for resource, count in bound.gpus:
                        held[resource] = held.get(resource, 0) - count
            ctx = Context(gpus_used={name: held}, cpu_pods_on_gpu_nodes=settings.cpu_pods_on_gpu_nodes)
            if _first(rules, pod, node, ctx) is None:
                kept[name] = list(uids)
    return kept
