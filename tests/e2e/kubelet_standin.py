"""A test stand-in for the kubelet: it "runs" pods by starting their scoring server on loopback.

The e2e control plane has no kubelet, so pods are created and bound but never run. For tests that
need a pod to answer (the router's discovery, anything that dials a pod IP), this stand-in does the
kubelet's visible part for one pod at a time: it starts a stub scoring server (`router.stubserver`)
on an address of the pod's own in 127.0.100.0/22, on the scoring container's port, then writes
`status.podIP`, phase Running and the Ready condition through the status subresource, as a kubelet
would. `set_ready(False)` flips the condition (a failing readiness probe); `stop` kills the server.

    standin = KubeletStandin(k8s.CoreV1Api(control_plane.api()))
    pod = standin.run("ns", "blue-0", behaviour={"delay_ms": 5})
    standin.close()
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from router.testing import Stub, start_stub

_ADDRESSES = (f"127.0.{100 + n // 250}.{1 + n % 250}" for n in itertools.count())


@dataclass
class RunningPod:
    namespace: str
    name: str
    ip: str
    port: int
    stub: Stub


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scoring_port(pod: k8s.V1Pod) -> int:
    annotations = pod.metadata.annotations or {}
    if annotations.get("ml.example/scoring-port"):
        return int(annotations["ml.example/scoring-port"])
    wanted = annotations.get("ml.example/container")
    containers = pod.spec.containers or []
    chosen = next((c for c in containers if c.name == wanted), containers[0] if containers else None)
    ports = [p.container_port for p in (chosen.ports or [])] if chosen is not None else []
    return ports[0] if ports else 5001


class KubeletStandin:
    def __init__(self, core: k8s.CoreV1Api, node: str | None = None) -> None:
        self.core = core
        self.node = node  # where unbound pods are bound first (there is no scheduler in the harness)
        self.pods: dict[tuple[str, str], RunningPod] = {}

    def run(self, namespace: str, name: str, behaviour: dict[str, Any] | None = None) -> RunningPod:
        """Start the pod's scoring server and report the pod Running and Ready."""
        pod = self.core.read_namespaced_pod(name, namespace)
        if not pod.spec.node_name and self.node:
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
            }
            self.core.create_namespaced_binding(namespace, binding, _preload_content=False)
        ip, port = next(_ADDRESSES), _scoring_port(pod)
        stub = start_stub(ip, name, port=port, **(behaviour or {}))
        running = RunningPod(namespace, name, ip, port, stub)
        self.pods[(namespace, name)] = running
        self._write_status(running, ready=True)
        return running

    def set_ready(self, namespace: str, name: str, ready: bool) -> None:
        self._write_status(self.pods[(namespace, name)], ready)

    def stop(self, namespace: str, name: str) -> None:
        running = self.pods.pop((namespace, name), None)
        if running is not None:
            running.stub.stop()

    def close(self) -> None:
        for key in list(self.pods):
            self.stop(*key)

    def _write_status(self, running: RunningPod, ready: bool) -> None:
        now, state = _now(), "True" if ready else "False"
        status = {
            "phase": "Running",
            "podIP": running.ip,
            "podIPs": [{"ip": running.ip}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": state, "lastTransitionTime": now},
                {"type": "Ready", "status": state, "lastTransitionTime": now},
            ],
        }
        self.core.patch_namespaced_pod_status(running.name, running.namespace, {"status": status})
