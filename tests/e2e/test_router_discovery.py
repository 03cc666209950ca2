"""The router against a real apiserver: it finds pods and keys by list+watch and routes to them."""

from __future__ import annotations

import base64
import contextlib
import math
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from kubernetes import client as k8s

from inferplane.localcluster.controlplane import ControlPlane
from router.testing import free_port, wait_for_port

from .kubelet_standin import KubeletStandin

pytestmark = pytest.mark.e2e

NODE = "router-node"


def pod_manifest(name: str, deployment: str, annotations: dict[str, str], endpoint: str = "iris") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"ml.example/endpoint": endpoint, "ml.example/deployment": deployment},
            "annotations": {"ml.example/endpoint": endpoint, **annotations},
        },
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "score", "image": "scorer:1", "ports": [{"containerPort": 5001}]}],
        },
    }


def keys_secret(primary: str, secondary: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "iris-keys"},
        "data": {
            "primary": base64.b64encode(primary.encode()).decode(),
            "secondary": base64.b64encode(secondary.encode()).decode(),
        },
    }


@contextlib.contextmanager
def running_router(control_plane: ControlPlane, log_path: Path, *args: str) -> Iterator[str]:
    """`inferplane router` against the e2e apiserver; yields its base URL."""
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferplane.cli",
            "router",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--kubeconfig",
            str(control_plane.kubeconfig),
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=20, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        print(log_path.read_text()[-3000:])


@pytest.fixture
def router_process(control_plane: ControlPlane, fresh_namespace: str, tmp_path: Path) -> Iterator[str]:
    with running_router(
        control_plane, tmp_path / "router.log", "--namespace", fresh_namespace, "--no-autoscale"
    ) as url:
        yield url


@contextlib.contextmanager
def extra_namespace(control_plane: ControlPlane) -> Iterator[str]:
    core = k8s.CoreV1Api(control_plane.api())
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        control_plane.wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            30,
            f"ServiceAccount default in {name}",
        )
        yield name
    finally:
        core.delete_namespace(name)


def test_router_discovers_pods_and_keys_and_routes(
    control_plane: ControlPlane, fresh_namespace: str, router_process: str
) -> None:
    ns, core = fresh_namespace, k8s.CoreV1Api(control_plane.api())
    if not any(n.metadata.name == NODE for n in core.list_node().items):
        control_plane.add_node(NODE)
    standin = KubeletStandin(core)
    try:
        core.create_namespaced_secret(ns, keys_secret("first-key", "second-key"))
        for name, deployment, annotations in [
            (
                "blue-0",
                "blue",
                {"ml.example/traffic": "80", "ml.example/max-concurrent-requests-per-pod": "8"},
            ),
            (
                "blue-1",
                "blue",
                {"ml.example/traffic": "80", "ml.example/max-concurrent-requests-per-pod": "8"},
            ),
            (
                "green-0",
                "green",
                {"ml.example/traffic": "20", "ml.example/max-concurrent-requests-per-pod": "8"},
            ),
        ]:
            core.create_namespaced_pod(ns, pod_manifest(name, deployment, annotations))
            standin.run(ns, name)
        url = f"{router_process}/api/v1/endpoint/iris/score"
        control_plane.wait_for(
            lambda: requests.get(f"{router_process}/readyz", timeout=2).ok, 20, "router ready"
        )
        auth = {"Authorization": "Bearer first-key"}

        def routed() -> bool:
            answer = requests.post(url, data=b"{}", headers=auth, timeout=5)
            return answer.ok

        control_plane.wait_for(routed, 20, "first routed request")

        n = 400
        with requests.Session() as session:
            names = Counter(
                session.post(url, data=b"{}", headers=auth, timeout=5).json()["name"] for _ in range(n)
            )
        green = names["green-0"]
        spread = 5 * math.sqrt(n * 0.2 * 0.8)
        assert abs(green - n * 0.2) <= spread, names
        assert names["blue-0"] and names["blue-1"], names  # both blue pods share blue's 80 %

        # A readiness failure takes a pod out of rotation.
        standin.set_ready(ns, "blue-1", False)
        before = standin.pods[(ns, "blue-1")].stub.stats()["requests"]

        def drained() -> bool:
            seen = {requests.post(url, data=b"{}", headers=auth, timeout=5).json()["name"] for _ in range(30)}
            return "blue-1" not in seen

        control_plane.wait_for(drained, 20, "blue-1 out of rotation")
        settled = standin.pods[(ns, "blue-1")].stub.stats()["requests"]
        for _ in range(50):
            requests.post(url, data=b"{}", headers=auth, timeout=5)
        assert standin.pods[(ns, "blue-1")].stub.stats()["requests"] == settled >= before

        # Key rotation through the Secret: the new secondary works without a restart.
        core.replace_namespaced_secret("iris-keys", ns, keys_secret("first-key", "third-key"))
        control_plane.wait_for(
            lambda: (
                requests.post(url, data=b"{}", headers={"Authorization": "Bearer third-key"}, timeout=5).ok
            ),
            20,
            "rotated key accepted",
        )
        refused = requests.post(url, data=b"{}", headers={"Authorization": "Bearer second-key"}, timeout=5)
        assert refused.status_code == 401
        metrics = requests.get(f"{router_process}/metrics", timeout=5).text
        assert 'inferplane_router_pods{deployment="blue",endpoint="iris"' in metrics
    finally:
        standin.close()


