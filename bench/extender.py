"""Extender latency at 5,000 nodes with 150,000 pods cached, the cache's memory, and scheduling
throughput with the real kube-scheduler with and without the extender.

    python bench/extender.py [--nodes 5000] [--pods 150000] [--iterations 300] [--no-scheduler]
                             [--pod-json served|minimal] [--whole-list] [--process [--extender-from DIR]]

Every figure is printed beside a baseline measured in the same run:
  cache      the cache filled the way the extender fills it (its Reflectors, LIST in pages of 500,
             each object made a record as it arrives): what it holds, and the peak while listing
             (tracemalloc), beside the size of the JSON it was built from and, with --whole-list,
             beside the peak of a LIST whose objects stay whole until the end (the code before
             the reflector's transform). Pods are JSON as a cluster serves them (`fixtures.served`,
             ~7 KB each) or, with --pod-json minimal, the bare fields placement reads (~0.6 KB);
  process    with --process: the resident memory of a real `inferplane extender` (gunicorn master
             and worker) once it has listed the same cluster from a stand-in apiserver on loopback:
             what the chart's memory limit must hold;
  handler    server-side time of /filter and /prioritize (parse, decide, encode: `Extender.answer`,
             what the request-duration histogram records), beside the Python floor for the same
             body: `orjson.loads` of it and `orjson.dumps` of its node names;
  http       the same calls over HTTP to the extender under gunicorn on loopback (keep-alive),
             beside GET /healthz on the same server: the HTTP floor;
  scheduler  pods/s bound by a real kube-scheduler (inferplane.localcluster) with our shipped
             configuration, beside the same configuration without the extender, and beside stock
             defaults (adaptive node sampling), on the same nodes.
Targets (issue 4): filter p99 <= 2 ms and prioritize p99 <= 4 ms server-side at 5,000 nodes;
cache <= 500 MB; the extender process within the chart's limit (scheduler.extender.resources);
throughput with the extender >= 0.5 of without. Nothing here asserts: the box is shared, so read
p99s beside their baselines.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not bench/

import orjson  # noqa: E402

from extender import fixtures as fx  # noqa: E402
from extender.config import Settings  # noqa: E402
from extender.server import Extender, create_app  # noqa: E402
from extender.service import NODES, PODS, freeze_after  # noqa: E402
from extender.state import ClusterState  # noqa: E402
from inferplane.metrics import Registry  # noqa: E402
from inferplane.reflector import Reflector  # noqa: E402

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


def pods(count: int, node_count: int, start: int = 0, end: int | None = None) -> Iterator[dict[str, Any]]:
    """Bound pods spread evenly; on GPU nodes the first few hold one GPU each (1-3 of them, so some
    GPUs stay free); every pod belongs to one of count/50 Deployments. `start`/`end`: a slice of
    them, made without the ones before (a LIST page)."""
    for j in range(start, count if end is None else end):
        i = j % node_count
        seen = j // node_count + 1  # pods on node i so far, this one included
        gpus = 1 if i % 5 == 0 and seen <= 1 + i % 3 else 0
        yield fx.pod(f"p-{j}", node_name=node_name(i), deployment=f"d-{j % max(count // 50, 1)}", gpus=gpus)


def render(objs: Iterable[dict[str, Any]], served: bool) -> list[bytes]:
    """Each object's JSON, as the apiserver would serve it (pods `fixtures.served` unless minimal)."""
    if served:
        return [orjson.dumps(fx.served(obj, seq=i)) for i, obj in enumerate(objs)]
    return [orjson.dumps(obj) for obj in objs]


class PagedLists:
    """Stands in for the KubeClient of the Reflectors: a LIST answers pages of pre-rendered JSON, a
    WATCH stays silent until the reflector stops. The JSON exists before the measurement starts, so
    tracemalloc counts what the reflector and the cache allocate, nothing of the stand-in."""

    def __init__(self, collections: dict[str, list[bytes]]) -> None:
        self._collections = collections

    def get(self, path: str, params: dict[str, Any], *, timeout: float, stream: bool = False) -> Any:
        if params.get("watch"):
            return _SilentWatch()
        objs = self._collections[path]
        start, end, meta = page_bounds(params, len(objs))
        return SimpleNamespace(data=b'{"metadata":%s,"items":[%s]}' % (meta, b",".join(objs[start:end])))


