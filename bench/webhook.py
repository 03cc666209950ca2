"""Webhook reviews/s and server-side latency, beside a no-op handler under the same gunicorn settings.

    python bench/webhook.py [--rounds 3] [--seconds 4] [--rate 500] [--threads 4] [--connections 16]

All on loopback, all stopping by themselves. Three servers with identical gunicorn settings
(1 worker, gthread, TLS, keep-alive, JSON access log) are started side by side:
  mutate   the real `/mutate-pod`: WebhookApp and `webhook.handlers.mutate_pod` on a Pod that
           names iris:3 from examples/catalog (the full injection, a patch of several operations);
  no-op    the same app (webhook.server.WebhookApp: routing, checks, metrics) with a handler that
           only parses the review and answers `allowed` for its uid, the least a correct webhook does;
  bare     a minimal WSGI callable giving that same answer: what our HTTP shell costs.
Each round loads each server in turn at its peak (closed loop, `--connections`) and reads the CPU
its processes used per review; then each gets a paced run at `--rate` with p50/p99 of the
server-side time (gunicorn's own request time from the JSON access log: application plus response
write, exact, not histogram buckets) and of the client-side time (wrk: adds TLS, loopback and
queueing).
The cost of the mutation is the CPU per review of mutate over no-op, the median of the rounds'
ratios. CPU, not peak rate: with wrk on the second of two cores, the no-op server's peak is bounded
by the load generator, not by its own work. Rounds, not one long run each: on a shared machine the
neighbours' load drifts, and a ratio of two runs seconds apart is what stays comparable; the
spread of the rounds is printed so a noisy run shows as one.
Targets (issue 2), printed beside the figures, never asserted: one worker >= 1,000 reviews/s;
p99 <= 5 ms at 500 reviews/s; the mutation costs at most 30 % over the no-op handler.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

# This file is named webhook.py: put the repository, not bench/, first on the path.
ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)
sys.path.insert(1, str(ROOT / "bench"))

import orjson  # noqa: E402
from _common import (  # noqa: E402
    free_port,
    json_lines,
    paced,
    percentile,
    process_tree_cpu_seconds,
    require,
    self_signed,
    table,
    wait_for_port,
    wrk,
)

# The example InstanceTypes and registrations a user starts from; the review names iris:3 (a PVC
# source, a checksummed model file, code unpacked from a tarball) on cpu-small.
CATALOG = ROOT / "examples" / "catalog"


def pod_review() -> dict[str, Any]:
    """A ReplicaSet's Pod CREATE as the apiserver sends it (wire.md A.10.1), naming iris:3."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "iris-7d9f8c-",
            "namespace": "default",
            "labels": {"app": "iris", "pod-template-hash": "7d9f8c"},
            "annotations": {"ml.example/model": "iris:3", "ml.example/instance-type": "cpu-small"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "iris-7d9f8c",
                                 "uid": "6f1c2c57-0000-4000-8000-000000000001", "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [{
                "name": "score", "image": "registry.local/iris:1", "ports": [{"containerPort": 5001}],
                "env": [{"name": "WORKERS", "value": "1"}],
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "securityContext": {}, "schedulerName": "default-scheduler",
            "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
        },
    }  # fmt: skip
    kind = {"group": "", "version": "v1", "kind": "Pod"}
    resource = {"group": "", "version": "v1", "resource": "pods"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "2b7c5e0a-1111-4a2b-9c3d-000000000042", "kind": kind, "resource": resource,
            "requestKind": kind, "requestResource": resource, "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }  # fmt: skip


# ---- the servers (run as `python bench/webhook.py --serve VARIANT ...`) ------------------------------


def _allowed(body: bytes) -> bytes:
    uid = orjson.loads(body)["request"]["uid"]
    return orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": True},
        }
    )


