"""Smoke tests of the loopback control plane itself.

Every other e2e test trusts this cluster to behave like a real one; these
tests pin down the behaviours they rely on, each of which has broken before in
home-made clusters: the reported version, the OpenAPI document kubectl needs,
fake Nodes staying Ready without a kubelet, controllers creating pods, and a
second scheduler actually binding.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from kubernetes import client as k8s

from inferplane.localcluster import build
from inferplane.localcluster.controlplane import NODE_MONITOR_GRACE_PERIOD_S, ControlPlane

pytestmark = pytest.mark.e2e


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_kubectl_and_server_report_the_pinned_version(control_plane: ControlPlane) -> None:
    pinned = build.KUBERNETES.version()
    out = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert out["clientVersion"]["gitVersion"] == pinned
    assert out["serverVersion"]["gitVersion"] == pinned
    assert "warning" not in control_plane.kubectl("version").stderr.lower()


def test_openapi_v2_is_served_and_parseable(control_plane: ControlPlane) -> None:
    doc = json.loads(control_plane.kubectl("get", "--raw", "/openapi/v2").stdout)
    assert doc["swagger"] == "2.0"
    assert "io.k8s.api.core.v1.Pod" in doc["definitions"]


def test_kubectl_apply_creates_and_updates_a_configmap(
    control_plane: ControlPlane, fresh_namespace: str
) -> None:
    def manifest(value: str) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "smoke", "namespace": fresh_namespace},
                "data": {"key": value},
            }
        )

    first = control_plane.kubectl("apply", "-f", "-", input=manifest("one"))
    assert "configmap/smoke created" in first.stdout
    # The second apply computes a patch from the OpenAPI schema, the path
    # that breaks when /openapi/v2 is served wrongly.
    second = control_plane.kubectl("apply", "-f", "-", input=manifest("two"))
    assert "configmap/smoke configured" in second.stdout
    cm = k8s.CoreV1Api(control_plane.api()).read_namespaced_config_map("smoke", fresh_namespace)
    assert cm.data == {"key": "two"}


def _ready(node: k8s.V1Node) -> str:
    return next(c.status for c in node.status.conditions if c.type == "Ready")


def test_fake_gpu_node_is_allocatable_and_stays_ready(control_plane: ControlPlane) -> None:
    name = _unique("gpu-node")
    control_plane.add_node(name, gpus=4, labels={"accelerator": "test"})
    core = k8s.CoreV1Api(control_plane.api())
    node = core.read_node(name)
    assert node.status.allocatable["nvidia.com/gpu"] == "4"
    assert node.status.capacity["nvidia.com/gpu"] == "4"
    assert _ready(node) == "True"
    assert not node.spec.taints, "the not-ready taint from admission must be gone"
    # Two full grace periods: a running node-lifecycle controller would have
    # marked the node Unknown and tainted it unreachable by now.
    time.sleep(2 * NODE_MONITOR_GRACE_PERIOD_S + 1)
    node = core.read_node(name)
    assert _ready(node) == "True"
    assert not node.spec.taints


def test_deployment_creates_pods_through_the_controller_manager(
    control_plane: ControlPlane, fresh_namespace: str
) -> None:
    labels = {"app": "smoke"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "smoke", "namespace": fresh_namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
            },
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    core = k8s.CoreV1Api(control_plane.api())

    def two_pods() -> list[k8s.V1Pod] | None:
        pods = core.list_namespaced_pod(fresh_namespace, label_selector="app=smoke").items
        return pods if len(pods) == 2 else None

    pods = control_plane.wait_for(two_pods, timeout=60, message="2 pods of Deployment smoke")
    assert len(pods) == 2
    owners = {(o.kind, o.name) for p in pods for o in p.metadata.owner_references}
    assert len(owners) == 1
    kind, rs_name = owners.pop()
    assert kind == "ReplicaSet"
    rs = k8s.AppsV1Api(control_plane.api()).read_namespaced_replica_set(rs_name, fresh_namespace)
    assert [(o.kind, o.name) for o in rs.metadata.owner_references] == [("Deployment", "smoke")]
    # No scheduler serves default-scheduler here: the pods exist but are unbound.
    assert all(p.spec.node_name is None for p in pods)


def test_second_scheduler_binds_pods_by_scheduler_name(
    control_plane: ControlPlane, fresh_namespace: str
) -> None:
    group = _unique("sched")
    selector = {"e2e.inferplane.test/group": group}
    cpu_node, gpu_node = f"{group}-cpu", f"{group}-gpu"
    control_plane.add_node(cpu_node, labels=selector)
    control_plane.add_node(gpu_node, gpus=2, labels=selector)
    control_plane.start_scheduler({"profiles": [{"schedulerName": "test-scheduler"}]}, name="test-scheduler")

    core = k8s.CoreV1Api(control_plane.api())

    def pod(name: str, limits: dict[str, str]) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "schedulerName": "test-scheduler",
                "nodeSelector": selector,
                "containers": [
                    {"name": "app", "image": "example.invalid/app:1", "resources": {"limits": limits}}
                ],
            },
        }

    core.create_namespaced_pod(fresh_namespace, pod("wants-gpu", {"nvidia.com/gpu": "2"}))
    core.create_namespaced_pod(fresh_namespace, pod("wants-3-gpus", {"nvidia.com/gpu": "3"}))

    def node_of(name: str) -> str | None:
        return core.read_namespaced_pod(name, fresh_namespace).spec.node_name

    bound = control_plane.wait_for(lambda: node_of("wants-gpu"), timeout=60, message="pod bound")
    assert bound == gpu_node, "only the GPU node has 2 nvidia.com/gpu allocatable"

    def scheduled_event() -> k8s.EventsV1Event | None:
        events = k8s.EventsV1Api(control_plane.api()).list_namespaced_event(fresh_namespace).items
        return next((e for e in events if e.regarding.name == "wants-gpu" and e.reason == "Scheduled"), None)

    event = control_plane.wait_for(scheduled_event, timeout=30, message="Scheduled event")
    assert event.reporting_controller == "test-scheduler"

    # More GPUs than any node has: the scheduler must say so, not bind it.
    def unschedulable() -> bool:
        conditions = core.read_namespaced_pod("wants-3-gpus", fresh_namespace).status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)

    control_plane.wait_for(unschedulable, timeout=30, message="wants-3-gpus marked Unschedulable")
    assert node_of("wants-3-gpus") is None
