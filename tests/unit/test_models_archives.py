"""Archive kinds model-init unpacks, and the hostile archives it refuses without writing anything."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from models.archives import ArchiveError, unpack_tar, unpack_zip
from models.layout import LayoutError, lay_out
from models.registration import FileSpec, Registration, StorageSource

SCORE = b"def run(data):\n    return data\n"
WEIGHTS = bytes(range(256)) * 1000


def make_tar(path: Path, mode: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, mode) as tar:
        for info, body in members:
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


def good_tar(path: Path, mode: str) -> Path:
    return make_tar(
        path,
        mode,
        [
            (entry("pkg", tarfile.DIRTYPE, mode=0o755), None),
            (entry("pkg/score.py", mode=0o755), SCORE),
            (entry("pkg/weights.bin"), WEIGHTS),
            (entry("pkg/current", tarfile.SYMTYPE, link="weights.bin"), None),
            (entry("pkg/again.bin", tarfile.LNKTYPE, link="pkg/weights.bin"), None),
        ],
    )


def good_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/", "")
        script = zipfile.ZipInfo("pkg/score.py")
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(script, SCORE)
        archive.writestr("pkg/weights.bin", WEIGHTS)
    return path


def registration(spec: FileSpec) -> Registration:
    storage = StorageSource("hostPath", {"path": "/var/lib/inferplane/models/m/1"})
    return Registration("m", "1", "m-1", "default", storage, (spec,))


@pytest.mark.parametrize(
    ("suffix", "mode"), [("tar", "w"), ("tar.gz", "w:gz"), ("tar.bz2", "w:bz2"), ("tar.xz", "w:xz")]
)
def test_tar_of_each_compression_lays_out(tmp_path: Path, suffix: str, mode: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    good_tar(source / f"model.{suffix}", mode)
    app = tmp_path / "app"
    lay_out(registration(FileSpec(f"model.{suffix}", "unpacked", "tar")), source, app, log=lambda r: None)
    root = app / "azureml-models/m/1/unpacked/pkg"
    assert (root / "score.py").read_bytes() == SCORE
    assert os.access(root / "score.py", os.X_OK)
    assert (root / "weights.bin").read_bytes() == WEIGHTS
    assert os.readlink(root / "current") == "weights.bin"
    assert (root / "again.bin").read_bytes() == WEIGHTS


def test_unpacked_members_are_readable_by_the_scoring_container(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_tar(
        source / "m.tar",
        "w",
        [(entry("d", tarfile.DIRTYPE, mode=0o700), None), (entry("d/w", mode=0o600), b"w")],
    )
    app = tmp_path / "app"
    lay_out(registration(FileSpec("m.tar", ".", "tar")), source, app, log=lambda r: None)
    laid = app / "azureml-models/m/1/d"
    assert stat.S_IMODE(laid.stat().st_mode) == 0o755
    assert stat.S_IMODE((laid / "w").stat().st_mode) == 0o644


def test_zip_lays_out(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    good_zip(source / "model.zip")
    app = tmp_path / "app"
    lay_out(registration(FileSpec("model.zip", ".", "zip")), source, app, log=lambda r: None)
    root = app / "azureml-models/m/1/pkg"
    assert (root / "score.py").read_bytes() == SCORE
    assert os.access(root / "score.py", os.X_OK)
    assert (root / "weights.bin").read_bytes() == WEIGHTS


HOSTILE_TARS = {
    "dotdot": ([(entry("../evil"), b"x")], "'../evil': path climbs out"),
    "nested-dotdot": ([(entry("a/../../evil"), b"x")], "path climbs out"),
    "absolute": ([(entry("/tmp/evil"), b"x")], "'/tmp/evil': absolute path"),
    "symlink-out": ([(entry("link", tarfile.SYMTYPE, link="../outside"), None)], "points outside"),
    "symlink-abs": ([(entry("link", tarfile.SYMTYPE, link="/etc"), None)], "link to absolute path"),
    "symlink-then-write": (
        [(entry("d", tarfile.SYMTYPE, link=".."), None), (entry("d/evil"), b"x")],
        "'d': link to '..' points outside",
    ),
    "hardlink-out": ([(entry("hl", tarfile.LNKTYPE, link="../outside"), None)], "points outside"),
    "hardlink-abs": ([(entry("hl", tarfile.LNKTYPE, link="/etc/passwd"), None)], "link to absolute path"),
    "char-device": ([(entry("null", tarfile.CHRTYPE), None)], "device or pipe"),
    "fifo": ([(entry("pipe", tarfile.FIFOTYPE), None)], "device or pipe"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_hostile_tar_is_refused_and_nothing_escapes(tmp_path: Path, case: str) -> None:
    members, words = HOSTILE_TARS[case]
    archive = make_tar(tmp_path / "evil.tar", "w", members)
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(ArchiveError, match="unsafe archive member") as info, open(archive, "rb") as stream:
        unpack_tar(stream, dest)
    assert words in str(info.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "dest", "evil.tar"]


def test_hostile_tar_in_a_registration_changes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    make_tar(source / "w.tar", "w", [(entry("ok.txt"), b"fine"), (entry("../evil"), b"x")])
    app = tmp_path / "app"
    with pytest.raises(LayoutError) as info:
        lay_out(registration(FileSpec("w.tar", ".", "tar")), source, app, log=lambda r: None)
    assert str(info.value) == (
        "model m:1: w.tar: unsafe archive member '../evil': path climbs out with '..'; "
        "nothing was laid out from it"
    )
    assert "\n" not in str(info.value)
    assert not (app / "azureml-models/m/1/ok.txt").exists()
    assert not (tmp_path / "evil").exists()


def write_zip(path: Path, name: str, body: bytes = b"x", mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fine.txt", b"ok")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        archive.writestr(info, body)
    return path


@pytest.mark.parametrize(
    ("name", "mode", "words"),
    [
        ("../evil", None, "path climbs out"),
        ("a/../../evil", None, "path climbs out"),
        ("/tmp/evil", None, "absolute path"),
        ("link", stat.S_IFLNK | 0o777, "symlink"),
        ("dev", stat.S_IFCHR | 0o600, "device or pipe"),
    ],
)
def test_hostile_zip_is_refused_before_anything_is_written(
    tmp_path: Path, name: str, mode: int | None, words: str
) -> None:
    archive = write_zip(tmp_path / "evil.zip", name, b"../../outside", mode)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="unsafe archive member") as info:
        unpack_zip(archive, dest)
    assert words in str(info.value)
    assert list(dest.iterdir()) == []


def test_broken_archives_say_so(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not an archive" * 10)
    with pytest.raises(ArchiveError, match="cannot unpack as tar"), open(junk, "rb") as stream:
        unpack_tar(stream, tmp_path)
    with pytest.raises(ArchiveError, match="not a readable zip"):
        unpack_zip(junk, tmp_path)
    truncated = tmp_path / "t.tar.gz"
    good_tar(truncated, "w:gz")
    whole = truncated.read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="cannot unpack as tar"), open(truncated, "rb") as stream:
        unpack_tar(stream, dest)
