"""`inferplane extender`: the scheduler extender beside kube-scheduler (plain HTTP on localhost)."""

from __future__ import annotations

import argparse

from extender.config import DEFAULT_ACCELERATORS

DEFAULT_PORT = 8890


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extender",
        help="serve the scheduler extender (/filter, /prioritize, /preempt)",
        description=(
            "Serve kube-scheduler's extender verbs for inferplane pods: GPU pods only where enough "
            "GPUs of their kind are free, bin-packed; CPU pods off GPU nodes; replicas spread. "
            "Watches nodes and pods through in-cluster config or a kubeconfig; ready once listed."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"listen port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="listen address (default 127.0.0.1: beside the scheduler)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="also listen here for Prometheus, serving only /metrics, /healthz and /readyz "
        "(default: none; /metrics is on --port too)",
    )
    parser.add_argument(
        "--metrics-host", default="0.0.0.0", help="listen address of --metrics-port (default 0.0.0.0)"
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument("--tls-cert-file", help="serve HTTPS with this PEM certificate")
    parser.add_argument("--tls-key-file", help="and this PEM key")
    parser.add_argument(
        "--cpu-pods-on-gpu-nodes",
        choices=("allow", "refuse"),
        default="allow",
        help="a CPU-only pod when no CPU node fits: place it on a GPU node, or keep it pending "
        "(default allow)",
    )
    parser.add_argument(
        "--marker-resource",
        action="append",
        default=[],
        metavar="NAME",
        help="another extended resource that only routes pods here and is no device "
        "(ml.example/placement always is). Repeatable",
    )
    parser.add_argument(
        "--accelerator-resource",
        action="append",
        default=[],
        metavar="NAME",
        help="another extended resource that is an accelerator: a name, or a prefix ending in * "
        "(example.com/fpga-*). Nodes offering one are GPU nodes, kept for pods that ask for one. "
        f"Repeatable; added to {', '.join(DEFAULT_ACCELERATORS)}",
    )
    parser.add_argument(
        "--relist-seconds",
        type=float,
        default=None,
        help="list everything again this often (default: only on 410)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=8,
        help="request threads (default 8)",
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from extender import service
    from extender.config import MARKER_RESOURCE, Settings
    from extender.resources import Accelerators
    from inferplane import kube, serving
    from inferplane.errors import UserError

    also_bind: tuple[str, ...] = ()
    if args.metrics_port is not None:
        if args.metrics_port == args.port:
            raise UserError(f"--metrics-port {args.metrics_port}: give a port other than --port")
        host = f"[{args.metrics_host}]" if ":" in args.metrics_host else args.metrics_host
        also_bind = (f"{host}:{args.metrics_port}",)
    # Refused before anything connects: a mistyped pattern would silently match nothing.
    accelerators = Accelerators(
        [*DEFAULT_ACCELERATORS, *args.accelerator_resource], markers=[MARKER_RESOURCE, *args.marker_resource]
    )

    client = kube.connect(
        args.kubeconfig,
        args.context,
        hint="run it in the cluster (the chart's scheduler pod) or pass --kubeconfig FILE",
    )
    settings = Settings(cpu_pods_on_gpu_nodes=args.cpu_pods_on_gpu_nodes)

    def build() -> serving.Service:
        return service.build(client, settings, accelerators, args.relist_seconds, args.metrics_port)[0]

    serving.serve(
        build,
        serving.ServerSettings(
            name="extender",
            port=args.port,
            host=args.host,
            certfile=args.tls_cert_file,
            keyfile=args.tls_key_file,
            workers=1,  # one cache per process: more workers would multiply watches and memory
            threads=args.threads,
            log_level=args.log_level,
            also_bind=also_bind,
        ),
    )
    return 0
