"""Webhook reviews/s and server-side latency, beside a no-op handler under the same gunicorn settings.

    python bench/webhook.py [--seconds 8] [--rate 500] [--threads 8] [--connections 16]

All on loopback, all stopping by themselves. Three servers run one after the other with identical
gunicorn settings (1 worker, gthread, TLS, keep-alive, JSON access log):
  mutate   the real `/mutate-pod`: WebhookApp and `webhook.handlers.mutate_pod` on a Pod that
           names iris:3 from examples/catalog (the full injection, a patch of several operations);
  no-op    the same app (webhook.server.WebhookApp: routing, checks, metrics) with a handler that
           only parses the review and answers `allowed` for its uid, the least a correct webhook does;
  bare     a minimal WSGI callable giving that same answer: what our HTTP shell costs.
For each: peak reviews/s (closed loop, `--connections`), the CPU the server's processes used per
review, then a paced run at `--rate` with p50/p99 of the server-side time (gunicorn's own request
time from the JSON access log: application plus response write, exact, not histogram buckets) and
of the client-side time (wrk: adds TLS, loopback and queueing).
Targets (issue 2), printed beside the figures, never asserted: one worker >= 1,000 reviews/s;
p99 <= 5 ms at 500 reviews/s; the mutation costs at most 30 % over the no-op handler.
The machine is shared: run it twice and trust figures that agree.
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
class Figures:
    peak_rate: float
    cpu_ms_per_review: float
    paced_rate: float
    server_p50_ms: float
    server_p99_ms: float
    client_p50_ms: float
    client_p99_ms: float
    errors: int


def measure(variant: str, args: argparse.Namespace, workdir: Path, cert: Path, key: Path,
            body_file: Path) -> Figures:  # fmt: skip
    port = free_port()
    stdout = workdir / f"{variant}.access.log"
    argv = [sys.executable, __file__, "--serve", variant, "--port", str(port), "--cert", str(cert),
            "--key", str(key), "--catalog", str(CATALOG), "--threads", str(args.threads),
            "--workers", str(args.workers)]  # fmt: skip
    with stdout.open("wb") as out, (workdir / f"{variant}.error.log").open("wb") as err:
        server = subprocess.Popen(argv, stdout=out, stderr=err)
        try:
            wait_for_port(port)
            url = f"https://127.0.0.1:{port}/mutate-pod?timeout=10s"
            curl = ["curl", "-sk", "-H", "Content-Type: application/json", "--data-binary", f"@{body_file}"]
            check = subprocess.run([*curl, url], capture_output=True, timeout=10)
            verdict = orjson.loads(check.stdout)["response"]
            if not verdict.get("allowed") or (variant == "mutate" and "patch" not in verdict):
                sys.exit(f"{variant}: unexpected answer {check.stdout[:300]!r}")
            run = {"body_file": body_file, "workdir": workdir}
            wrk(url, seconds=2, connections=args.connections, **run)  # warm up
            cpu = process_tree_cpu_seconds(server.pid)
            peak = wrk(url, seconds=args.seconds, connections=args.connections, **run)
            cpu = process_tree_cpu_seconds(server.pid) - cpu
            _, offset = json_lines(stdout)
            paced_load = paced(
                url, rate=args.rate, seconds=args.seconds, connections=args.paced_connections, **run
            )
            time.sleep(0.2)  # let the last access lines reach the file
            lines, _ = json_lines(stdout, offset)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    durations = [line["duration_ms"] for line in lines if line.get("logger") == "gunicorn.access"]
    return Figures(
        peak_rate=peak.rate,
        cpu_ms_per_review=cpu * 1000 / max(1, peak.requests),
        paced_rate=paced_load.rate,
        server_p50_ms=percentile(durations, 50),
        server_p99_ms=percentile(durations, 99),
        client_p50_ms=paced_load.p50_ms,
        client_p99_ms=paced_load.p99_ms,
        errors=peak.errors + peak.non2xx + paced_load.errors + paced_load.non2xx,
    )


def report(results: dict[str, Figures], args: argparse.Namespace) -> str:
    rows = [["server", "peak rev/s", "CPU ms/rev", f"paced rev/s (@{args.rate:g})", "server p50/p99 ms",
             "client p50/p99 ms", "errors"]]  # fmt: skip
    for name, f in results.items():
        server, client = (f.server_p50_ms, f.server_p99_ms), (f.client_p50_ms, f.client_p99_ms)
        rows.append([
            name, f"{f.peak_rate:,.0f}", f"{f.cpu_ms_per_review:.3f}", f"{f.paced_rate:,.0f}",
            "{:.3f} / {:.3f}".format(*server), "{:.2f} / {:.2f}".format(*client), str(f.errors),
        ])  # fmt: skip
    mutate, noop = results["mutate"], results["no-op"]
    cost = noop.peak_rate / mutate.peak_rate - 1
    lines = [
        table(rows),
        "",
        f"mutate / no-op: peak reviews/s x{mutate.peak_rate / noop.peak_rate:.2f} (the mutation costs "
        f"{cost:+.0%} time per review; target <= +30%), CPU per review x"
        f"{mutate.cpu_ms_per_review / noop.cpu_ms_per_review:.2f}, server p50 x"
        f"{mutate.server_p50_ms / noop.server_p50_ms:.2f}, "
        f"p99 x{mutate.server_p99_ms / noop.server_p99_ms:.2f}",
        f"targets: one worker >= 1,000 reviews/s: {mutate.peak_rate:,.0f} with {args.workers}; "
        f"p99 <= 5 ms at {args.rate:g}/s: "
        f"server {mutate.server_p99_ms:.2f} ms, client {mutate.client_p99_ms:.2f} ms",
    ]
    if "bare" in results:
        bare = results["bare"]
        lines.append(
            f"no-op / bare WSGI: peak x{noop.peak_rate / bare.peak_rate:.2f} "
            "(what our HTTP shell costs: routing, checks, metrics)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=500.0, help="offered reviews/s for the latency run")
    parser.add_argument("--connections", type=int, default=16, help="for the peak run")
    parser.add_argument("--paced-connections", type=int, default=8, help="for the paced run")
    parser.add_argument("--threads", type=int, default=8)
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
        results = {}
        for variant in variants:
            print(f"measuring {variant} ...", file=sys.stderr, flush=True)
            results[variant] = measure(variant, args, workdir, cert, key, body_file)
    print(
        f"webhook bench: {args.workers} worker(s) x {args.threads} threads, gthread, TLS, keep-alive, "
        f"review {len(orjson.dumps(pod_review()))} B; "
        f"load: wrk, 1 thread, {args.connections} connections (peak), {args.paced_connections} paced"
    )
    print(report(results, args))


if __name__ == "__main__":
    main()
