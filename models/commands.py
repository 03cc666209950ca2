"""CLI: `inferplane model register` (offline) and `inferplane model-init` (the init container)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inferplane.errors import UserError

TERMINATION_LOG = "/dev/termination-log"

_STORAGE_FLAGS = {
    "--storage-pvc": (
        "pvc",
        "CLAIM[:SUBPATH]",
        "a PersistentVolumeClaim (the way to pass Pod Security restricted)",
    ),
    "--storage-csi": ("csi", "DRIVER", "a CSI driver; add --option KEY=VALUE for its volumeAttributes"),
    "--storage-flexvolume": (
        "flexVolume",
        "DRIVER",
        "a flexVolume driver (e.g. azure/blobfuse); --option for options",
    ),
    "--storage-nfs": ("nfs", "SERVER:PATH", "an NFS export"),
    "--storage-hostpath": (
        "hostPath",
        "PATH",
        "a directory on the node (edge boxes; fails Pod Security baseline)",
    ),
    "--storage-image": ("image", "REF", "an OCI image mounted as a volume"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    model = subparsers.add_parser("model", help="model registrations (offline tools)")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    reg = model_sub.add_parser(
        "register",
        help="print the registration ConfigMap for a model",
        description="Print a registration ConfigMap (kubectl apply -f - to create it).",
    )
    reg.add_argument("model", metavar="NAME:VERSION")
    storage = reg.add_mutually_exclusive_group(required=True)
    for flag, (kind, metavar, text) in _STORAGE_FLAGS.items():
        storage.add_argument(flag, metavar=metavar, help=text, dest="storage", type=lambda v, k=kind: (k, v))
    reg.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="csi volumeAttributes / flexVolume options",
    )
    reg.add_argument("--secret", metavar="NAME", help="csi nodePublishSecretRef / flexVolume secretRef")
    reg.add_argument("--pull-policy", choices=("Always", "IfNotPresent", "Never"), help="for --storage-image")
    for flag, text in (
        ("--file", "a model file (repeat); UNPACK is none, tar or zip"),
        ("--code", "a code file or archive laid out under the app root (repeat)"),
    ):
        reg.add_argument(
            flag, action="append", default=[], metavar="PATH[=CONTAINERPATH][@UNPACK]", help=text
        )
    reg.add_argument("--entry-script", metavar="FILE", help="the scoring script, relative to the app root")
    reg.add_argument("--namespace", default="default")
    reg.add_argument("--name", metavar="CONFIGMAP", help="default: model-NAME-VERSION")
    reg.add_argument(
        "--sha256-from", type=Path, metavar="DIR", help="a local copy of the storage: pin each file's sha256"
    )
    reg.set_defaults(run=run_register)

    init = subparsers.add_parser(
        "model-init",
        help="lay models out under the app root (the init container)",
        description="Copy, unpack and checksum each registered model into the app root. "
        "Exit 0, or 1 with one line on stderr saying which file failed and why.",
    )
    init.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="DIR",
        help="one mounted registration, or <name>/<version>/ directories of them",
    )
    init.add_argument(
        "--source",
        type=Path,
        required=True,
        metavar="DIR",
        help="the storage mount, or <name>/<version>/ directories of them",
    )
    init.add_argument("--app-root", type=Path, required=True, metavar="DIR")
    init.add_argument("--model", metavar="NAME:VERSION", help="which model a single --config registration is")
    init.add_argument("--progress-mib", type=int, default=64, metavar="N", help="log progress every N MiB")
    init.set_defaults(run=run_model_init)


def run_register(args: argparse.Namespace) -> int:
    from models.register import StorageFlag, build, dump

    kind, value = args.storage
    configmap, _ = build(
        args.model,
        StorageFlag(kind, value, tuple(args.option), args.secret, args.pull_policy),
        files=args.file,
        code=args.code,
        entry_script=args.entry_script,
        namespace=args.namespace,
        configmap=args.name,
        sha256_from=args.sha256_from,
    )
    sys.stdout.write(dump(configmap))
    return 0


def run_model_init(args: argparse.Namespace) -> int:
    from models.init import json_log, run

    log = json_log(sys.stderr)
    try:
        run(
            args.config,
            args.source,
            args.app_root,
            log=log,
            model=args.model,
            progress_every=max(1, args.progress_mib) * 1024 * 1024,
        )
    except UserError as exc:
        message = f"inferplane model-init: {exc}"
        print(message, file=sys.stderr)
        # The kubelet shows this file's text in `kubectl describe pod` (lastState.terminated.message).
        if os.path.exists(TERMINATION_LOG):
            try:
                with open(TERMINATION_LOG, "w") as handle:
                    handle.write(message)
            except OSError:
                pass
        return 1
    return 0
