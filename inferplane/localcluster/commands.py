"""CLI: `inferplane cluster up` and `inferplane cluster build` — the local control plane by hand.

`cluster up` runs the same cluster as the e2e fixture and the demo, to poke at with kubectl while
developing: it prints the kubeconfig and kubectl to use, then serves until Ctrl-C, when every
component is stopped. What works there works in the tests. `cluster build` only builds (or finds)
the pinned binaries, so a fresh machine pays the compile once, up front (scripts/install.sh).
"""

from __future__ import annotations

import argparse

BUILD_CHOICES = ("kubernetes", "helm", "all")


def register(subparsers: argparse._SubParsersAction) -> None:
    cluster = subparsers.add_parser(
        "cluster", help="a real Kubernetes control plane on loopback (no Docker), for development"
    )
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True, metavar="SUBCOMMAND")
    up = cluster_sub.add_parser(
        "up",
        help="run etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 until Ctrl-C",
        description=(
            "Start the local control plane (the binaries are built from pinned Go modules on the first "
            "run, several minutes, then cached in ${INFERPLANE_CACHE:-~/.cache/inferplane}), register "
            "fake Nodes, print the kubeconfig and kubectl to use, and serve until Ctrl-C."
        ),
    )
    up.add_argument("--cpu-nodes", type=int, default=1, help="fake CPU nodes to register")
    up.add_argument("--gpu-nodes", type=int, default=1, help="fake nodes with 4 nvidia.com/gpu")
    up.set_defaults(run=run_up)
    build = cluster_sub.add_parser(
        "build",
        help="build (or find in the cache) the pinned Kubernetes and helm binaries, print their paths",
    )
    build.add_argument("which", nargs="?", choices=BUILD_CHOICES, default="all")
    build.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    from inferplane.localcluster import build

    return build.report(args.which)


def run_up(args: argparse.Namespace) -> int:
    import signal
    import sys
    import tempfile
    import time
    from pathlib import Path

    from inferplane.localcluster import build
    from inferplane.localcluster.controlplane import ControlPlane, ControlPlaneError

    try:
        binaries = build.ensure_kubernetes()
    except build.BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="inferplane-cluster-"))
    cp = ControlPlane(workdir, binaries)
    # SIGTERM as well as Ctrl-C ends in the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        started = time.monotonic()
        cp.start()
        for i in range(args.cpu_nodes):
            cp.add_node(f"cpu-{i}")
        for i in range(args.gpu_nodes):
            cp.add_node(f"gpu-{i}", gpus=4)
        print(f"control plane {cp.version} up in {time.monotonic() - started:.1f}s at {cp.server}")
        print(f"  export KUBECONFIG={cp.kubeconfig}")
        print(f"  alias kubectl={cp.binaries['kubectl']}")
        print(f"  logs: {cp.log_dir}")
        print("Ctrl-C to stop.", flush=True)
        while True:
            cp.check_running()
            time.sleep(1)
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        cp.stop()
