"""`inferplane model register`: write the registration ConfigMap for a model from a few flags.

The output is parsed back with the same parser the webhook uses before it is printed, so what this
prints is a registration the cluster side accepts; flag syntax errors are reported against the flag.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferplane.errors import UserError
from models.registration import (
    MANIFEST_KEY,
    NAME_LABEL,
    UNPACK_KINDS,
    VERSION_LABEL,
    InvalidRegistration,
    Registration,
    parse_registration,
)

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class StorageFlag:
    """The one `--storage-*` flag given, with the options that go with its kind."""

    kind: str  # pvc, hostPath, nfs, image, csi, flexVolume
    value: str
    options: tuple[str, ...] = ()  # KEY=VALUE, for csi volumeAttributes / flexVolume options
    secret: str | None = None
    pull_policy: str | None = None


def parse_model(text: str) -> tuple[str, str]:
    name, sep, version = text.partition(":")
    if not sep or not name or not version or ":" in version:
        raise UserError(f"model {text!r} is not NAME:VERSION; write e.g. iris:3")
    return name, version


def _key_values(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} {item!r} is not KEY=VALUE; write e.g. {flag} containerName=models")
        out[key] = value
    return out


def storage_block(flag: StorageFlag) -> dict[str, Any]:
    value = flag.value
    if flag.kind == "pvc":
        claim, _, sub = value.partition(":")
        return {"pvc": {"claimName": claim, **({"subPath": sub} if sub else {})}}
    if flag.kind == "nfs":
        server, sep, path = value.partition(":")
        if not sep or not server or not path:
            raise UserError(
                f"--storage-nfs {value!r} is not SERVER:PATH; write e.g. nfs.internal:/exports/iris/3"
            )
        return {"nfs": {"server": server, "path": path}}
    if flag.kind == "hostPath":
        return {"hostPath": {"path": value}}
    if flag.kind == "image":
        return {
            "image": {"reference": value, **({"pullPolicy": flag.pull_policy} if flag.pull_policy else {})}
        }
    options_key, secret_key = {
        "csi": ("volumeAttributes", "nodePublishSecretRef"),
        "flexVolume": ("options", "secretRef"),
    }[flag.kind]
    block: dict[str, Any] = {"driver": value}
    if flag.options:
        block[options_key] = _key_values(flag.options, "--option")
    if flag.secret:
        block[secret_key] = {"name": flag.secret}
    return {flag.kind: block}


def file_entry(text: str, flag: str) -> dict[str, str]:
    """PATH[=CONTAINERPATH][@UNPACK] as a manifest entry."""
    spec, unpack = text, None
    head, at, tail = text.rpartition("@")
    if at and tail in UNPACK_KINDS:
        spec, unpack = head, tail
    elif at and "/" not in tail and "=" not in tail:
        raise UserError(f"{flag} {text!r}: unpack {tail!r} is not one of {', '.join(UNPACK_KINDS)}")
    path, eq, container = spec.partition("=")
    if not path or (eq and not container):
        raise UserError(
            f"{flag} {text!r} is not PATH[=CONTAINERPATH][@UNPACK]; write e.g. {flag} outputs/model.pkl"
        )
    entry = {"path": path}
    if eq:
        entry["containerPath"] = container
    if unpack is not None:
        entry["unpack"] = unpack
    return entry


def add_sha256(entries: list[dict[str, str]], directory: Path) -> None:
    for entry in entries:
        path = directory / entry["path"]
        try:
            with open(path, "rb") as handle:
                entry["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise UserError(
                f"--sha256-from {directory}: cannot read {entry['path']} ({exc.strerror}); "
                "point it at a local copy of the storage"
            ) from None


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as `|` blocks, so model.yaml reads as YAML inside the ConfigMap."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def build(
    model: str,
    storage: StorageFlag,
    *,
    files: Sequence[str],
    code: Sequence[str] = (),
    entry_script: str | None = None,
    namespace: str = "default",
    configmap: str | None = None,
    sha256_from: Path | None = None,
) -> tuple[dict[str, Any], Registration]:
    """The ConfigMap and the registration it parses into."""
    name, version = parse_model(model)
    if not files:
        raise UserError("give the model's files with --file PATH[=CONTAINERPATH][@UNPACK]")
    manifest: dict[str, Any] = {
        "storage": storage_block(storage),
        "files": [file_entry(f, "--file") for f in files],
    }
    if code:
        manifest["code"] = [file_entry(c, "--code") for c in code]
    if entry_script:
        manifest["entryScript"] = entry_script
    if sha256_from is not None:
        add_sha256(manifest["files"] + manifest.get("code", []), sha256_from)
    cm_name = configmap or re.sub(r"[^a-z0-9.-]", "-", f"model-{name}-{version}".lower()).strip("-.")
    if not _DNS_SUBDOMAIN.fullmatch(cm_name):
        raise UserError(
            f"--name {cm_name!r} is not a valid ConfigMap name; use lowercase letters, digits, '-', '.'"
        )
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cm_name,
            "namespace": namespace,
            "labels": {NAME_LABEL: name, VERSION_LABEL: version},
        },
        "data": {MANIFEST_KEY: yaml.dump(manifest, Dumper=_BlockDumper, sort_keys=False)},
    }
    try:
        return obj, parse_registration(yaml.safe_load(dump(obj)))
    except InvalidRegistration as exc:
        raise UserError(f"the flags make an invalid registration: {exc}") from None


def dump(configmap: dict[str, Any]) -> str:
    return yaml.dump(configmap, Dumper=_BlockDumper, sort_keys=False)