def test_router_serves_several_namespaces_each_with_its_own_endpoints_and_keys(
    control_plane: ControlPlane, fresh_namespace: str, tmp_path: Path
) -> None:
    core = k8s.CoreV1Api(control_plane.api())
    if not any(n.metadata.name == NODE for n in core.list_node().items):
        control_plane.add_node(NODE)
    standin = KubeletStandin(core)
    with (
        extra_namespace(control_plane) as other,
        extra_namespace(control_plane) as unwatched,
        running_router(
            control_plane,
            tmp_path / "router.log",
            "--namespace",
            fresh_namespace,
            "--namespace",
            other,
            "--no-autoscale",
        ) as base,
    ):
        try:
            # iris in both watched namespaces, with different keys (Secret iris-keys of each);
            # solo (open, no key) in one; hidden in neither.
            layout = [
                (fresh_namespace, "a-key", [("blue-0", "blue", "iris")]),
                (other, "b-key", [("green-0", "green", "iris"), ("solo-0", "solo", "solo")]),
                (unwatched, "c-key", [("hidden-0", "hidden", "hidden")]),
            ]
            for ns, key, pods in layout:
                core.create_namespaced_secret(ns, keys_secret(key, key + "-2"))
                for pod, deployment, endpoint in pods:
                    open_ = {} if endpoint == "iris" else {"ml.example/auth": "none"}
                    core.create_namespaced_pod(ns, pod_manifest(pod, deployment, open_, endpoint))
                    standin.run(ns, pod)

            def post(path: str, key: str, **headers: str) -> requests.Response:
                return requests.post(
                    f"{base}{path}",
                    data=b"{}",
                    timeout=5,
                    headers={"Authorization": f"Bearer {key}", **headers},
                )

            a_iris = f"/api/v1/namespaces/{fresh_namespace}/endpoint/iris/score"
            control_plane.wait_for(lambda: post(a_iris, "a-key").ok, 20, "iris of the first namespace")
            control_plane.wait_for(lambda: post("/api/v1/endpoint/solo/score", "b-key").ok, 20, "solo")
            assert post(a_iris, "a-key").json()["name"] == "blue-0"
            assert post(a_iris, "b-key").status_code == 401  # the other namespace's key opens nothing here
            by_header = post("/api/v1/endpoint/iris/score", "b-key", **{"x-ml-namespace": other})
            assert by_header.json()["name"] == "green-0"
            ambiguous = post("/api/v1/endpoint/iris/score", "a-key")
            assert ambiguous.status_code == 409
            assert f"({', '.join(sorted([fresh_namespace, other]))})" in ambiguous.json()["error"]["message"]
            hidden = post("/api/v1/endpoint/hidden/score", "c-key")
            assert hidden.status_code == 404, hidden.text  # its namespace is not watched
        finally:
            standin.close()


def gauge(base: str, name: str) -> float:
    """The value of a router gauge (the first series of that name) from its /metrics."""
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in {base}/metrics")


