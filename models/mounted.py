"""Read registrations from directories: a ConfigMap mounted as a volume, or a tree of them.

Kubernetes mounts a ConfigMap as `<key> -> ..data/<key>` symlinks, `..data` itself a symlink to a
timestamped `..2024_01_01_00_00_00.123` directory it swaps atomically on update. Only the regular
keys count: names starting with `..` are the kubelet's bookkeeping, and a key must resolve to a
regular file inside the mounted directory.

`--config DIR` is either one registration (the keys as files) or a tree with one
`<name>/<version>/` directory per model, the way the webhook mounts several.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.values import AZURE_CONFIG_KEY, MANIFEST_KEY, InvalidRegistration

# No key of a real registration is larger (the ConfigMap limit); models.documents says so clearly.
_MAX_KEY_BYTES = 1024 * 1024 + 1


@dataclass(frozen=True)
class MountedRegistration:
    name: str
    version: str
    directory: Path
    data: dict[str, str]


def read_keys(directory: Path) -> dict[str, str]:
    """The ConfigMap keys mounted in `directory`: regular files only, decoded as UTF-8."""
    root = directory.resolve()
    keys: dict[str, str] = {}
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".."):
            continue
        real = entry.resolve()
        if not real.is_file() or not real.is_relative_to(root):
            continue
        with open(real, "rb") as handle:
            raw = handle.read(_MAX_KEY_BYTES)
        try:
            keys[entry.name] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRegistration(
                f"{entry}: not UTF-8 text (byte {exc.start}); a registration key is text"
            ) from None
    return keys


def write_mounted(directory: Path, data: dict[str, str], *, stamp: str = "..2024_01_01_00_00_00.0") -> None:
    """Write `data` the way the kubelet mounts a ConfigMap: keys linked through `..data` to a stamped
    directory. The tests use it to give model-init the tree it meets in a pod."""
    stamped = directory / stamp
    stamped.mkdir(parents=True)
    for key, value in data.items():
        (stamped / key).write_text(value)
    (directory / "..data").symlink_to(stamp)
    for key in data:
        (directory / key).symlink_to(f"..data/{key}")


def is_registration_dir(directory: Path) -> bool:
    return any((directory / key).is_file() for key in (MANIFEST_KEY, AZURE_CONFIG_KEY))


def find_registrations(config: Path, *, model: str | None = None) -> list[MountedRegistration]:
    """Every registration under `config`, sorted by name and version.

    A single registration carries no labels, so `model` ("name:version") says which model it is.
    """
    if not config.is_dir():
        raise InvalidRegistration(f"--config {config}: not a directory")
    if is_registration_dir(config):
        if model is None or model.count(":") != 1:
            raise InvalidRegistration(
                f"--config {config} holds one registration; say which model it is with --model NAME:VERSION"
            )
        name, version = model.split(":")
        return [MountedRegistration(name, version, config, read_keys(config))]
    found = []
    for name_dir in sorted(p for p in config.iterdir() if p.is_dir() and not p.name.startswith("..")):
        for version_dir in sorted(
            p for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith("..")
        ):
            if is_registration_dir(version_dir):
                found.append(
                    MountedRegistration(name_dir.name, version_dir.name, version_dir, read_keys(version_dir))
                )
    if not found:
        raise InvalidRegistration(
            f"--config {config}: no registration found; expected {MANIFEST_KEY} or {AZURE_CONFIG_KEY} "
            "in it, or in <name>/<version>/ directories under it"
        )
    return found
