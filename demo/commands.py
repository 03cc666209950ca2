"""CLI: `inferplane demo` — the whole flow on this machine: control plane, webhook, scheduler, router,
pods, traffic; no Docker, no cluster."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the example end to end on this machine (no Docker): a real control plane on loopback",
        description=(
            "Start a Kubernetes control plane on loopback (the binaries are built from pinned Go modules "
            "on the first run, several minutes, then cached), the inferplane webhook, scheduler extender "
            "and router, and a kubelet stand-in that runs pods as local processes; apply the example "
            "endpoint (examples/endpoint: blue 90 %%, green 10 %%, a GPU shadow mirroring 5 %%), send "
            "requests through the router and show what happened. Exits 0 when the split, the mirror "
            "and the answers are as annotated; stops everything it started."
        ),
    )
    parser.add_argument(
        "--requests", type=int, default=200, metavar="N", help="scoring requests (default 200)"
    )
    parser.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")
    parser.add_argument("--json-report", type=Path, metavar="FILE", help="write the outcome as JSON here")
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep logs and pod files here (default: a temporary directory, removed)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import signal
    import sys

    from demo.run import Demo, Options, StepFailed
    from inferplane.errors import UserError

    if args.requests < 1:
        raise UserError("--requests must be at least 1")
    # A terminal closed or a `kill` stops the demo the way Ctrl-C does: through the clean-up.
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _interrupt)
    demo = Demo(Options(requests=args.requests, keep=args.keep, workdir=args.workdir))
    error = None
    try:
        outcome = demo.run()
    except StepFailed as exc:
        outcome, error = None, str(exc)
        print(f"\ninferplane demo: step failed: {exc}", file=sys.stderr)
    ok = error is None and outcome is not None and outcome.ok
    if args.json_report:
        report = {
            "ok": ok,
            "error": error,
            "steps": demo.steps,
            "pods": demo.pods,
            "outcome": outcome.to_json() if outcome else None,
        }
        args.json_report.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if ok else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