def _build(variant: str, catalog_dir: str) -> Any:
    from inferplane import serving
    from webhook.catalog import Catalog
    from webhook.config import InjectionConfig
    from webhook.handlers import Answer
    from webhook.server import WebhookApp, default_handlers

    if variant == "bare":

        def bare(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            answer = _allowed(body)
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
            )
            return [answer]

        return lambda: serving.Service(bare)

    def noop(body: bytes, catalog: Catalog, config: InjectionConfig) -> Answer:
        return Answer(_allowed(body), "", "allowed")

    handlers = default_handlers() if variant == "mutate" else {"mutate-pod": noop}
    catalog = Catalog.from_dir(catalog_dir)
    ready = threading.Event()
    ready.set()
    return lambda: serving.Service(WebhookApp(catalog, InjectionConfig(), ready, handlers=handlers))


def serve(args: argparse.Namespace) -> None:
    from inferplane import serving

    settings = serving.ServerSettings(
        name=f"bench-{args.serve}", port=args.port, host="127.0.0.1", certfile=args.cert,
        keyfile=args.key, workers=args.workers, threads=args.threads,
    )  # fmt: skip
    serving.serve(_build(args.serve, args.catalog), settings)


# ---- the driver ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    rate: float
    cpu_ms_per_review: float
    errors: int


@dataclass(frozen=True)
class Paced:
    rate: float
    server_p50_ms: float
    server_p99_ms: float
    client_p50_ms: float
    client_p99_ms: float
    errors: int


