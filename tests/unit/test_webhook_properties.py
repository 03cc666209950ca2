"""Properties of the mutation over random pods, whatever other admission plugins left in them.

For any pod: the pod received is never modified (the mutation copies only what it edits and
shares the rest); the patch applies to exactly that pod and yields the injected pod; a second
pass over that result needs no patch; and every operation touches only what inferplane owns (our
volumes, our init container, the scoring container's env/mounts/resources, our labels and
annotation, nodeSelector, tolerations, schedulerName) and never rewrites or removes a list item.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from webhook.catalog import Catalog
from webhook.config import InjectionConfig
from webhook.inject.problems import FieldDenied, Malformed
from webhook.mutate import mutate
from webhook.patch import diff

CATALOG_DIR = Path(__file__).parents[1] / "golden" / "catalog"
names = st.from_regex(r"[a-z][a-z0-9-]{0,6}[a-z0-9]", fullmatch=True)
keys = st.from_regex(r"([a-z]{1,5}\.[a-z]{2}/)?[a-z~][a-z0-9.~_-]{0,6}", fullmatch=True)
quantities = st.sampled_from(["100m", "250m", "1", "2", "64Mi", "512Mi", "1Gi", "4Gi", 1, 3])


@functools.cache
def catalog() -> Catalog:
    return Catalog.from_dir(str(CATALOG_DIR), namespace="team-a")


def containers(draw: st.DrawFn, volume_names: list[str]) -> list[dict[str, Any]]:
    result = []
    for name in draw(
        st.lists(names.filter(lambda n: n != "model-init"), min_size=1, max_size=3, unique=True)
    ):
        container: dict[str, Any] = {"name": name, "image": "example/app:1"}
        if draw(st.booleans()):
            container["env"] = [
                {"name": env, "value": draw(st.text(max_size=5))}
                for env in draw(
                    st.lists(st.sampled_from(["A", "B", "AZUREML_MODEL_DIR", "PATH"]), unique=True)
                )
            ]
        if volume_names and draw(st.booleans()):
            container["volumeMounts"] = [
                {"name": volume, "mountPath": f"/data/{index}"}
                for index, volume in enumerate(draw(st.lists(st.sampled_from(volume_names), max_size=3)))
            ]
        resources: dict[str, Any] = {}
        for kind in ("requests", "limits"):
            if draw(st.booleans()):
                resources[kind] = draw(
                    st.dictionaries(
                        st.sampled_from(["cpu", "memory", "ephemeral-storage"]), quantities, max_size=2
                    )
                )
        if resources or draw(st.booleans()):
            container["resources"] = resources
        result.append(container)
    return result


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    volume_names = draw(st.lists(names, max_size=3, unique=True))
    spec: dict[str, Any] = {"containers": containers(draw, volume_names)}
    if volume_names or draw(st.booleans()):
        spec["volumes"] = [{"name": n, "emptyDir": {}} for n in volume_names]
    if draw(st.booleans()):
        spec["initContainers"] = [
            {"name": "sidecar-" + n, "image": "proxy:1", "restartPolicy": "Always"}
            for n in draw(st.lists(names, max_size=2, unique=True))
        ]
    if draw(st.booleans()):
        spec["tolerations"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"key": st.sampled_from(["nvidia.com/gpu", "node.kubernetes.io/not-ready", "x"])},
                    optional={
                        "operator": st.sampled_from(["Exists", "Equal"]),
                        "effect": st.sampled_from(["NoSchedule", "NoExecute"]),
                    },
                ),
                max_size=3,
            )
        )
    if draw(st.booleans()):
        spec["nodeSelector"] = draw(
            st.dictionaries(st.sampled_from(["zone", "accelerator", "disk"]), names, max_size=2)
        )
    if draw(st.booleans()):
        spec["schedulerName"] = draw(st.sampled_from(["default-scheduler", "", "volcano"]))

    metadata: dict[str, Any] = {"generateName": "iris-blue-5d8f7c9b6d-"}
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(keys, names, max_size=3))
    annotations = draw(st.dictionaries(keys, st.text(max_size=5), max_size=3))
    if draw(st.integers(0, 9)) != 9:  # most pods opt in (hypothesis favours 0)
        annotations["ml.example/model"] = draw(
            st.sampled_from(["iris:3", "iris:3,resnet:1", "scorer:1", "onnx:1"])
        )
    choice = draw(st.sampled_from([None, "cpu-small", "gpu-a100", "defaultinstancetype"]))
    if choice:
        annotations["ml.example/instance-type"] = choice
    if draw(st.booleans()):
        annotations["ml.example/container"] = spec["containers"][-1]["name"]
    if draw(st.booleans()):
        annotations["ml.example/endpoint"] = "iris"
    if annotations or draw(st.booleans()):
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


configs = st.builds(
    InjectionConfig,
    scheduler_name=st.sampled_from([None, "inferplane-scheduler"]),
    scheduler_marker_resource=st.sampled_from([None, "ml.example/scoring"]),
    node_selector=st.sampled_from([(), (("pool", "models"),), (("zone", "a"), ("disk", "ssd"))]),
)

_OURS = re.compile(
    r"^/metadata(/labels(/ml\.example~1(instance-type|endpoint|deployment))?"
    r"|/annotations(/ml\.example~1injected)?)?$"
    r"|^/spec/(volumes|initContainers|tolerations)(/-)?$"
    r"|^/spec/nodeSelector(/[^/]+)?$|^/spec/schedulerName$"
    r"|^/spec/containers/(?P<index>\d+)/(volumeMounts|env)(/-)?$"
    r"|^/spec/containers/(?P<rindex>\d+)/resources(/(requests|limits)(/[^/]+)?)?$"
)


def _scoring_index(pod: dict[str, Any]) -> int:
    wanted = (pod["metadata"].get("annotations") or {}).get("ml.example/container")
    names_ = [c["name"] for c in pod["spec"]["containers"]]
    return names_.index(wanted) if wanted in names_ else 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods(), configs)
def test_patch_applies_is_idempotent_and_touches_only_what_is_ours(
    pod: dict[str, Any], config: InjectionConfig
) -> None:
    received = copy.deepcopy(pod)
    try:
        result = mutate(pod, namespace="team-a", catalog=catalog(), config=config)
    except FieldDenied as denied:
        assert pod == received
        event(f"denied at {denied.field.split('[')[0]}")
        assert denied.message and denied.field  # refused, naming the field; nothing to apply
        return
    if "ml.example/model" not in (pod["metadata"].get("annotations") or {}):
        event("not opted in")
        assert result is None
        return
    assert result is not None
    assert pod == received, "mutate modified the pod it was given"
    patch = diff(pod, result.pod)
    event(f"mutated with {len(patch) // 5 * 5}+ ops")
    assert jsonpatch.apply_patch(pod, patch) == result.pod

    injected = copy.deepcopy(result.pod)
    again = mutate(result.pod, namespace="team-a", catalog=catalog(), config=config)
    assert again is not None
    assert result.pod == injected, "a second pass modified the first pass's result"
    assert diff(result.pod, again.pod) == []

    scoring = _scoring_index(pod)
    for op in patch:
        match = _OURS.match(op["path"])
        assert match, op
        index = match.group("index") or match.group("rindex")
        if index is not None:
            assert int(index) == scoring, op
        if op["op"] != "add":
            # Only a value we are entitled to set may be replaced: our label, the default scheduler.
            assert op["path"] in (
                "/metadata/labels/ml.example~1instance-type",
                "/metadata/labels/ml.example~1endpoint",
                "/metadata/labels/ml.example~1deployment",
                "/spec/schedulerName",
            ), op


def _nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=4),
    _nest,
    max_leaves=8,
)


def _slots(node: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) whose value could be replaced."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found.append((node, key))
        _slots(value, found)
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods(), st.data(), json_values)
def test_any_part_replaced_by_garbage_is_refused_with_a_reason_never_a_crash(
    pod: dict[str, Any], data: st.DataObject, garbage: Any
) -> None:
    parent, key = data.draw(st.sampled_from(_slots(pod, [])))
    parent[key] = garbage
    try:
        result = mutate(pod, namespace="team-a", catalog=catalog(), config=InjectionConfig())
    except (FieldDenied, Malformed) as refused:
        assert str(refused)
        return
    if result is not None:
        assert jsonpatch.apply_patch(pod, diff(pod, result.pod)) == result.pod
