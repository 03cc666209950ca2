"""Lay one model out under the app root: the work of model-init, for one registration.

The pod contract (the webhook builds it, `inferplane model-init` runs it; see models.init):

    /etc/inferplane/models/<name>/<version>/   the registration ConfigMap, mounted (read-only)
    /mnt/models/<name>/<version>/              the model's storage, mounted (read-only, subPath applied)
    <app root>/                                an emptyDir shared with the scoring container

    inferplane model-init --config /etc/inferplane/models --source /mnt/models --app-root <app root>

What lands where:

    <app root>/azureml-models/<name>/<version>/<containerPath>   each of `files`
    <app root>/<containerPath>                                   each of `code`
    <app root>/.inferplane/                                      model-init's own state (markers, staging)

model-init writes nothing outside the app root, temporary files included, so it runs as non-root
with a read-only root filesystem. Rerunning it (the kubelet restarts a failed init container) is
safe:

- a plain file is copied to `.<name>.inferplane-partial` beside its target and renamed into place,
  so a reader never sees half a file and a rerun overwrites the leftover;
- an archive is unpacked into `.inferplane/staging/` and moved into place only once whole;
- when a model is complete a marker `.inferplane/models/<name>/<version>.json` records a digest of its
  registration. A rerun with the same registration does nothing; a changed registration (or a run
  that crashed before writing the marker) empties the model's directory and lays it out again. Code
  is overwritten in place: files a previous registration put there and the new one does not are left.

Each copy is streamed in 1 MiB chunks (never a whole file in memory), its sha256 computed on the way
and checked against the registration's before the file is renamed into place. Progress goes to the
log as JSON objects every `progress_every` bytes. Any failure raises LayoutError with one line naming
the model, the file and the cause.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from inferplane.errors import UserError
from models.archives import CHUNK, ArchiveError, unpack_tar, unpack_zip
from models.storage import describe
from models.values import MODELS_DIR, STATE_DIR, FileSpec, Registration

PROGRESS_EVERY = 64 * 1024 * 1024
PARTIAL_SUFFIX = ".inferplane-partial"

Log = Callable[[Mapping[str, Any]], None]


class LayoutError(UserError):
    """Why a model could not be laid out, in one line naming the model, the file and the cause."""


@dataclass(frozen=True)
class Outcome:
    model: str
    skipped: bool  # already laid out by an earlier run with the same registration
    files: int
    bytes: int


def model_dir(app_root: Path, name: str, version: str) -> Path:
    return app_root / MODELS_DIR / name / version


def registration_digest(reg: Registration) -> str:
    """What decides the layout; where the ConfigMap is named or lives does not."""
    content = dataclasses.asdict(reg)
    content.pop("configmap")
    content.pop("namespace")
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


class _Reader:
    """A file read once, hashed and counted on the way, reporting progress every so many bytes."""

    def __init__(self, raw: BinaryIO, on_progress: Callable[[int], None], every: int) -> None:
        self._raw = raw
        self._on_progress = on_progress
        self._every = every
        self._next = every
        self.hash = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.hash.update(data)
        self.bytes += len(data)
        if self.bytes >= self._next:
            self._on_progress(self.bytes)
            self._next = (self.bytes // self._every + 1) * self._every
        return data

    def drain(self) -> None:
        """Read to the end, so the hash covers bytes a decoder left unread (tar padding)."""
        while self.read(CHUNK):
            pass


class _Job:
    """One registration being laid out: the paths, the log and the one-line failures."""

    def __init__(self, reg: Registration, source: Path, app_root: Path, log: Log, every: int) -> None:
        self.reg = reg
        self.source = source
        self.app_root = app_root
        self.log = log
        self.every = every
        self.staging = app_root / STATE_DIR / "staging" / reg.name / reg.version
        self.files = 0
        self.bytes = 0

    def fail(self, spec: FileSpec | None, cause: str) -> LayoutError:
        what = f"{spec.path}: " if spec is not None else ""
        return LayoutError(f"model {self.reg.model}: {what}{cause}")

    def open_source(self, spec: FileSpec) -> tuple[BinaryIO, int]:
        where = f"{self.source} (storage {describe(self.reg.storage)})"
        path = self.source / spec.path
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            raise LayoutError(f"model {self.reg.model}: {spec.path} not found in {where}") from None
        except OSError as exc:
            raise self.fail(spec, f"cannot read in {where}: {exc.strerror}") from None
        if not real.is_relative_to(self.source.resolve()):
            raise self.fail(spec, f"is a link to {real}, outside {where}; the storage must hold the file")
        if not real.is_file():
            raise self.fail(spec, f"is not a regular file in {where}")
        try:
            handle = open(real, "rb")  # noqa: SIM115 - closed by the caller's with
        except OSError as exc:
            raise self.fail(spec, f"cannot read in {where}: {exc.strerror}") from None
        return handle, os.fstat(handle.fileno()).st_size

    def reader(self, spec: FileSpec, raw: BinaryIO, size: int) -> _Reader:
        def progress(done: int) -> None:
            self.log(
                {
                    "level": "info",
                    "msg": "copying",
                    "model": self.reg.model,
                    "file": spec.path,
                    "bytes": done,
                    "total": size,
                }
            )

        return _Reader(raw, progress, self.every)

    def verify(self, spec: FileSpec, reader: _Reader) -> str:
        digest = reader.hash.hexdigest()
        if spec.sha256 is not None and digest != spec.sha256:
            raise self.fail(
                spec,
                f"sha256 mismatch: the file in storage {describe(self.reg.storage)} has {digest}, "
                f"the registration expects {spec.sha256}; fix the file or the registration's sha256",
            )
        return digest

    def place(self, spec: FileSpec, base: Path, *, is_code: bool) -> None:
        started = time.monotonic()
        handle, size = self.open_source(spec)
        with handle:
            reader = self.reader(spec, handle, size)
            try:
                if spec.unpack == "none":
                    target = _make_parents(base, spec.container_path)
                    self._copy(spec, reader, target)
                else:
                    self._unpack(spec, reader, handle, base, is_code=is_code)
            except ArchiveError as exc:
                raise self.fail(spec, f"{exc}; nothing was laid out from it") from None
            except OSError as exc:
                raise self.fail(spec, f"cannot write under {self.app_root}: {exc}") from None
        self.files += 1
        self.bytes += reader.bytes
        self.log(
            {
                "level": "info",
                "msg": "laid out",
                "model": self.reg.model,
                "file": spec.path,
                "to": str(base / spec.container_path),
                "bytes": reader.bytes,
                "sha256": reader.hash.hexdigest(),
                "seconds": round(time.monotonic() - started, 3),
            }
        )

    def _copy(self, spec: FileSpec, reader: _Reader, target: Path) -> None:
        partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
        try:
            with open(partial, "wb") as out:
                shutil.copyfileobj(reader, out, CHUNK)  # type: ignore[misc]  # _Reader has read()
                out.flush()
                os.fsync(out.fileno())
            self.verify(spec, reader)
            os.chmod(partial, 0o644)  # readable by the scoring container, whatever its uid and umask
            _remove(target)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    def _unpack(
        self, spec: FileSpec, reader: _Reader, handle: BinaryIO, base: Path, *, is_code: bool
    ) -> None:
        staging = self.staging / str(self.files)
        _remove(staging)
        staging.mkdir(parents=True)
        try:
            if spec.unpack == "tar":
                unpack_tar(reader, staging)  # type: ignore[arg-type]  # _Reader has read()
                reader.drain()
                self.verify(spec, reader)
            else:
                # zip keeps its index at the end and needs seeking: hash first, then unpack.
                reader.drain()
                self.verify(spec, reader)
                unpack_zip(Path(handle.name), staging)
            target = base if spec.container_path == "." else _make_parents(base, spec.container_path)
            if target != base:
                target.mkdir(exist_ok=True)
            reserved = (MODELS_DIR, STATE_DIR) if is_code and target == self.app_root else ()
            _merge(staging, target, reserved=reserved)
        finally:
            _remove(staging)


def _remove(path: Path) -> None:
    """Remove a file, link or directory tree, whatever stands at `path`, never following a link."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _make_parents(base: Path, relative: str) -> Path:
    """`base/relative` with its parent directories made, replacing links or files in the way.

    Never following a link keeps every write inside the app root even when an earlier archive put a
    link where this path needs a directory.
    """
    parts = relative.split("/")
    current = base
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            current.unlink()
        current.mkdir(exist_ok=True)
    return current / parts[-1]


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    for top, dirs, files in os.walk(root):
        here = Path(top)
        links = [d for d in dirs if (here / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        yield here, dirs, files + links


def _readable(path: Path, *, directory: bool) -> None:
    """Let every user read (and enter) it: the scoring container may run as another uid than
    model-init, and an archive's 0600 member would otherwise be unreadable to it."""
    mode = stat.S_IMODE(path.lstat().st_mode)
    wanted = mode | (0o555 if directory else 0o444)
    if wanted != mode:
        os.chmod(path, wanted)


def _merge(staging: Path, target: Path, *, reserved: tuple[str, ...]) -> None:
    """Move an unpacked tree into `target`, entry by entry, replacing what stands in the way."""
    clash = sorted(set(os.listdir(staging)) & set(reserved))
    if clash:
        raise ArchiveError(f"it holds {clash[0]}/, which model-init owns; move that out of the archive")
    for here, dirs, files in _walk(staging):
        there = target / here.relative_to(staging)
        for name in dirs:
            dest = there / name
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                dest.unlink()
            dest.mkdir(exist_ok=True)
            _readable(dest, directory=True)
        for name in files:
            dest = there / name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            if not (here / name).is_symlink():
                _readable(here / name, directory=False)
            os.replace(here / name, dest)


def _marker(app_root: Path, reg: Registration) -> Path:
    return app_root / STATE_DIR / "models" / reg.name / f"{reg.version}.json"


def _write_marker(path: Path, reg: Registration, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    partial.write_text(json.dumps({"model": reg.model, "registration": digest}))
    os.replace(partial, path)


def _is_done(path: Path, digest: str) -> bool:
    try:
        return json.loads(path.read_text()).get("registration") == digest
    except (OSError, ValueError, AttributeError):
        return False


def lay_out(
    reg: Registration, source: Path, app_root: Path, *, log: Log, progress_every: int = PROGRESS_EVERY
) -> Outcome:
    """Lay a registration's files and code out under `app_root`, reading from `source`."""
    digest = registration_digest(reg)
    marker = _marker(app_root, reg)
    target_dir = model_dir(app_root, reg.name, reg.version)
    if _is_done(marker, digest) and target_dir.is_dir():
        log({"level": "info", "msg": "already laid out", "model": reg.model})
        return Outcome(reg.model, skipped=True, files=0, bytes=0)

    job = _Job(reg, source, app_root, log, progress_every)
    try:
        marker.unlink(missing_ok=True)
        _remove(target_dir)
        target_dir.mkdir(parents=True)
    except OSError as exc:
        raise job.fail(None, f"cannot prepare {target_dir}: {exc}") from None
    for spec in reg.files:
        job.place(spec, target_dir, is_code=False)
    for spec in reg.code:
        job.place(spec, app_root, is_code=True)
    if reg.entry_script is not None and not (app_root / reg.entry_script).is_file():
        raise job.fail(
            None,
            f"entryScript {reg.entry_script} is not a file under {app_root} after laying "
            "out the code; fix entryScript or the code archive",
        )
    try:
        _write_marker(marker, reg, digest)
        _remove(app_root / STATE_DIR / "staging" / reg.name / reg.version)
    except OSError as exc:
        raise job.fail(None, f"cannot write {marker}: {exc}") from None
    log(
        {
            "level": "info",
            "msg": "model ready",
            "model": reg.model,
            "files": job.files,
            "bytes": job.bytes,
            "dir": str(target_dir),
        }
    )
    return Outcome(reg.model, skipped=False, files=job.files, bytes=job.bytes)
