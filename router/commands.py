"""CLI: `inferplane router` — the bundled inference router."""

from __future__ import annotations

import argparse
import os
import re
import socket

from router.defaults import LEASE_PREFIX, MIRROR_MAX_BODY

# A DNS label: what a namespace name is, and what is valid at the start of a Lease name and as a label value.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "router",
        help="the inference router: split, mirror, keys, per-pod concurrency, autoscaling",
        description=(
            "Serve POST /api/v1/endpoint/<endpoint>/score for the pods carrying ml.example/endpoint "
            "(found by list+watch), or for the endpoints of a --routes file (no cluster needed)."
        ),
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument(
        "--tls-cert-file",
        metavar="FILE",
        help="serve HTTPS with this certificate chain (re-read when the file changes)",
    )
    parser.add_argument("--tls-key-file", metavar="FILE", help="the key of --tls-cert-file")
    parser.add_argument(
        "--routes",
        metavar="FILE",
        help="static endpoints from YAML instead of the cluster (reloaded on SIGHUP)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        dest="namespaces",
        action="append",
        default=[],
        help="serve the endpoints of this namespace; repeat for several (default: every "
        "namespace). URLs name one with /api/v1/namespaces/<ns>/endpoint/<e>/score",
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="cluster to watch (default: in-cluster)")
    parser.add_argument(
        "--no-autoscale",
        dest="autoscale",
        action="store_false",
        help="never scale Deployments, even those with ml.example/autoscale-max-replicas "
        "(the load Leases stay: replicas still divide each pod's concurrency limit)",
    )
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the router's Leases (default $POD_NAMESPACE or 'default')",
    )
    parser.add_argument(
        "--lease-prefix",
        default=LEASE_PREFIX,
        help="names this release's Leases, <prefix>-autoscaler and <prefix>-load-<identity>: "
        "each router release in a namespace needs its own "
        f"(default {LEASE_PREFIX})",
    )
    parser.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME", socket.gethostname()),
        help="this replica's name in the Leases (default $POD_NAME or the host name)",
    )
    parser.add_argument(
        "--mirror-max-body-bytes",
        type=int,
        default=MIRROR_MAX_BODY,
        metavar="N",
        help="send mirror copies only of request bodies up to N bytes; each is held in "
        "memory until its copy is sent, and larger ones are counted as skipped "
        f"(default {MIRROR_MAX_BODY}, 1 MiB)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long requests in flight may take to finish (default 30)",
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from inferplane import logs
    from inferplane.errors import UserError
    from inferplane.serving import check_tls_files
    from router.app import Options
    from router.app import run as run_router

    check_tls_files(args.tls_cert_file, args.tls_key_file)  # a clear sentence, not a traceback
    if not DNS_LABEL.fullmatch(args.lease_prefix):
        raise UserError(
            f"--lease-prefix {args.lease_prefix!r}: use at most 63 lowercase letters, digits "
            "and '-', starting and ending with a letter or digit (it names Leases and is a label "
            "value)"
        )
    for namespace in args.namespaces:
        if not DNS_LABEL.fullmatch(namespace):
            raise UserError(
                f"--namespace {namespace!r}: not a namespace name "
                "(at most 63 lowercase letters, digits and '-')"
            )
    if args.namespaces and args.routes:
        raise UserError("--namespace is for the cluster; a --routes file names each endpoint's namespace")
    if args.mirror_max_body_bytes < 0:
        raise UserError(f"--mirror-max-body-bytes {args.mirror_max_body_bytes}: must be 0 or more")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: not a port number")
    logs.configure(args.log_level)
    return run_router(
        Options(
            host=args.host,
            port=args.port,
            tls_cert_file=args.tls_cert_file,
            tls_key_file=args.tls_key_file,
            routes=args.routes,
            namespaces=tuple(dict.fromkeys(args.namespaces)),
            kubeconfig=args.kubeconfig,
            autoscale=args.autoscale,
            lease_namespace=args.lease_namespace,
            lease_prefix=args.lease_prefix,
            identity=args.identity,
            drain_seconds=args.drain_seconds,
            mirror_max_body_bytes=args.mirror_max_body_bytes,
        )
    )
