"""Run the e2e control plane by hand, to poke at it with kubectl while developing.

    python -m tests.e2e.up [--gpu-nodes N] [--cpu-nodes N]

Prints the kubeconfig and kubectl to use, then serves until Ctrl-C, when
every component is stopped. Same cluster as the test fixture, so what works
here works in the tests.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from .controlplane import ControlPlane, ControlPlaneError
from .tools import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.up", description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-nodes", type=int, default=1, help="fake CPU nodes to register")
    parser.add_argument("--gpu-nodes", type=int, default=1, help="fake nodes with 4 nvidia.com/gpu")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
