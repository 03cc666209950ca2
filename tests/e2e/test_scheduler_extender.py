"""The real kube-scheduler with our shipped configuration, calling `inferplane extender` on loopback.

Each test makes its own pool of fake nodes (labelled with a pool id the test's pods select, so nodes
of other tests never compete) and asserts where the scheduler bound each pod, or the reason it gives
for a pod it cannot place, as `kubectl describe pod` would show it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client as k8s

from extender import fixtures as fx
from extender.parse import GPU_PRODUCT_ANNOTATION
from inferplane.localcluster.controlplane import ControlPlane, write_kubeconfig
from inferplane.localcluster.process import ManagedProcess, free_port, inferplane_argv, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scheduler"
POOL = "e2e.inferplane.dev/pool"
A100, T4 = "NVIDIA-A100-SXM4-80GB", "Tesla-T4"
SCHEDULE_TIMEOUT = 60.0


class Extender:
    """`inferplane extender` as a local process, with a least-privilege identity of its own."""

    def __init__(self, cp: ControlPlane, workdir: Path, run: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.kubeconfig = self._identity(cp, workdir, run)
        self.log = workdir / "extender.log"
        self.process: ManagedProcess | None = None

    @staticmethod
    def _identity(cp: ControlPlane, workdir: Path, run: str) -> Path:
        """A user bound only to the shipped ClusterRole: proves list/watch of nodes and pods is enough."""
        user = f"inferplane-e2e:extender:{run}"
        role = next(d for d in yaml.safe_load_all((EXAMPLES / "extender-rbac.yaml").read_text())
                    if d["kind"] == "ClusterRole")  # fmt: skip
        role["metadata"]["name"] = f"inferplane-extender-{run}"
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role["metadata"]["name"]},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role["metadata"]["name"],
            },
        }
        cp.kubectl(
            "apply",
            "-f",
            "-",
            input=yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [role, binding]}),
        )
        cp.wait_for(
            lambda: (
                cp.kubectl("auth", "can-i", "watch", "pods", f"--as={user}", check=False).stdout.strip()
                == "yes"
            ),
            message="the extender's RBAC",
        )
        creds = cp.ca.issue(f"extender-{run}", user, client=True)
        return write_kubeconfig(workdir / "extender.kubeconfig", cp.server, cp.ca_file, user, creds)

    def start(self) -> None:
        argv = [
            *inferplane_argv(),
            "extender",
            "--port",
            str(self.port),
            "--kubeconfig",
            str(self.kubeconfig),
        ]
        self.process = ManagedProcess("inferplane-extender", argv, self.log).start()
        wait_for(self._ready, 30, "the extender to list the cluster", watch=[self.process])

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def scheduler_config(example: str, name: str, extender: Extender) -> dict[str, Any]:
    """A shipped example, pointed at this test's extender and scheduler name (nothing else changed)."""
    config = yaml.safe_load((EXAMPLES / example).read_text())
    config["profiles"][0]["schedulerName"] = name
    config["extenders"][0]["urlPrefix"] = extender.url
    config.pop("leaderElection", None)  # the harness gives each scheduler its own lease in kube-system
    config.pop("clientConnection", None)
    return config


@dataclass
class Cluster:
    cp: ControlPlane
    extender: Extender
    scheduler: str  # the inferplane-scheduler profile's name
    marker_scheduler: str  # a "default scheduler" configured with the marker resource

    def pool(self, **nodes: dict[str, Any]) -> dict[str, str]:
        """Create nodes labelled with a new pool id; returns {short name: node name, "pool": id}."""
        pool = uuid.uuid4().hex[:8]
        names = {"pool": pool}
        for short, spec in nodes.items():
            spec = copy.deepcopy(spec)
            labels = {POOL: pool, **spec.pop("labels", {})}
            names[short] = f"{pool}-{short}"
            self.cp.add_node(names[short], labels=labels, **spec)
        return names


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    run = uuid.uuid4().hex[:6]
    extender = Extender(control_plane, tmp_path_factory.mktemp("extender"), run)
    extender.start()
    name = f"inferplane-scheduler-{run}"
    control_plane.start_scheduler(scheduler_config("inferplane-scheduler.yaml", name, extender), name)
    marker = f"marker-scheduler-{run}"
    control_plane.start_scheduler(
        scheduler_config("default-scheduler-extender.yaml", marker, extender), marker
    )
    try:
        yield Cluster(control_plane, extender, name, marker)
    finally:
        for scheduler in (name, marker):
            control_plane.schedulers[scheduler].stop()
        extender.stop()


