"""Model registrations: ConfigMaps labelled with a model name and version. (Interface stub: the models
owner fills it in.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferplane.errors import UserError

NAME_LABEL = "ml.example/model-name"
VERSION_LABEL = "ml.example/model-version"
MANIFEST_KEY = "model.yaml"
AZURE_CONFIG_KEY = "InitContainerConfig"
AZURE_STORAGE_KEY = "storage.yaml"
STORAGE_KINDS = ("pvc", "csi", "flexVolume", "nfs", "hostPath", "image")
UNPACK_KINDS = ("none", "tar", "zip")


class InvalidRegistration(UserError):
    """A registration that does not parse; the message names the ConfigMap and the problem."""


@dataclass(frozen=True)
class StorageSource:
    kind: str  # one of STORAGE_KINDS
    spec: Mapping[str, Any]  # the block under that key, as written


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative path in the storage source
    container_path: str  # relative path under the model's (or for code, the app root's) directory
    unpack: str = "none"  # one of UNPACK_KINDS
    sha256: str | None = None


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    configmap: str  # the ConfigMap's name ("" when read from a directory without one)
    namespace: str
    storage: StorageSource
    files: tuple[FileSpec, ...]
    code: tuple[FileSpec, ...] = ()
    entry_script: str | None = None


def registration_id(configmap: Mapping[str, Any]) -> tuple[str, str] | None:
    """(model name, version) from a ConfigMap's labels, or None when it is not a registration."""
    raise NotImplementedError


def parse_registration(configmap: Mapping[str, Any]) -> Registration:
    """Parse a registration ConfigMap; raises InvalidRegistration naming the ConfigMap."""
    raise NotImplementedError


def parse_registration_data(
    data: Mapping[str, str], *, name: str, version: str, configmap: str = "", namespace: str = ""
) -> Registration:
    """Parse a registration from its data keys (a ConfigMap's `data`, or files of a mounted one)."""
    raise NotImplementedError
