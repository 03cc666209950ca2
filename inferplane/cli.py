"""The `inferplane` command: one entry point for the servers, model-init and the offline tools.

Each part registers its own sub-commands (`<package>.commands.register(subparsers)`), so this file
only dispatches and turns a `UserError` into a one-line message and an exit code. Command modules
import their heavy dependencies inside the command function, keeping `inferplane --help` fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from inferplane import __version__
from inferplane.errors import Denied, UserError

# The packages that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "webhook.commands",
    "models.commands",
    "extender.commands",
    "router.commands",
    "scoring.commands",
    "demo.commands",
    "inferplane.localcluster.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferplane",
        description="Serve ML models on Kubernetes by annotating plain Deployments.",
    )
    parser.add_argument("--version", action="version", version=f"inferplane {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name or (exc.name and name.startswith(exc.name + ".")):
                continue  # that part is not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except Denied as exc:
        print(f"inferplane {args.command}: denied: {exc}", file=sys.stderr)
        return 1
    except UserError as exc:
        print(f"inferplane {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
