"""CLI: `inferplane serve` — the Azure-compatible scoring server for an entry script (score.py)."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve an Azure-style entry script (init(), run()) on :5001: POST /score, GET /swagger.json",
        description=(
            "Load the entry script, call its init() once per worker, and answer POST /score with what "
            "run() returns. Flags win over Azure's environment variables (shown in brackets). "
            "If the script cannot be imported or init() raises, the server exits 3 with the traceback."
        ),
    )
    parser.add_argument(
        "--entry-script",
        metavar="FILE",
        help="the script, relative to the app root or absolute [AZUREML_ENTRY_SCRIPT]",
    )
    parser.add_argument(
        "--app-root",
        metavar="DIR",
        help="where model-init laid out the code and models [AML_APP_ROOT, /var/azureml-app]",
    )
    parser.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to listen on (default 5001)")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes, each with its own init() [WORKER_COUNT, 1]",
    )
    parser.add_argument(
        "--run-concurrency",
        type=int,
        metavar="N",
        help="run() calls at once per worker (default 1: scripts need not be thread-safe)",
    )
    parser.add_argument(
        "--init-timeout",
        type=int,
        metavar="SECONDS",
        dest="init_timeout_s",
        help="longest init() may take before start-up fails [WORKER_TIMEOUT, 300]",
    )
    parser.add_argument(
        "--scoring-timeout-ms",
        type=int,
        metavar="MS",
        help="answer 500 when run() takes longer [SCORING_TIMEOUT_MS, 3600000]",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        metavar="N",
        help="larger bodies get 413 (default 100 MiB, Azure's limit)",
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from scoring.server import serve, settings_from

    settings = settings_from(
        os.environ,
        entry_script=args.entry_script,
        app_root=args.app_root,
        host=args.host,
        port=args.port,
        workers=args.workers,
        run_concurrency=args.run_concurrency,
        init_timeout_s=args.init_timeout_s,
        scoring_timeout_ms=args.scoring_timeout_ms,
        max_request_bytes=args.max_request_bytes,
        log_level=args.log_level,
    )
    serve(settings)
    return 0
