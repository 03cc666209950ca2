"""The chart's scheduler, run as the chart configures it: the real kube-scheduler with the rendered
KubeSchedulerConfiguration and the real extender beside it, each under the chart's own
ServiceAccount and RBAC, place a pod that names the chart's scheduler.

Both processes run on loopback (there is no kubelet to run the chart's pod); everything they are
given comes from `helm template`: the configuration file, the extender's arguments, the
ServiceAccount, the role bindings and the lease Role.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client as k8s

from inferplane.localcluster.controlplane import ControlPlane
from inferplane.localcluster.process import ManagedProcess, free_port, inferplane_argv, wait_for

from .helpers import CHART, helm, token_kubeconfig

pytestmark = pytest.mark.e2e


@pytest.fixture
def chart_scheduler(
    control_plane: ControlPlane, helm_binary: Path, fresh_namespace: str, tmp_path: Path
) -> Iterator[tuple[str, ManagedProcess, int]]:
    cp, ns = control_plane, fresh_namespace
    run = uuid.uuid4().hex[:6]
    fullname, name, port = f"e2e-{run}", f"chart-scheduler-{run}", free_port()
    rendered = helm(
        helm_binary, cp, "template", "e2e", str(CHART), "--namespace", ns,
        "--set", f"fullnameOverride={fullname}", "--set", "scheduler.enabled=true",
        "--set", f"scheduler.name={name}", "--set", f"scheduler.extender.port={port}",
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    component = [
        d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "scheduler"
    ]
    rbac = [
        d
        for d in component
        if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}))
    config_map = next(d for d in component if d["kind"] == "ConfigMap")
    deployment = next(d for d in component if d["kind"] == "Deployment")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = token_kubeconfig(cp, ns, account, tmp_path / "scheduler.kubeconfig")

    extender = ManagedProcess(
        "chart-extender",
        [*inferplane_argv(), *containers["extender"]["args"], f"--kubeconfig={kubeconfig}"],
        tmp_path / "extender.log",
    ).start()
    cp.processes.append(extender)
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    config["clientConnection"] = {"kubeconfig": str(kubeconfig)}
    config_file = tmp_path / "scheduler.json"
    config_file.write_text(json.dumps(config))
    # The chart's flags, but the config file and certificate directory are this machine's paths.
    flags = [
        f for f in containers["kube-scheduler"]["command"][1:] if not f.startswith(("--config", "--cert-dir"))
    ]
    scheduler = ManagedProcess(
        "chart-kube-scheduler",
        [
            cp.binaries["kube-scheduler"], f"--config={config_file}", *flags,
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", f"--cert-dir={tmp_path / 'certs'}",
        ],
        tmp_path / "kube-scheduler.log",
    ).start()  # fmt: skip
    cp.processes.append(scheduler)
    try:
        wait_for(
            lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
            60, "the extender to list nodes and pods with the chart's RBAC", watch=[extender],
        )  # fmt: skip
        leases = k8s.CoordinationV1Api(cp.api())
        wait_for(
            lambda: leases.read_namespaced_lease(name, ns).spec.holder_identity,
            60, "the chart's scheduler to hold its lease with the chart's Role", watch=[scheduler],
        )  # fmt: skip
        yield name, extender, port
    finally:
        for proc in (scheduler, extender):
            proc.stop()
            cp.processes.remove(proc)
        cluster_scoped = [d for d in rbac if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
        cp.kubectl(
            "delete", "--ignore-not-found", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": cluster_scoped}),
        )  # fmt: skip


def _filter_calls(port: int) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("inferplane_extender_requests_total{") and 'verb="filter"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_chart_scheduler_places_a_pod_through_its_extender(
    control_plane: ControlPlane, fresh_namespace: str, chart_scheduler: tuple[str, ManagedProcess, int]
) -> None:
    cp, ns = control_plane, fresh_namespace
    name, _, port = chart_scheduler
    pool = uuid.uuid4().hex[:8]
    node = f"{pool}-cpu"
    cp.add_node(node, labels={"e2e.inferplane.dev/pool": pool})
    before = _filter_calls(port)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "placed", "namespace": ns},
        "spec": {
            "schedulerName": name,
            "nodeSelector": {"e2e.inferplane.dev/pool": pool},
            "containers": [
                {"name": "score", "image": "example.invalid/score:1", "resources": {"requests": {"cpu": "1"}}}
            ],
        },
    }
    cp.kubectl("create", "-f", "-", input=json.dumps(pod))
    core = k8s.CoreV1Api(cp.api())
    bound = cp.wait_for(
        lambda: core.read_namespaced_pod("placed", ns).spec.node_name,
        timeout=60,
        message="the pod to be bound",
    )
    assert bound == node
    assert _filter_calls(port) > before, "the scheduler placed the pod without asking the extender"