def page_bounds(params: dict[str, Any], count: int) -> tuple[int, int, bytes]:
    """Which of `count` objects a LIST with `limit`/`continue` gets, and the list's metadata JSON
    (the continue token is the next index)."""
    start = int(params.get("continue") or 0)
    end = min(start + int(params.get("limit") or count), count)
    return start, end, b'{"resourceVersion":"1"%s}' % (b',"continue":"%d"' % end if end < count else b"")


class _SilentWatch:
    def __init__(self) -> None:
        self._closed = threading.Event()

    def stream(self, amount: int) -> Iterator[bytes]:
        self._closed.wait()
        return iter(())

    def shutdown(self) -> None:
        self._closed.set()

    close = release_conn = shutdown


def load(
    node_count: int, pod_count: int, served: bool = True, whole: bool = False
) -> tuple[ClusterState, dict[str, float]]:
    """Fill a cache through the Reflectors, as the extender does, measuring the peak while the
    LISTs run and what the cache holds after. `whole`: the LIST keeps every object as parsed until
    its last page and the cache is built from the dicts (what the extender did before `transform`)."""
    collections = {NODES: render(nodes(node_count), False), PODS: render(pods(pod_count, node_count), served)}
    raw_mb = sum(len(obj) for objs in collections.values() for obj in objs) / 2**20
    client = PagedLists(collections)
    state = ClusterState()
    if whole:
        wiring: list[dict[str, Any]] = [
            {"on_replace": freeze_after(state.replace_nodes), "on_event": state.node_event},
            {"on_replace": freeze_after(state.replace_pods), "on_event": state.pod_event},
        ]
    else:
        wiring = [
            {"transform": state.node_record, "on_replace": freeze_after(state.replace_node_records),
             "on_event": state.node_record_event},
            {"transform": state.pod_record, "on_replace": freeze_after(state.replace_pod_records),
             "on_event": state.pod_record_event},
        ]  # fmt: skip
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    for path, callbacks in zip((NODES, PODS), wiring, strict=True):
        reflector = Reflector(client, path, **callbacks)  # type: ignore[arg-type]
        reflector.start()
        reflector.wait_synced()
        reflector.stop()
    seconds = time.perf_counter() - started
    del client, collections
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


def cache_figures(node_count: int, pod_count: int, served: bool, whole: bool) -> ClusterState:
    before = None
    if whole:
        _, before = load(node_count, pod_count, served, whole=True)
        gc.collect()
    state, cache = load(node_count, pod_count, served)
    print(
        f"cache ({'served' if served else 'minimal'} pod JSON, paged LIST, records): "
        f"{cache['cache_mb']:.0f} MB held for {state.sizes()}; peak while listing {cache['peak_mb']:.0f} MB "
        f"| JSON listed {cache['raw_json_mb']:.0f} MB; built in {cache['load_s']:.1f} s"
    )
    if before is not None:
        print(
            f"  before (LIST kept whole, cache built from the dicts): peak {before['peak_mb']:.0f} MB, "
            f"held {before['cache_mb']:.0f} MB, built in {before['load_s']:.1f} s; "
            f"peak paged/whole {cache['peak_mb'] / before['peak_mb']:.2f}"
        )
    return state


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

    state, _ = load(node_count, pod_count, served=False)  # what placement reads is the same either way
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


# ---- the real process: what the chart's memory limit must hold ----------------------------------


