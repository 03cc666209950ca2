"""Build the real Kubernetes and helm binaries the local control plane runs, once per version.

`inferplane demo`, `inferplane cluster up` and the e2e suite run the genuine
kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and helm. No
binary download is possible here, so they are compiled from the Go modules
pinned in ``gomod/kubernetes/go.mod`` and ``gomod/helm/go.mod`` (package data
beside this file) and kept in a cache outside the repository, keyed by
version, so only the first run pays the several-minute compile:

    ${INFERPLANE_CACHE:-~/.cache/inferplane}/k8s/<version>/bin/
    ${INFERPLANE_CACHE:-~/.cache/inferplane}/helm/<version>/bin/

Usage: ``inferplane cluster build [kubernetes|helm|all]`` (or
``python -m inferplane.localcluster.build``). It is idempotent, safe to run
from two processes at once (a file lock serialises builds), and exits non-zero
with the tail of the compiler output when a build fails.

Standard library only, so that loading it (the chart tests do, for helm) costs
nothing and needs none of the control plane's dependencies.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# The pinned go.mod/go.sum/tools.go of each toolset, shipped as package data.
GOMOD_DIR = Path(__file__).resolve().parent / "gomod"
HEARTBEAT_SECONDS = 60


class BuildError(RuntimeError):
    """A binary could not be built or found; the message says what to do."""


@dataclass(frozen=True)
class Toolset:
    """One pinned Go module and the commands built from it."""

    name: str  # cache sub-directory
    module_dir: Path  # holds the go.mod that pins the version
    module: str  # the module whose version names the cache directory
    commands: dict[str, str]  # binary name -> Go package
    ldflags: Callable[[str], list[str]]  # version -> -X flags stamping it in

    def version(self) -> str:
        """The pinned version, read from go.mod so there is one source of truth."""
        return module_version(self.module_dir / "go.mod", self.module)

    def bin_dir(self, version: str | None = None) -> Path:
        return cache_root() / self.name / (version or self.version()) / "bin"


def cache_root() -> Path:
    env = os.environ.get("INFERPLANE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "inferplane"


def module_version(go_mod: Path, module: str) -> str:
    """Return the version ``go_mod`` requires for ``module``."""
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE)
    match = pattern.search(go_mod.read_text())
    if not match:
        raise BuildError(f"{go_mod} does not require {module}")
    return match.group(1)


def _kubernetes_ldflags(version: str) -> list[str]:
    # Without these the binaries report v0.0.0: kubectl then warns about
    # version skew and anything that gates on the server version misbehaves.
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return flags


def _helm_ldflags(version: str) -> list[str]:
    # helm's own version, and the Kubernetes version it assumes when it renders
    # without a cluster (.Capabilities.KubeVersion), which upstream derives
    # from the client-go it was built against (v0.X.Y -> 1.X).
    client_go = module_version(GOMOD_DIR / "helm" / "go.mod", "k8s.io/client-go")
    kube_minor = client_go.lstrip("v").split(".")[1]
    flags = [f"-X helm.sh/helm/v3/internal/version.version={version}"]
    flags += ["-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={kube_minor}"]
    return flags


KUBERNETES = Toolset(
    name="k8s",
    module_dir=GOMOD_DIR / "kubernetes",
    module="k8s.io/kubernetes",
    commands={
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    },
    ldflags=_kubernetes_ldflags,
)

HELM = Toolset(
    name="helm",
    module_dir=GOMOD_DIR / "helm",
    module="helm.sh/helm/v3",
    commands={"helm": "helm.sh/helm/v3/cmd/helm"},
    ldflags=_helm_ldflags,
)

TOOLSETS = {"kubernetes": KUBERNETES, "helm": HELM}


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        # Static binaries, no C toolchain needed.
        CGO_ENABLED="0",
        # Never fetch a different Go toolchain; fail with go's own clear message.
        GOTOOLCHAIN="local",
        # go.sum is committed: refuse to silently rewrite it. No VCS stamping:
        # the main module is a folder of this repo and its git state is noise.
        GOFLAGS="-mod=readonly -buildvcs=false",
        # Kubernetes is released and tested with encoding/json v1. The v2
        # experiment is off by default in Go 1.26 (and v1.35 with it forced on
        # still served /openapi/v2 and kubectl apply fine here), but a later Go
        # that enables it by default must not silently change the binaries.
        GOEXPERIMENT="nojsonv2",
    )
    return env


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _find_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("`go` is not on PATH: install Go >= 1.25 to build the Kubernetes binaries")
    return go


def _run_go_build(toolset: Toolset, version: str, names: list[str], out_dir: Path, log: Path) -> None:
    go = _find_go()
    ldflags = " ".join(["-s", "-w", *toolset.ldflags(version)])
    argv = [
        go, "build", "-p", str(os.cpu_count() or 2), "-trimpath", "-ldflags", ldflags,
        "-o", f"{out_dir}{os.sep}", *(toolset.commands[n] for n in names),
    ]  # fmt: skip
    started = time.monotonic()
    with open(log, "w") as out:
        out.write(" ".join(argv) + "\n")
        out.flush()
        proc = subprocess.Popen(
            argv, cwd=toolset.module_dir, env=_go_env(), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            while True:
                try:
                    proc.wait(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    minutes, seconds = divmod(int(time.monotonic() - started), 60)
                    print(f"  ... still building {version} ({minutes}m{seconds:02d}s)", flush=True)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if proc.returncode != 0:
        raise BuildError(
            f"go build of {', '.join(names)} {version} failed (exit {proc.returncode}); "
            f"full log: {log}\n{_tail(log)}"
        )


def ensure(toolset: Toolset) -> dict[str, Path]:
    """Return ``{binary name: path}``, building whatever is not cached yet."""
    version = toolset.version()
    bin_dir = toolset.bin_dir(version)
    wanted = {name: bin_dir / name for name in toolset.commands}
    if all(p.is_file() and os.access(p, os.X_OK) for p in wanted.values()):
        return wanted
    _find_go()
    version_dir = bin_dir.parent
    with _locked(version_dir):
        missing = [n for n, p in wanted.items() if not (p.is_file() and os.access(p, os.X_OK))]
        if not missing:  # another process built them while we waited for the lock
            return wanted
        print(f"building {', '.join(missing)} {version} (first run only, several minutes)...", flush=True)
        started = time.monotonic()
        bin_dir.mkdir(parents=True, exist_ok=True)
        # Same filesystem as bin/, so the final rename is atomic: a crash never
        # leaves a half-written binary where `ensure` would trust it.
        with tempfile.TemporaryDirectory(prefix="bin.tmp-", dir=version_dir) as tmp:
            _run_go_build(toolset, version, missing, Path(tmp), version_dir / "build.log")
            for name in missing:
                built = Path(tmp) / name
                if not built.is_file():
                    raise BuildError(f"go build reported success but produced no {built}")
                os.replace(built, wanted[name])
        seconds = round(time.monotonic() - started, 1)
        (version_dir / "build.json").write_text(
            json.dumps({"built": missing, "seconds": seconds, "version": version}, indent=2) + "\n"
        )
        print(f"built {', '.join(missing)} {version} in {seconds}s -> {bin_dir}", flush=True)
    return wanted


def find_etcd() -> Path:
    """Locate etcd: $INFERPLANE_ETCD, else the Debian ``etcd-server`` package's binary."""
    env = os.environ.get("INFERPLANE_ETCD")
    candidates = [env] if env else [shutil.which("etcd"), "/usr/bin/etcd"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise BuildError(
        "etcd not found: install it with `apt-get install -y etcd-server` "
        "or point INFERPLANE_ETCD at an etcd binary"
    )


def ensure_kubernetes() -> dict[str, Path]:
    """Kubernetes binaries plus etcd: everything the control plane starts."""
    binaries = ensure(KUBERNETES)
    binaries["etcd"] = find_etcd()
    return binaries


def ensure_helm() -> Path:
    """The pinned helm (the chart tests render and install with it)."""
    return ensure(HELM)["helm"]


def report(which: str = "all") -> int:
    """Build (or find) ``kubernetes``, ``helm`` or ``all``, print each binary's path; an exit code.

    Shared by ``inferplane cluster build`` and ``python -m``, so both print the
    same ``name: path`` lines that scripts cut the path from.
    """
    try:
        if which in ("kubernetes", "all"):
            for name, path in ensure_kubernetes().items():
                print(f"{name}: {path}")
        if which in ("helm", "all"):
            print(f"helm: {ensure_helm()}")
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    which = args[0] if args else "all"
    if which not in (*TOOLSETS, "all") or len(args) > 1:
        choices = "|".join(TOOLSETS)
        print(f"usage: python -m inferplane.localcluster.build [{choices}|all]", file=sys.stderr)
        return 2
    return report(which)


if __name__ == "__main__":
    sys.exit(main())