def gpu_node(gpus: int, product: str = A100, zone: str = "z1", cpu: str = "32") -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": product, "topology.kubernetes.io/zone": zone}
    return {"gpus": gpus, "cpu": cpu, "memory": "256Gi", "labels": labels}


def cpu_node(zone: str) -> dict[str, Any]:
    return {"cpu": "8", "memory": "32Gi", "labels": {"topology.kubernetes.io/zone": zone}}


def create_pod(cluster: Cluster, namespace: str, pool: str, name: str, scheduler: str | None = None,
               **kwargs: Any) -> str:  # fmt: skip
    """A pod as the webhook leaves it: the InstanceType's resources and nodeSelector, our scheduler."""
    pod = fx.pod(name, namespace=namespace, node_selector={POOL: pool},
                 scheduler_name=scheduler or cluster.scheduler, **kwargs)  # fmt: skip
    for key in ("uid",):
        pod["metadata"].pop(key)
    pod.pop("status")
    k8s.CoreV1Api(cluster.cp.api()).create_namespaced_pod(namespace, pod)
    return name


def bound_node(cluster: Cluster, namespace: str, name: str) -> str:
    core = k8s.CoreV1Api(cluster.cp.api())
    return cluster.cp.wait_for(
        lambda: core.read_namespaced_pod(name, namespace).spec.node_name,
        SCHEDULE_TIMEOUT,
        f"pod {namespace}/{name} to be bound",
    )


def unschedulable_message(cluster: Cluster, namespace: str, name: str, contains: str) -> str:
    """The PodScheduled=False message once it says `contains` (what `kubectl describe` shows)."""
    core = k8s.CoreV1Api(cluster.cp.api())

    def message() -> str | None:
        pod = core.read_namespaced_pod(name, namespace)
        assert pod.spec.node_name is None, f"{name} was bound to {pod.spec.node_name}"
        for condition in pod.status.conditions or ():
            if (
                condition.type == "PodScheduled"
                and condition.status == "False"
                and contains in condition.message
            ):
                return condition.message
        return None

    return cluster.cp.wait_for(message, SCHEDULE_TIMEOUT, f"{name} to be unschedulable with {contains!r}")


def test_gpu_pods_fill_a_node_before_opening_another_and_keep_the_big_node_whole(cluster, fresh_namespace):
    pool = cluster.pool(a4=gpu_node(4, zone="z1"), b4=gpu_node(4, zone="z2"), h8=gpu_node(8, zone="z1"))
    ns = fresh_namespace
    first = bound_node(cluster, ns, create_pod(cluster, ns, pool["pool"], "two-a", gpus=2))
    assert first in (pool["a4"], pool["b4"])  # 2 of 4 fills a 4-GPU node better than 2 of 8
    assert bound_node(cluster, ns, create_pod(cluster, ns, pool["pool"], "two-b", gpus=2)) == first
    other = pool["b4"] if first == pool["a4"] else pool["a4"]
    assert bound_node(cluster, ns, create_pod(cluster, ns, pool["pool"], "four", gpus=4)) == other
    assert bound_node(cluster, ns, create_pod(cluster, ns, pool["pool"], "eight", gpus=8)) == pool["h8"]


def test_gpu_kind_from_the_instance_type_and_the_reason_for_a_pod_that_cannot_fit(cluster, fresh_namespace):
    pool = cluster.pool(t4=gpu_node(1, product=T4), a100=gpu_node(4))
    ns = fresh_namespace
    t4_pod = {"gpus": 1, "instance_type": "t4-small", "annotations": {GPU_PRODUCT_ANNOTATION: T4}}
    assert bound_node(cluster, ns, create_pod(cluster, ns, pool["pool"], "t4-a", **t4_pod)) == pool["t4"]
    create_pod(cluster, ns, pool["pool"], "t4-b", **t4_pod)
    ours = f"{pool['a100']}: GPU product {A100}; instance type t4-small needs one of {T4}"
    message = unschedulable_message(cluster, ns, "t4-b", ours)
    assert "Insufficient nvidia.com/gpu" in message  # the scheduler's own word on the full T4 node
    events = k8s.CoreV1Api(cluster.cp.api()).list_namespaced_event(
        ns, field_selector="involvedObject.name=t4-b,reason=FailedScheduling"
    )
    assert any(ours in (event.message or event.note or "") for event in events.items)