class Server:
    """One variant under gunicorn, started, checked and stopped by the driver."""

    def __init__(self, variant: str, args: argparse.Namespace, workdir: Path, cert: Path, key: Path,
                 body_file: Path) -> None:  # fmt: skip
        self.variant = variant
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/mutate-pod?timeout=10s"
        self.access_log = workdir / f"{variant}.access.log"
        self.run = {"body_file": body_file, "workdir": workdir}
        argv = [sys.executable, __file__, "--serve", variant, "--port", str(self.port), "--cert", str(cert),
                "--key", str(key), "--catalog", str(CATALOG), "--threads", str(args.threads),
                "--workers", str(args.workers)]  # fmt: skip
        with self.access_log.open("wb") as out, (workdir / f"{variant}.error.log").open("wb") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err)

    def check(self, body_file: Path) -> None:
        wait_for_port(self.port)
        curl = ["curl", "-sk", "-H", "Content-Type: application/json", "--data-binary", f"@{body_file}"]
        check = subprocess.run([*curl, self.url], capture_output=True, timeout=10)
        verdict = orjson.loads(check.stdout)["response"]
        if not verdict.get("allowed") or (self.variant == "mutate" and "patch" not in verdict):
            sys.exit(f"{self.variant}: unexpected answer {check.stdout[:300]!r}")

    def peak(self, seconds: float, connections: int) -> Peak:
        cpu = process_tree_cpu_seconds(self.process.pid)
        load = wrk(self.url, seconds=seconds, connections=connections, **self.run)
        cpu = process_tree_cpu_seconds(self.process.pid) - cpu
        return Peak(load.rate, cpu * 1000 / max(1, load.requests), load.errors + load.non2xx)

    def paced(self, args: argparse.Namespace) -> Paced:
        _, offset = json_lines(self.access_log)
        load = paced(self.url, rate=args.rate, seconds=args.seconds, connections=args.paced_connections,
                     **self.run)  # fmt: skip
        time.sleep(0.2)  # let the last access lines reach the file
        lines, _ = json_lines(self.access_log, offset)
        durations = [line["duration_ms"] for line in lines if line.get("logger") == "gunicorn.access"]
        return Paced(
            rate=load.rate,
            server_p50_ms=percentile(durations, 50),
            server_p99_ms=percentile(durations, 99),
            client_p50_ms=load.p50_ms,
            client_p99_ms=load.p99_ms,
            errors=load.errors + load.non2xx,
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def measure(variants: list[str], args: argparse.Namespace, workdir: Path, cert: Path, key: Path,
            body_file: Path) -> tuple[dict[str, list[Peak]], dict[str, Paced]]:  # fmt: skip
    """Rounds of peak runs, each server in turn, then one paced run each."""
    servers = {variant: Server(variant, args, workdir, cert, key, body_file) for variant in variants}
    try:
        for server in servers.values():
            server.check(body_file)
            wrk(server.url, seconds=2, connections=args.connections, **server.run)  # warm up
        peaks: dict[str, list[Peak]] = {variant: [] for variant in variants}
        for round_ in range(args.rounds):
            print(f"round {round_ + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
            for variant, server in servers.items():
                peaks[variant].append(server.peak(args.seconds, args.connections))
        print("paced runs ...", file=sys.stderr, flush=True)
        return peaks, {variant: server.paced(args) for variant, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


def report(peaks: dict[str, list[Peak]], paced_runs: dict[str, Paced], args: argparse.Namespace) -> str:
    rows = [["server", "peak rev/s", "CPU ms/rev", f"paced rev/s (@{args.rate:g})", "server p50/p99 ms",
             "client p50/p99 ms", "errors"]]  # fmt: skip
    cpu = {name: median([p.cpu_ms_per_review for p in runs]) for name, runs in peaks.items()}
    rate = {name: median([p.rate for p in runs]) for name, runs in peaks.items()}
    for name, f in paced_runs.items():
        server, client = (f.server_p50_ms, f.server_p99_ms), (f.client_p50_ms, f.client_p99_ms)
        errors = f.errors + sum(p.errors for p in peaks[name])
        rows.append([
            name, f"{rate[name]:,.0f}", f"{cpu[name]:.3f}", f"{f.rate:,.0f}",
            "{:.3f} / {:.3f}".format(*server), "{:.2f} / {:.2f}".format(*client), str(errors),
        ])  # fmt: skip
    ratios = [
        m.cpu_ms_per_review / n.cpu_ms_per_review
        for m, n in zip(peaks["mutate"], peaks["no-op"], strict=True)
    ]
    mutate, noop = paced_runs["mutate"], paced_runs["no-op"]
    lines = [
        table(rows),
        "(peak rev/s and CPU ms/rev: medians of the rounds)",
        "",
        f"mutate / no-op: the mutation costs {median(ratios) - 1:+.0%} CPU per review (target <= +30%); "
        f"rounds: {', '.join(f'x{r:.2f}' for r in ratios)}; "
        f"peak reviews/s x{rate['mutate'] / rate['no-op']:.2f}, "
        f"server p50 x{mutate.server_p50_ms / noop.server_p50_ms:.2f}, "
        f"p99 x{mutate.server_p99_ms / noop.server_p99_ms:.2f}",
        f"targets: one worker >= 1,000 reviews/s: {rate['mutate']:,.0f} with {args.workers}; "
        f"p99 <= 5 ms at {args.rate:g}/s: "
        f"server {mutate.server_p99_ms:.2f} ms, client {mutate.client_p99_ms:.2f} ms",
    ]
    if "bare" in peaks:
        lines.append(
            f"no-op / bare WSGI: CPU per review x{cpu['no-op'] / cpu['bare']:.2f} "
            "(what our HTTP shell costs: routing, checks, metrics)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="peak runs per server, interleaved")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run")
    parser.add_argument("--rate", type=float, default=500.0, help="offered reviews/s for the latency run")
    parser.add_argument("--connections", type=int, default=16, help="for the peak run")
    parser.add_argument("--paced-connections", type=int, default=8, help="for the paced run")
    parser.add_argument("--threads", type=int, default=4, help="as `inferplane webhook` (default 4)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-bare", action="store_true", help="skip the bare WSGI baseline")
    # Internal: run one server.
    parser.add_argument("--serve", choices=("mutate", "no-op", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--catalog", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)

    require("wrk", "apt-get install wrk")
    require("curl", "apt-get install curl")
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
        workdir = Path(tmp)
        body_file = workdir / "review.json"
        body_file.write_bytes(orjson.dumps(pod_review()))
        cert, key = self_signed(workdir)
        variants = ["mutate", "no-op"] + ([] if args.no_bare else ["bare"])
        peaks, paced_runs = measure(variants, args, workdir, cert, key, body_file)
    print(
        f"webhook bench: {args.workers} worker(s) x {args.threads} threads, gthread, TLS, keep-alive, "
        f"review {len(orjson.dumps(pod_review()))} B; {args.rounds} rounds of {args.seconds:g} s; "
        f"load: wrk, 1 thread, {args.connections} connections (peak), {args.paced_connections} paced"
    )
    print(report(peaks, paced_runs, args))


if __name__ == "__main__":
    main()