class StandInApiserver:
    """LIST pages of the synthetic cluster over HTTP, rendered as each is asked for; a WATCH is
    held open without events until it times out or the stand-in stops."""

    def __init__(self, node_count: int, pod_count: int, served: bool) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qsl, urlsplit

        counts = {NODES: node_count, PODS: pod_count}
        stopped = self.stopped = threading.Event()

        def page(path: str, start: int, end: int) -> list[dict[str, Any]]:
            if path == NODES:
                return nodes(node_count)[start:end]
            made = pods(pod_count, node_count, start, end)
            return [fx.served(pod, seq=start + i) for i, pod in enumerate(made)] if served else list(made)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                if query.get("watch") == "true":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    stopped.wait(float(query.get("timeoutSeconds", "300")))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                start, end, meta = page_bounds(query, counts[parts.path])
                body = b'{"metadata":%s,"items":%s}' % (meta, orjson.dumps(page(parts.path, start, end)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()


def _proc_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (its peak) of a process, and its PSS (shared pages split among sharers)."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            figures["Pss"] = int(line.split()[1]) / 1024
    return figures


def process_figures(node_count: int, pod_count: int, served: bool, code: Path | None) -> None:
    """Resident memory of `inferplane extender` once it has listed the cluster (from `code`, another
    checkout, when given: to measure the same figures before a change)."""
    from inferplane.localcluster.process import free_port

    apiserver = StandInApiserver(node_count, pod_count, served)
    workdir = Path(tempfile.mkdtemp(prefix="inferplane-bench-extender-"))
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        f"apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: '{apiserver.url}'}}}}]\n"
        f"users: [{{name: u, user: {{token: t}}}}]\n"
        f"contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n"
    )
    env = dict(os.environ, PYTHONPATH=str(code)) if code else None
    port = free_port()
    command = [sys.executable, "-m", "inferplane.cli", "extender", "--kubeconfig", str(kubeconfig),
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with (workdir / "extender.log").open("wb") as output:
        master = subprocess.Popen(command, env=env, cwd=code or None, stdout=output, stderr=output)
    started = time.monotonic()
    try:
        while True:
            try:
                if _ready(port):
                    break
            except OSError:
                pass
            if master.poll() is not None or time.monotonic() - started > 1800:
                raise RuntimeError(f"extender did not turn ready; see {workdir / 'extender.log'}")
            time.sleep(1)
        ready_s = time.monotonic() - started
        time.sleep(2)
        children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
        main, (worker,) = _proc_mb(master.pid), [_proc_mb(int(pid)) for pid in children]
    finally:
        master.terminate()
        master.wait(60)
        apiserver.stop()
    print(
        f"  {'served' if served else 'minimal'} pod JSON{f' (code from {code})' if code else ''}: "
        f"ready in {ready_s:.0f} s; worker peak RSS {worker['VmHWM']:.0f} MB (now {worker['VmRSS']:.0f}, "
        f"PSS {worker['Pss']:.0f}); master RSS {main['VmRSS']:.0f} MB (PSS {main['Pss']:.0f}); "
        f"pod peak <= {worker['VmHWM'] + main['Pss']:.0f} MB (worker peak + master PSS)"
    )


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
    from inferplane.localcluster.process import ManagedProcess, free_port, inferplane_argv, wait_for

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
                *inferplane_argv(),
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
    parser.add_argument(
        "--pod-json",
        choices=("served", "minimal"),
        default="served",
        help="pods as a cluster serves them (~7 KB JSON, default) or only the fields placement reads",
    )
    parser.add_argument(
        "--whole-list",
        action="store_true",
        help="also measure a LIST kept whole until its end (the extender before the reflector's transform)",
    )
    parser.add_argument(
        "--process", action="store_true", help="the resident memory of a real extender process"
    )
    parser.add_argument(
        "--extender-from",
        type=Path,
        metavar="DIR",
        help="with --process: run the extender from this checkout (a before/after comparison)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.nodes, args.pods)

    print(
        f"extender bench: {args.nodes} nodes, {args.pods} pods, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (a shared box: read p99s beside their floors)"
    )
    served = args.pod_json == "served"
    if args.process:
        print("the extender process (a stand-in apiserver serves the same cluster in pages):")
        process_figures(args.nodes, args.pods, served, args.extender_from)
    if not args.no_handler:
        state = cache_figures(args.nodes, args.pods, served, args.whole_list)
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