def test_cpu_replicas_stay_off_gpu_nodes_and_spread_over_zones(cluster, fresh_namespace):
    pool = cluster.pool(cpu1=cpu_node("z1"), cpu2=cpu_node("z2"), gpu=gpu_node(4, cpu="64"))
    ns = fresh_namespace
    apps = k8s.AppsV1Api(cluster.cp.api())
    template = fx.pod("web", namespace=ns, cpu="1", memory="1Gi", node_selector={POOL: pool["pool"]},
                      scheduler_name=cluster.scheduler, instance_type="cpu-small")  # fmt: skip
    apps.create_namespaced_deployment(ns, fx.deployment("web", template, replicas=0))
    core = k8s.CoreV1Api(cluster.cp.api())

    def placements(count: int) -> list[str] | None:
        pods = core.list_namespaced_pod(ns, label_selector="app=web").items
        nodes = [p.spec.node_name for p in pods if p.spec.node_name]
        return sorted(nodes) if len(nodes) == count else None

    # All four at once: each is placed before the previous one's binding has been watched.
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 4}})
    nodes = cluster.cp.wait_for(lambda: placements(4), SCHEDULE_TIMEOUT, "4 replicas")
    assert nodes == sorted([pool["cpu1"], pool["cpu1"], pool["cpu2"], pool["cpu2"]])


def test_pods_wait_while_the_extender_is_down_and_land_right_once_it_is_back(cluster, fresh_namespace):
    pool = cluster.pool(x=gpu_node(4, zone="z1"), y=gpu_node(4, zone="z2"))
    ns = fresh_namespace
    half = bound_node(cluster, ns, create_pod(cluster, ns, pool["pool"], "half", gpus=2))
    cluster.extender.stop()
    try:
        create_pod(cluster, ns, pool["pool"], "waits", gpus=2)
        # the scheduler's own error naming our URL: with ignorable: false the attempt fails
        unschedulable_message(cluster, ns, "waits", f"{cluster.extender.url}/filter")
    finally:
        cluster.extender.start()  # a new process: its picture comes from the API alone
    # It fills the node already half full, as it would have had the extender never been away.
    assert bound_node(cluster, ns, "waits") == half


def test_default_scheduler_with_the_marker_calls_the_extender_for_marked_pods_only(cluster, fresh_namespace):
    pool = cluster.pool(a100=gpu_node(4))
    ns = fresh_namespace
    wants_t4 = {"gpus": 1, "annotations": {GPU_PRODUCT_ANNOTATION: T4}}
    # Per pod, not by the extender's global call count (other tests' pending pods are retried by the
    # inferplane scheduler meanwhile): the extender refuses an A100 to a pod that wants a T4, so the
    # unmarked pod landing there shows it was never asked, and the marked pod's refusal, in the
    # extender's words, shows it was.
    unmarked = create_pod(
        cluster, ns, pool["pool"], "unmarked", scheduler=cluster.marker_scheduler, **wants_t4
    )
    assert bound_node(cluster, ns, unmarked) == pool["a100"]
    marked = fx.pod("marked", namespace=ns, node_selector={POOL: pool["pool"]},
                    scheduler_name=cluster.marker_scheduler, **wants_t4)  # fmt: skip
    marked["metadata"].pop("uid")
    marked.pop("status")
    marked["spec"]["containers"][0]["resources"]["limits"]["ml.example/placement"] = "1"
    k8s.CoreV1Api(cluster.cp.api()).create_namespaced_pod(ns, marked)
    unschedulable_message(
        cluster, ns, "marked", f"{pool['a100']}: GPU product {A100}; the pod needs one of {T4}"
    )


def test_a_burst_of_gpu_replicas_packs_onto_one_node(cluster, fresh_namespace):
    """All replicas are created at once: each is placed before the previous one's binding has been
    watched, so only counting pods as they are bound keeps the packing right."""
    pool = cluster.pool(x=gpu_node(4, zone="z1"), y=gpu_node(4, zone="z2"))
    ns = fresh_namespace
    template = fx.pod(
        "m", namespace=ns, gpus=1, node_selector={POOL: pool["pool"]}, scheduler_name=cluster.scheduler
    )
    k8s.AppsV1Api(cluster.cp.api()).create_namespaced_deployment(ns, fx.deployment("m", template, replicas=4))
    core = k8s.CoreV1Api(cluster.cp.api())

    def placements() -> list[str] | None:
        nodes = [p.spec.node_name for p in core.list_namespaced_pod(ns, label_selector="app=m").items]
        return sorted(nodes) if len(nodes) == 4 and all(nodes) else None

    nodes = cluster.cp.wait_for(placements, SCHEDULE_TIMEOUT, "4 replicas bound")
    assert len(set(nodes)) == 1, nodes
