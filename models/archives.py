"""Unpack tar and zip archives, refusing every member that could land outside the destination.

A model archive is data from a storage bucket, not trusted code: a member named `../x`, `/etc/x`, a
link pointing out of the tree, or a device node must stop the unpack with the member named. Tar
goes through Python's own `data` filter as well as our checks (the filter silently strips a leading
`/`, where we refuse it so the archive's author learns of it); zip has no such filter, so every zip
member is checked here. Callers unpack into an empty staging directory and move the result into
place only on success, so a refused archive changes nothing they can see.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class ArchiveError(Exception):
    """An archive that cannot be unpacked safely; the message names the member and the cause."""


def _climbs(path: str) -> bool:
    return ".." in path.split("/")


def _check_name(name: str) -> None:
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"unsafe archive member {name!r}: absolute path")
    if _climbs(name.replace("\\", "/")):
        raise ArchiveError(f"unsafe archive member {name!r}: path climbs out with '..'")


def _check_link(name: str, target: str, *, relative_to_member: bool) -> None:
    """A link must stay inside the tree (a symlink resolves from its directory, a hardlink from the root)."""
    if target.startswith("/"):
        raise ArchiveError(f"unsafe archive member {name!r}: link to absolute path {target!r}")
    base = posixpath.dirname(name) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"unsafe archive member {name!r}: link to {target!r} points outside the archive")


def _tar_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    _check_name(member.name)
    if member.isdev():
        raise ArchiveError(f"unsafe archive member {member.name!r}: device or pipe")
    if member.issym():
        _check_link(member.name, member.linkname, relative_to_member=True)
    if member.islnk():
        _check_link(member.name, member.linkname, relative_to_member=False)
    return tarfile.data_filter(member, dest)


def unpack_tar(stream: BinaryIO, dest: Path) -> None:
    """Unpack a tar of any compression `tarfile` reads, reading `stream` once from start to end."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*", errorlevel=1) as tar:
            tar.extractall(dest, filter=_tar_filter)
    except tarfile.FilterError as exc:
        member = getattr(exc, "tarinfo", None)
        name = member.name if member is not None else "?"
        raise ArchiveError(f"unsafe archive member {name!r}: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        # bz2 reports corrupt data as OSError; a full disk is an OSError too, hence the neutral words
        raise ArchiveError(f"cannot unpack as tar ({type(exc).__name__}: {exc})") from None


def _zip_mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16


def unpack_zip(path: Path, dest: Path) -> None:
    """Unpack a zip (it needs random access, so it takes a path), checking every member first."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for info in members:
                _check_name(info.filename)
                mode = _zip_mode(info)
                if stat.S_ISLNK(mode):
                    raise ArchiveError(
                        f"unsafe archive member {info.filename!r}: symlink (zip links are not unpacked; "
                        "store the file itself, or use a tar)"
                    )
                kind = stat.S_IFMT(mode)  # 0 when the zip was written without Unix file types
                if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                    raise ArchiveError(f"unsafe archive member {info.filename!r}: device or pipe")
            for info in members:
                target = dest.joinpath(*[part for part in info.filename.split("/") if part not in ("", ".")])
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                os.chmod(target, 0o755 if _zip_mode(info) & 0o111 else 0o644)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError) as exc:
        raise ArchiveError(f"not a readable zip archive ({exc})") from None
    except (EOFError, zlib.error, OSError) as exc:
        raise ArchiveError(f"cannot unpack as zip ({type(exc).__name__}: {exc})") from None
