"""How the demo's kubelet stand-in turns one container of a pod spec into a local process: pure
functions, tested without a cluster.

There are no containers on this machine, so a container's filesystem is a directory (its "root")
holding one symlink per volume mount, at the mount path, to the volume's directory; every absolute
path in the container's command, arguments, working directory and environment that falls under a
mount is rewritten into that root. `/var/azureml-app` in a pod becomes `<root>/var/azureml-app` here,
which is the app volume's directory. Environment follows Kubernetes: `env` values, `valueFrom`
fieldRefs of the downward API, and `$(VAR)` expansion in command and args.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

# The image whose entrypoint the stand-in knows: it runs our own CLI. Others cannot run here.
INFERPLANE_IMAGE = "inferplane"
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class Unrunnable(Exception):
    """This container cannot run on the stand-in; the message becomes the container's waiting reason."""


@dataclass(frozen=True)
class Mount:
    path: str  # inside the container, absolute
    source: Path  # the volume's directory on this machine (subPath applied)
    read_only: bool = False


def mounts_for(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> list[Mount]:
    """The container's volume mounts resolved to local directories, shortest path first."""
    out = []
    for mount in container.get("volumeMounts") or []:
        name = mount.get("name", "")
        if name not in volumes:
            raise Unrunnable(f"volume mount {name!r} names no volume of the pod")
        source = volumes[name]
        if mount.get("subPath"):
            source = source / mount["subPath"]
        out.append(Mount(str(PurePosixPath(mount["mountPath"])), source, bool(mount.get("readOnly"))))
    return sorted(out, key=lambda m: len(m.path))


def build_root(root: Path, mounts: Sequence[Mount]) -> None:
    """Create the container's root: a symlink at each mount path to the volume's directory."""
    root.mkdir(parents=True, exist_ok=True)
    for mount in mounts:
        link = root / mount.path.lstrip("/")
        if link.is_symlink() or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        mount.source.mkdir(parents=True, exist_ok=True)
        link.symlink_to(mount.source)


def rewrite(value: str, mounts: Sequence[Mount], root: Path) -> str:
    """`value` seen from outside the container: rooted when it is an absolute path at, under or
    above a mount (`/etc/inferplane/models` holds mounts at `.../iris/3`), unchanged otherwise."""
    if not value.startswith("/"):
        return value
    path = str(PurePosixPath(value))
    for mount in mounts:
        if (
            path == mount.path
            or path.startswith(mount.path + "/")
            or mount.path.startswith(path.rstrip("/") + "/")
        ):
            return str(root / path.lstrip("/"))
    return value


def field_value(field_path: str, pod: Mapping[str, Any], pod_ip: str) -> str:
    """The downward API's fieldRef values a scoring pod asks for."""
    meta = pod.get("metadata") or {}
    known = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if field_path not in known:
        raise Unrunnable(f"env fieldRef {field_path!r} is not supported by the demo kubelet")
    return str(known[field_path])


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, and an
    undefined `$(NAME)` stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(one, value)


def container_env(container: Mapping[str, Any], pod: Mapping[str, Any], pod_ip: str) -> dict[str, str]:
    """The container's own environment, in order, each value expanded against the ones before it."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        name = item.get("name", "")
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
        elif (item.get("valueFrom") or {}).get("fieldRef"):
            env[name] = field_value(item["valueFrom"]["fieldRef"].get("fieldPath", ""), pod, pod_ip)
        elif item.get("valueFrom"):
            source = next(iter(item["valueFrom"]))
            raise Unrunnable(f"env {name}: valueFrom.{source} is not supported by the demo kubelet")
        else:
            env[name] = ""
    if container.get("envFrom"):
        raise Unrunnable("envFrom is not supported by the demo kubelet")
    return env


def image_name(image: str) -> str:
    """`registry:5000/team/inferplane:0.1.0@sha256:…` -> `inferplane`."""
    last = image.split("@")[0].rsplit("/", 1)[-1]
    return last.split(":")[0]


def command_line(
    container: Mapping[str, Any], env: Mapping[str, str], inferplane: Sequence[str]
) -> list[str]:
    """The argv to run: command (or the image's entrypoint) + args, `$(VAR)`-expanded, with our
    `inferplane` standing in for the image's. Only the inferplane image can run here."""
    image = str(container.get("image", ""))
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if image_name(image) != INFERPLANE_IMAGE:
        raise Unrunnable(
            f"image {image!r}: the demo kubelet runs only the inferplane image (no container runtime)"
        )
    argv = [expand(str(part), env) for part in (command or ["inferplane"]) + args]
    if argv[0] != "inferplane":
        raise Unrunnable(f"command {argv[0]!r}: the demo kubelet runs only `inferplane ...` commands")
    return [*inferplane, *argv[1:]]


def resolve_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if str(port).isdigit():
        return int(port)
    for item in container.get("ports") or []:
        if item.get("name") == port:
            return int(item["containerPort"])
    raise Unrunnable(f"probe port {port!r} names no port of container {container.get('name')!r}")


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one container here."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


def launch(
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    pod_ip: str,
    volumes: Mapping[str, Path],
    root: Path,
    inferplane: Sequence[str],
    base_env: Mapping[str, str],
) -> Launch:
    """Plan a container's process: its root, argv, environment and working directory."""
    mounts = mounts_for(container, volumes)
    env = container_env(container, pod, pod_ip)
    argv = command_line(container, env, inferplane)
    argv = argv[: len(inferplane)] + [rewrite(a, mounts, root) for a in argv[len(inferplane) :]]
    local_env = {**base_env, **{k: rewrite(v, mounts, root) for k, v in env.items()}, "HOME": str(root)}
    if any(m.path == "/tmp" for m in mounts):
        local_env["TMPDIR"] = str(root / "tmp")
    working = container.get("workingDir")
    cwd = Path(rewrite(working, mounts, root)) if working else root
    return Launch(argv, local_env, cwd)