def test_router_replicas_divide_each_pods_limit_and_releases_keep_their_own_leases(
    control_plane: ControlPlane, fresh_namespace: str, tmp_path: Path
) -> None:
    """Two replicas of release a share a pod's limit of 3 (1 + 2); release b's replica, in the same
    namespace, neither counts them nor shares their leader Lease; a replica that stops hands its
    share back by deleting its Lease, well before the Lease would have gone stale."""
    ns, core = fresh_namespace, k8s.CoreV1Api(control_plane.api())
    leases = k8s.CoordinationV1Api(control_plane.api())
    if not any(n.metadata.name == NODE for n in core.list_node().items):
        control_plane.add_node(NODE)
    standin = KubeletStandin(core)
    settings = {
        "ml.example/auth": "none",
        "ml.example/max-concurrent-requests-per-pod": "3",
        "ml.example/max-queue-wait-ms": "20000",
        "ml.example/request-timeout-ms": "20000",
    }
    core.create_namespaced_pod(ns, pod_manifest("wide-0", "wide", settings, endpoint="wide"))
    pod = standin.run(ns, "wide-0")

    def router(identity: str, prefix: str, *extra: str) -> contextlib.AbstractContextManager[str]:
        flags = ["--namespace", ns, "--lease-namespace", ns, "--lease-prefix", prefix, "--identity", identity]
        return running_router(control_plane, tmp_path / f"{identity}.log", *flags, *extra)

    try:
        with router("a-1", "rel-a") as one, router("b-1", "rel-b", "--no-autoscale") as other:
            with router("a-2", "rel-a") as two:
                for base in (one, two):
                    control_plane.wait_for(
                        lambda b=base: gauge(b, "inferplane_router_replicas") == 2,
                        20,
                        f"{base} to count two replicas of release a",
                    )
                    control_plane.wait_for(
                        lambda b=base: (
                            requests.post(f"{b}/api/v1/endpoint/wide/score", data=b"{}", timeout=5).ok
                        ),
                        20,
                        "routed",
                    )
                shares = sorted(gauge(b, "inferplane_router_concurrency_limit") for b in (one, two))
                assert shares == [1, 2]
                assert gauge(other, "inferplane_router_replicas") == 1  # release b counts only itself
                assert gauge(other, "inferplane_router_concurrency_limit") == 3
                # Six callers on each replica of release a, 0.6 s each: the pod sees 3 at once, not 6.
                with ThreadPoolExecutor(12) as callers:
                    answers = list(
                        callers.map(
                            lambda base: requests.post(
                                f"{base}/api/v1/endpoint/wide/score",
                                data=b"{}",
                                headers={"x-stub-delay-ms": "600"},
                                timeout=30,
                            ),
                            [one, two] * 6,
                        )
                    )
                assert [a.status_code for a in answers] == [200] * 12
                assert pod.stub.stats()["max_in_flight"] == 3
                names = {lease.metadata.name for lease in leases.list_namespaced_lease(ns).items}
                assert {"rel-a-autoscaler", "rel-a-load-a-1", "rel-a-load-a-2", "rel-b-load-b-1"} <= names
                assert not {"rel-b-autoscaler", "inferplane-router-autoscaler"} & names
                labels = leases.read_namespaced_lease("rel-b-load-b-1", ns).metadata.labels
                assert labels == {"ml.example/router-load": "rel-b"}
            stopped = time.monotonic()
            control_plane.wait_for(
                lambda: gauge(one, "inferplane_router_replicas") == 1, 10, "a-1 to take the whole limit back"
            )
            assert time.monotonic() - stopped < 5  # its Lease was deleted, not left to go stale (10 s)
            assert gauge(one, "inferplane_router_concurrency_limit") == 3
            assert "rel-a-load-a-2" not in {x.metadata.name for x in leases.list_namespaced_lease(ns).items}
    finally:
        standin.close()


def scaled_deployment(name: str, endpoint: str) -> dict:
    labels = {"app": name, "ml.example/endpoint": endpoint, "ml.example/deployment": name}
    annotations = {
        "ml.example/endpoint": endpoint,
        "ml.example/auth": "none",
        "ml.example/autoscale-min-replicas": "1",
        "ml.example/autoscale-max-replicas": "3",
        "ml.example/autoscale-target-utilization": "50",
        "ml.example/max-queue-wait-ms": "8000",
        "ml.example/request-timeout-ms": "20000",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "containers": [{"name": "score", "image": "scorer:1", "ports": [{"containerPort": 5001}]}]
                },
            },
        },
    }


@pytest.mark.slow
def test_router_scales_a_busy_deployment_up(
    control_plane: ControlPlane, fresh_namespace: str, tmp_path: Path
) -> None:
    ns, core = fresh_namespace, k8s.CoreV1Api(control_plane.api())
    apps = k8s.AppsV1Api(control_plane.api())
    if not any(n.metadata.name == NODE for n in core.list_node().items):
        control_plane.add_node(NODE)
    standin = KubeletStandin(core, node=NODE)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferplane.cli",
            "router",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--namespace",
            ns,
            "--lease-namespace",
            ns,
            "--identity",
            "router-a",
        ],
        stdout=open(tmp_path / "router.log", "wb"),  # noqa: SIM115 (the router writes to it until it stops)
        stderr=subprocess.STDOUT,
    )
    try:
        apps.create_namespaced_deployment(ns, scaled_deployment("scaler", "auto"))
        first = control_plane.wait_for(lambda: core.list_namespaced_pod(ns).items, 30, "first pod")[0]
        standin.run(ns, first.metadata.name, behaviour={"delay_ms": 3000})
        url = f"http://127.0.0.1:{port}/api/v1/endpoint/auto/score"
        wait_for_port("127.0.0.1", port, timeout=20, proc=proc)
        control_plane.wait_for(
            lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok, 20, "router ready"
        )
        control_plane.wait_for(
            lambda: requests.post(url, data=b"{}", headers={"x-stub-delay-ms": "0"}, timeout=5).ok,
            20,
            "first routed request",
        )
        # One pod, one request at a time, 3 s each: four callers mean 1 busy + 3 queued, 4 / 0.5 → 8 → max 3.
        with ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(requests.post, url, data=b"{}", timeout=30) for _ in range(4)]
            control_plane.wait_for(
                lambda: apps.read_namespaced_deployment_scale("scaler", ns).spec.replicas == 3,
                20,
                "scale to 3",
            )
            for call in calls:
                call.result()
        leases = k8s.CoordinationV1Api(control_plane.api()).list_namespaced_lease(ns).items
        names = {lease.metadata.name for lease in leases}
        assert {"inferplane-router-autoscaler", "inferplane-router-load-router-a"} <= names
    finally:
        proc.terminate()
        proc.wait(10)
        standin.close()
        print((tmp_path / "router.log").read_text()[-3000:])
