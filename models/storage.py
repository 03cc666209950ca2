"""The `storage:` block: where a model's bytes live, as one Kubernetes volume source.

Each kind mirrors the Kubernetes volume source of the same name, so what a user writes here is what
they would write in a pod. The webhook turns it into a read-only volume with `volume_source`;
model-init only reads what is mounted, and names the storage in its errors with `describe`.

Pod Security: `restricted` allows only configMap, csi, downwardAPI, emptyDir, ephemeral,
persistentVolumeClaim, projected and secret volumes, so only `pvc` and `csi` pass it; `nfs`,
`flexVolume` and `image` need a `baseline` namespace; `hostPath` fails `baseline` too and is meant for
a single edge box whose namespace is `privileged`. Put a hostPath or NFS share behind a PV and use
`pvc` to stay `restricted`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from models import fields
from models.fields import Where
from models.values import STORAGE_KINDS, StorageSource

_EXAMPLES = {
    "pvc": "pvc: {claimName: models, subPath: iris/3}",
    "csi": "csi: {driver: blob.csi.azure.com, volumeAttributes: {containerName: models}}",
    "flexVolume": "flexVolume: {driver: azure/blobfuse, options: {container: models}}",
    "nfs": "nfs: {server: nfs.example.internal, path: /exports/models/iris/3}",
    "hostPath": "hostPath: {path: /var/lib/inferplane/models/iris/3}",
    "image": "image: {reference: registry.example/models/iris:3, pullPolicy: IfNotPresent}",
}
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def _absolute(value: Any, where: Where, field: str, example: str) -> str:
    text = fields.string(value, where, field, example=example)
    if not text.startswith("/"):
        where.fail(field, f"{text!r} is not an absolute path", f"write it from the root, e.g. {example}")
    return text


def _secret_ref(value: Any, where: Where, field: str) -> dict[str, str]:
    ref = fields.mapping(value, where, field, allowed=("name",), required=("name",), example="{name: creds}")
    return {"name": fields.string(ref["name"], where, fields.join(field, "name"), example="creds")}


def _sub_path(block: Mapping[str, Any], out: dict[str, Any], where: Where, field: str) -> None:
    if "subPath" in block:
        out["subPath"] = fields.relative_path(
            block["subPath"], where, fields.join(field, "subPath"), allow_dot=False, example="iris/3"
        )


def _pvc(block: Mapping[str, Any], where: Where, field: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "claimName": fields.string(block["claimName"], where, f"{field}.claimName", example="models")
    }
    _sub_path(block, out, where, field)
    return out


def _driver_backed(options_key: str, secret_key: str) -> Callable[[Mapping[str, Any], Where, str], dict]:
    """csi and flexVolume share a shape: a driver, a map of strings for it, a secret, a filesystem."""

    def parse(block: Mapping[str, Any], where: Where, field: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "driver": fields.string(block["driver"], where, f"{field}.driver", example="blob.csi.azure.com")
        }
        if options_key in block:
            out[options_key] = fields.string_map(
                block[options_key], where, f"{field}.{options_key}", example="{containerName: models}"
            )
        if secret_key in block:
            out[secret_key] = _secret_ref(block[secret_key], where, f"{field}.{secret_key}")
        if "fsType" in block:
            out["fsType"] = fields.string(block["fsType"], where, f"{field}.fsType", example="ext4")
        _sub_path(block, out, where, field)
        return out

    return parse


def _nfs(block: Mapping[str, Any], where: Where, field: str) -> dict[str, Any]:
    return {
        "server": fields.string(block["server"], where, f"{field}.server", example="nfs.example.internal"),
        "path": _absolute(block["path"], where, f"{field}.path", "/exports/models/iris/3"),
    }


def _host_path(block: Mapping[str, Any], where: Where, field: str) -> dict[str, Any]:
    return {"path": _absolute(block["path"], where, f"{field}.path", "/var/lib/inferplane/models/iris/3")}


def _image(block: Mapping[str, Any], where: Where, field: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reference": fields.string(
            block["reference"], where, f"{field}.reference", example="registry.example/models/iris:3"
        )
    }
    if "pullPolicy" in block:
        out["pullPolicy"] = fields.choice(
            block["pullPolicy"], where, f"{field}.pullPolicy", choices=_PULL_POLICIES
        )
    _sub_path(block, out, where, field)
    return out


# kind -> (allowed keys, required keys, parser)
_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], Callable[..., dict[str, Any]]]] = {
    "pvc": (("claimName", "subPath"), ("claimName",), _pvc),
    "csi": (
        ("driver", "volumeAttributes", "nodePublishSecretRef", "fsType", "subPath"),
        ("driver",),
        _driver_backed("volumeAttributes", "nodePublishSecretRef"),
    ),
    "flexVolume": (
        ("driver", "options", "secretRef", "fsType", "subPath"),
        ("driver",),
        _driver_backed("options", "secretRef"),
    ),
    "nfs": (("server", "path"), ("server", "path"), _nfs),
    "hostPath": (("path",), ("path",), _host_path),
    "image": (("reference", "pullPolicy", "subPath"), ("reference",), _image),
}
assert tuple(_KINDS) == STORAGE_KINDS


def parse_storage(value: Any, where: Where, field: str = "storage") -> StorageSource:
    """Exactly one storage kind, with that kind's required fields and nothing unknown."""
    block = fields.mapping(value, where, field, allowed=STORAGE_KINDS, example=_EXAMPLES["pvc"])
    if len(block) != 1:
        found = ", ".join(block) if block else "none"
        where.fail(
            field,
            f"expected exactly one storage kind, found {found}",
            f"keep one of: {', '.join(STORAGE_KINDS)}",
        )
    kind = next(iter(block))
    allowed, required, parse = _KINDS[kind]
    inner = fields.mapping(
        block[kind], where, f"{field}.{kind}", allowed=allowed, required=required, example=_EXAMPLES[kind]
    )
    return StorageSource(kind=kind, spec=parse(inner, where, f"{field}.{kind}"))


def describe(storage: StorageSource) -> str:
    """A few words naming the storage, for errors: `pvc models, subPath iris/3`."""
    spec = storage.spec
    main = {
        "pvc": lambda: spec["claimName"],
        "csi": lambda: spec["driver"],
        "flexVolume": lambda: spec["driver"],
        "nfs": lambda: f"{spec['server']}:{spec['path']}",
        "hostPath": lambda: spec["path"],
        "image": lambda: spec["reference"],
    }[storage.kind]()
    sub = f", subPath {spec['subPath']}" if "subPath" in spec else ""
    return f"{storage.kind} {main}{sub}"


def volume_source(storage: StorageSource) -> dict[str, Any]:
    """The pod volume (without its name) that mounts the storage read-only.

    The subPath, when given, belongs on the volumeMount: `storage.spec.get("subPath")`.
    """
    spec = {k: v for k, v in storage.spec.items() if k != "subPath"}
    if storage.kind == "pvc":
        return {"persistentVolumeClaim": {**spec, "readOnly": True}}
    if storage.kind in ("csi", "flexVolume", "nfs"):
        return {storage.kind: {**spec, "readOnly": True}}
    if storage.kind == "hostPath":
        # Directory, not DirectoryOrCreate: a mistyped path must fail, not serve an empty model.
        return {"hostPath": {**spec, "type": "Directory"}}
    return {"image": spec}
