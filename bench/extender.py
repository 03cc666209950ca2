"""Extender latency at 5,000 nodes with 150,000 pods cached, the cache's memory, and scheduling
throughput with the real kube-scheduler with and without the extender.

    python bench/extender.py [--nodes 5000] [--pods 150000] [--iterations 300] [--no-scheduler]

Every figure is printed beside a baseline measured in the same run:
  cache      memory the cache holds (tracemalloc, after the raw JSON is dropped) beside the size
             of the raw pod and node JSON it was built from;
  handler    server-side time of /filter and /prioritize (parse, decide, encode: `Extender.answer`,
             what the request-duration histogram records), beside the Python floor for the same
             body: `orjson.loads` of it and `orjson.dumps` of its node names;
  http       the same calls over HTTP to the extender under gunicorn on loopback (keep-alive),
             beside GET /healthz on the same server: the HTTP floor;
  scheduler  pods/s bound by a real kube-scheduler (inferplane.localcluster) with our shipped
             configuration, beside the same configuration without the extender, and beside stock
             defaults (adaptive node sampling), on the same nodes.
Targets (issue 4): filter p99 <= 2 ms and prioritize p99 <= 4 ms server-side at 5,000 nodes;
cache <= 500 MB; throughput with the extender >= 0.5 of without. Nothing here asserts: the box is
shared, so read p99s beside their baselines.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not bench/

import orjson  # noqa: E402

from extender import fixtures as fx  # noqa: E402
from extender.config import Settings  # noqa: E402
from extender.server import Extender, create_app  # noqa: E402
from extender.service import freeze_after  # noqa: E402
from extender.state import ClusterState  # noqa: E402
from inferplane.metrics import Registry  # noqa: E402

ZONES = ("z1", "z2", "z3")


# ---- a synthetic cluster ------------------------------------------------------------------------


def node_name(i: int) -> str:
    return f"gpu-{i:05d}" if i % 5 == 0 else f"cpu-{i:05d}"


def nodes(count: int) -> list[dict[str, Any]]:
    """4 CPU nodes to 1 GPU node; GPU nodes alternate 4x A100 and 8x H100; three zones."""
    out = []
    for i in range(count):
        zone = ZONES[i % 3]
        if i % 5:
            out.append(fx.node(node_name(i), cpu="16", memory="64Gi", zone=zone))
        elif i % 10:
            out.append(fx.node(node_name(i), cpu="64", memory="512Gi", gpus=4, product="A100", zone=zone))
        else:
            out.append(fx.node(node_name(i), cpu="96", memory="1Ti", gpus=8, product="H100", zone=zone))
    return out


def pods(count: int, node_count: int) -> Iterator[dict[str, Any]]:
    """Bound pods spread evenly; on GPU nodes the first few hold one GPU each (1-3 of them, so some
    GPUs stay free); every pod belongs to one of count/50 Deployments."""
    per_node: dict[int, int] = {}
    for j in range(count):
        i = j % node_count
        seen = per_node[i] = per_node.get(i, 0) + 1
        gpus = 1 if i % 5 == 0 and seen <= 1 + i % 3 else 0
        yield fx.pod(f"p-{j}", node_name=node_name(i), deployment=f"d-{j % max(count // 50, 1)}", gpus=gpus)


def load(node_count: int, pod_count: int) -> tuple[ClusterState, dict[str, float]]:
    """Build the cache as the reflectors would, measuring what it holds once the raw JSON is gone."""
    gc.collect()
    tracemalloc.start()  # before the raw JSON exists: the cache keeps some of its strings
    raw_nodes = nodes(node_count)
    raw_pods = list(pods(pod_count, node_count))
    raw_mb = (len(orjson.dumps(raw_nodes)) + sum(len(orjson.dumps(p)) for p in raw_pods)) / 2**20
    started = time.perf_counter()
    state = ClusterState()
    freeze_after(state.replace_nodes)(raw_nodes)
    freeze_after(state.replace_pods)(raw_pods)
    seconds = time.perf_counter() - started
    del raw_nodes, raw_pods
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.freeze()
    return state, {
        "cache_mb": held / 2**20,
        "peak_mb": peak / 2**20,
        "raw_json_mb": raw_mb,
        "load_s": seconds,
    }


# ---- timing -------------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def timed(calls: dict[str, Callable[[], Any]], iterations: int) -> dict[str, tuple[float, float, float]]:
    """p50 and p99 wall time and p50 CPU time of this thread, in ms, per call. Calls are interleaved
    round-robin so load from other processes hits each alike; the CPU time is what the call itself
    costs, which the wall time shows only on an idle box."""
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(iterations):
        for name, call in calls.items():
            started, started_cpu = time.perf_counter(), time.thread_time()
            call()
            cpu[name].append(time.thread_time() - started_cpu)
            wall[name].append(time.perf_counter() - started)
    return {name: (*percentiles(wall[name]), statistics.median(cpu[name]) * 1e3) for name in calls}


def request_bodies(names: list[str]) -> dict[str, bytes]:
    gpu = fx.pod("new-gpu", gpus=1, deployment="d-7", instance_type="gpu-small")
    cpu = fx.pod("new-cpu", deployment="d-8", instance_type="cpu-small")
    return {
        kind: orjson.dumps({"Pod": pod, "Nodes": None, "NodeNames": names})
        for kind, pod in (("gpu pod", gpu), ("cpu pod", cpu))
    }


def floor(body: bytes) -> bytes:
    return orjson.dumps(orjson.loads(body)["NodeNames"])


def handler_figures(extender: Extender, names: list[str], iterations: int) -> None:
    for kind, body in request_bodies(names).items():
        calls = {
            "filter": lambda b=body: extender.answer("filter", extender.filter, b),
            "prioritize": lambda b=body: extender.answer("prioritize", extender.prioritize, b),
            "floor": lambda b=body: floor(b),
        }
        report(kind, len(names), timed(calls, iterations), "floor")


def report(kind: str, count: int, result: dict[str, tuple[float, float, float]], baseline: str) -> None:
    base = result[baseline]
    for verb in ("filter", "prioritize"):
        p50, p99, cpu = result[verb]
        print(
            f"  {kind:8} {verb:10} {count:5} nodes  p50 {p50:6.2f}  p99 {p99:6.2f}  cpu {cpu:5.2f} ms"
            f"   | {baseline} p50 {base[0]:5.2f}  p99 {base[1]:5.2f}  cpu {base[2]:5.2f} ms"
        )


# ---- over HTTP ----------------------------------------------------------------------------------


def serve(port: int, node_count: int, pod_count: int) -> None:
    """Child process: the extender under gunicorn, its cache filled with the synthetic cluster."""
    from inferplane import serving

    state, _ = load(node_count, pod_count)
    extender = Extender(state, Settings(), Registry())
    settings = serving.ServerSettings(
        name="extender", port=port, host="127.0.0.1", threads=4, access_log=False
    )
    serving.serve(lambda: serving.Service(create_app(extender)), settings)


def http_figures(node_count: int, pod_count: int, iterations: int) -> None:
    from inferplane.localcluster.process import free_port

    port = free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(port),
            "--nodes",
            str(node_count),
            "--pods",
            str(pod_count),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 300
        while True:
            try:
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise
                time.sleep(0.5)
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def post(path: str, body: bytes) -> None:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status

        def healthz() -> None:
            connection.request("GET", "/healthz")
            connection.getresponse().read()

        names = [node_name(i) for i in range(node_count)]
        for kind, body in request_bodies(names).items():
            calls = {
                "filter": lambda b=body: post("/filter", b),
                "prioritize": lambda b=body: post("/prioritize", b),
                "GET /healthz": healthz,
            }
            report(kind, node_count, timed(calls, iterations), "GET /healthz")
    finally:
        child.terminate()
        child.wait(30)


# ---- with the real kube-scheduler ---------------------------------------------------------------


def scheduler_figures(node_count: int, pod_count: int, bind_verb: bool) -> None:
    """Pods/s bound by kube-scheduler with our shipped config, and the same config without the
    extender, on one control plane with the same nodes; pods are created before each scheduler
    starts, and the rate is taken from the first binding to the last."""
    import tempfile

    import yaml
    from kubernetes import client as k8s

    from inferplane import kube
    from inferplane.localcluster.controlplane import ControlPlane
    from inferplane.localcluster.process import ManagedProcess, free_port, wait_for

    workdir = Path(tempfile.mkdtemp(prefix="inferplane-bench-"))
    cp = ControlPlane(workdir).start()
    extender_proc = None
    try:
        core = k8s.CoreV1Api(cp.api())
        client = kube.connect(str(cp.kubeconfig))
        for i in range(node_count):
            gpus = 4 if i % 5 == 0 else 0
            cp.add_node(
                f"b-{i:04d}",
                cpu="64",
                memory="256Gi",
                gpus=gpus,
                labels={"topology.kubernetes.io/zone": ZONES[i % 3]},
                pods="250",
            )
        port = free_port()
        extender_proc = ManagedProcess(
            "extender",
            [
                "inferplane",
                "extender",
                "--port",
                str(port),
                "--kubeconfig",
                str(cp.kubeconfig),
                "--log-level",
                "warning",
            ],
            workdir / "extender.log",
        ).start()
        wait_for(lambda: _ready(port), 60, "extender ready", watch=[extender_proc])
        shipped = yaml.safe_load(
            (
                Path(__file__).resolve().parent.parent / "examples/scheduler/inferplane-scheduler.yaml"
            ).read_text()
        )
        rates = {}
        variants = (("without extender", "plain"), ("with extender", "extender"), ("stock defaults", "stock"))
        for label, variant in variants:
            name = f"bench-{variant}-{uuid.uuid4().hex[:4]}"
            ns = name
            core.create_namespace({"metadata": {"name": ns}})
            cp.wait_for(lambda n=ns: core.read_namespaced_service_account("default", n), message="namespace")
            for j in range(pod_count):
                pod = fx.pod(
                    f"p-{j}", namespace=ns, scheduler_name=name, gpus=1 if j % 4 == 0 else 0, cpu="100m"
                )
                pod["metadata"].pop("uid")
                pod.pop("status")
                core.create_namespaced_pod(ns, pod)
            config = yaml.safe_load(yaml.safe_dump(shipped))
            config.pop("leaderElection")
            config["profiles"][0]["schedulerName"] = name
            config["clientConnection"] = {"qps": 500, "burst": 1000}  # the same for all: not the limit
            if variant == "extender":
                config["extenders"][0]["urlPrefix"] = f"http://127.0.0.1:{port}"
                if bind_verb:
                    config["extenders"][0]["bindVerb"] = "bind"
            else:
                config.pop("extenders")
            if variant == "stock":  # what a cluster's default scheduler does: sampled nodes, stock plugins
                config = {
                    "profiles": [{"schedulerName": name}],
                    "clientConnection": config["clientConnection"],
                }
            bound = _watch_bindings(client, ns, pod_count)
            cp.start_scheduler(config, name)
            times = bound.result(timeout=600)
            cp.schedulers[name].stop()
            rates[label] = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
            print(f"  {label:17} {len(times)} pods on {node_count} nodes: {rates[label]:7.1f} pods/s")
        ratio = rates["with extender"] / rates["without extender"]
        print(
            f"  ratio with/without: {ratio:.2f} (target >= 0.5); "
            f"with/stock defaults: {rates['with extender'] / rates['stock defaults']:.2f}"
        )
    finally:
        if extender_proc is not None:
            extender_proc.stop()
        cp.stop()


def _watch_bindings(client: Any, namespace: str, count: int) -> Future[list[float]]:
    """When each pod of `namespace` is first seen bound, from a raw watch started now (the
    official client's models would cost more per event than the scheduler spends per pod)."""
    from inferplane.reflector import Reflector

    seen: dict[str, float] = {}
    result: Future[list[float]] = Future()

    def record(obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if obj["spec"].get("nodeName") and name not in seen:
            seen[name] = time.monotonic()
            if len(seen) == count and not result.done():
                result.set_result(sorted(seen.values()))
                reflector.stop(timeout=0)

    reflector = Reflector(
        client,
        f"/api/v1/namespaces/{namespace}/pods",
        on_replace=lambda items: [record(item) for item in items],
        on_event=lambda kind, obj: record(obj),
    )
    reflector.start()
    reflector.wait_synced(60)
    return result


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    connection.request("GET", "/readyz")
    return connection.getresponse().status == 200


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--scheduler-nodes", type=int, default=500)
    parser.add_argument("--scheduler-pods", type=int, default=500)
    parser.add_argument("--no-handler", action="store_true")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--bind-verb", action="store_true", help="add bindVerb: bind to the shipped config")
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.nodes, args.pods)

    print(
        f"extender bench: {args.nodes} nodes, {args.pods} pods, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (a shared box: read p99s beside their floors)"
    )
    if not args.no_handler:
        state, cache = load(args.nodes, args.pods)
        print(
            f"cache: {cache['cache_mb']:.0f} MB held for {state.sizes()} "
            f"| raw JSON it was built from {cache['raw_json_mb']:.0f} MB; built in {cache['load_s']:.1f} s; "
            f"peak while the listed objects were alive {cache['peak_mb']:.0f} MB"
        )
        extender = Extender(state, Settings(), Registry())
        print("handler (server-side):")
        all_names = [node_name(i) for i in range(args.nodes)]
        handler_figures(extender, all_names, args.iterations)
        handler_figures(extender, all_names[: max(args.nodes // 10, 1)], args.iterations)
        del state, extender
    if not args.no_http:
        print("over HTTP (gunicorn, loopback, keep-alive):")
        http_figures(args.nodes, args.pods, args.iterations)
    if not args.no_scheduler:
        print("with the real kube-scheduler:")
        scheduler_figures(args.scheduler_nodes, args.scheduler_pods, args.bind_verb)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
