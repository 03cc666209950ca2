"""`inferplane inject` and `inferplane lint`: the webhook's judgement, offline, on files.

Both run the very code the webhook runs (`webhook.workload.check_object` -> `webhook.mutate`), with
a catalog read from a directory instead of the cluster, so what they print is what the cluster
will do given the same InstanceTypes and registrations. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook.catalog import Catalog
    from webhook.config import InjectionConfig
    from webhook.manifests import Document
    from webhook.workload import Checked


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_inject(subparsers)
    _register_lint(subparsers)
    from webhook.server import add_server_parser  # `inferplane webhook`, the HTTPS server

    add_server_parser(subparsers)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog",
        metavar="DIR",
        help="folder of InstanceType and registration ConfigMap files (*.yaml, *.yml, *.json); the "
        "cluster is never consulted offline, so without it only the built-in default instance type exists",
    )
    parser.add_argument(
        "-n", "--namespace", default="default", help="namespace for objects that name none (default: default)"
    )
    from webhook.config import add_injection_arguments

    # The webhook's own settings, so what is printed is what the cluster's webhook would do.
    add_injection_arguments(parser)


def _register_inject(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inject",
        help="print what the webhook would make of workloads (offline, like istioctl kube-inject)",
        description="Read Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and Pods "
        "(multi-document YAML or JSON, Lists too) and print them as the webhook would leave them: pod "
        "templates injected as their pods will be, every other object unchanged. InstanceTypes and "
        "registration ConfigMaps in the input count as applied with it.",
    )
    parser.add_argument("-f", "--filename", required=True, help="manifest file, or - for stdin")
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    _common(parser)
    parser.set_defaults(run=run_inject)


def _register_lint(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="report what the webhook would refuse or warn about, by object and field",
        description="Check workloads and Pods the way the webhook will, and the catalog's InstanceTypes "
        "and registrations. Exits 1 when there is any error; warnings alone exit 0.",
    )
    parser.add_argument(
        "-f", "--filename", action="append", default=[], help="manifest file (repeatable), or -"
    )
    _common(parser)
    parser.set_defaults(run=run_lint)


def _config(args: argparse.Namespace) -> InjectionConfig:
    from webhook.config import injection_config

    return injection_config(args)


def _catalog(args: argparse.Namespace, config: InjectionConfig, documents: list[Document]) -> Catalog:
    from instance_types.default import DEFAULT_NAME, builtin_default
    from webhook.catalog import Catalog, catalog_objects

    default = builtin_default(config.default_cpu, config.default_memory)
    if args.catalog:
        catalog = Catalog.from_dir(args.catalog, default=default, namespace=args.namespace)
    else:
        catalog = Catalog(default)
        print(
            f"inferplane {args.command}: no --catalog: only the built-in instance type {DEFAULT_NAME} and "
            "the input's own registrations are known (the cluster is not consulted offline)",
            file=sys.stderr,
        )
    for document in documents:
        for obj, origin in catalog_objects(document, args.namespace):
            catalog.put(obj, origin)
    return catalog


def _each_object(
    documents: list[Document], visit: Callable[[dict[str, Any], str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Apply `visit(obj, where)` to every object, inside Lists too, keeping each document's shape."""
    out = []
    for document in documents:
        obj = document.obj
        items = obj.get("items")
        if obj["kind"].endswith("List") and isinstance(items, list):
            new_items = [
                visit(item, f"{document.where}, items[{index}]") if isinstance(item, dict) else item
                for index, item in enumerate(items)
            ]
            out.append({**obj, "items": new_items})
        else:
            out.append(visit(obj, document.where))
    return out


def _check(
    obj: dict[str, Any], where: str, args: argparse.Namespace, catalog: Catalog, config: InjectionConfig
) -> tuple[str, Checked]:
    from inferplane.errors import UserError
    from webhook.inject.problems import Malformed
    from webhook.workload import check_object, describe

    name = describe(obj, args.namespace)
    try:
        return name, check_object(obj, namespace=args.namespace, catalog=catalog, config=config)
    except Malformed as exc:
        raise UserError(f"{where}: {name}: {exc}") from exc


def run_inject(args: argparse.Namespace) -> int:
    from webhook.manifests import dump_json, dump_yaml, read_documents

    documents = read_documents(args.filename)
    config = _config(args)
    catalog = _catalog(args, config, documents)
    errors: list[str] = []

    def visit(obj: dict[str, Any], where: str) -> dict[str, Any]:
        name, checked = _check(obj, where, args, catalog, config)
        for finding in checked.findings:
            line = f"{name}: {finding.line()}"
            if finding.severity == "error":
                errors.append(line)
            else:
                print(f"inferplane inject: warning: {line}", file=sys.stderr)
        return checked.obj

    out = _each_object(documents, visit)
    if errors:
        for line in errors:
            print(f"inferplane inject: denied: {line}", file=sys.stderr)
        return 1
    sys.stdout.write(dump_json(out) if args.output == "json" else dump_yaml(out))
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from inferplane.errors import UserError
    from webhook.manifests import read_documents

    if not args.filename and not args.catalog:
        raise UserError("nothing to lint; pass -f FILE (workloads) and/or --catalog DIR")
    documents = [document for path in args.filename for document in read_documents(path)]
    config = _config(args)
    catalog = _catalog(args, config, documents)
    errors = [f"{problem.origin}: {problem.message}" for problem in catalog.problems()]
    warnings: list[str] = []
    checked_count = 0

    def visit(obj: dict[str, Any], where: str) -> dict[str, Any]:
        nonlocal checked_count
        try:
            name, checked = _check(obj, where, args, catalog, config)
        except UserError as exc:
            errors.append(str(exc))
            return obj
        checked_count += 1
        for finding in checked.findings:
            is_error = finding.severity == "error" or finding.strict
            (errors if is_error else warnings).append(f"{name}: {finding.line()}")
        return obj

    _each_object(documents, visit)
    for line in errors:
        print(line)
    for line in warnings:
        print(f"warning: {line}")
    print(
        f"inferplane lint: {checked_count} objects checked, {len(errors)} errors, {len(warnings)} warnings",
        file=sys.stderr,
    )
    return 1 if errors else 0
