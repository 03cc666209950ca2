"""inferplane.serving and inferplane.logs: TLS checks, the certificate watcher, JSON log lines."""

from __future__ import annotations

import datetime as dt
import io
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from gunicorn.config import Config

from inferplane import logs, serving
from inferplane.errors import UserError


def make_pair(directory: Path, name: str) -> tuple[str, str]:
    """A self-signed P-256 pair, written by the openssl command."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture
def pairs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    return {name: make_pair(tmp_path, name) for name in ("one", "two")}


def test_a_good_pair_passes(pairs):
    serving.check_tls_files(*pairs["one"])
    serving.check_tls_files(None, None)


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("missing", "one", r"--tls-cert-file .*missing\.crt: no such file; mount the TLS Secret"),
        ("one", "missing", r"--tls-key-file .*missing\.key: no such file"),
        (
            "one",
            "two",
            r"do not load as a pair .*; give a PEM certificate and the PEM private key that matches",
        ),
        ("one", None, "give both --tls-cert-file and --tls-key-file, or neither"),
    ],
)
def test_bad_tls_files_are_named_with_the_fix(pairs, tmp_path, cert, key, message):
    def path(name, index):
        if name is None:
            return None
        return pairs[name][index] if name in pairs else str(tmp_path / f"{name}.{['crt', 'key'][index]}")

    with pytest.raises(UserError, match=message):
        serving.check_tls_files(path(cert, 0), path(key, 1))


def test_the_watcher_hands_on_a_new_pair_once_and_skips_a_broken_one(pairs, tmp_path, caplog):
    cert, key = str(tmp_path / "live.crt"), str(tmp_path / "live.key")
    Path(cert).write_bytes(Path(pairs["one"][0]).read_bytes())
    Path(key).write_bytes(Path(pairs["one"][1]).read_bytes())
    changes: list[int] = []
    watcher = serving.CertWatcher(cert, key, interval=60, on_change=lambda: changes.append(1))
    assert watcher.check() is False

    Path(cert).write_bytes(Path(pairs["two"][0]).read_bytes())  # key not yet rotated
    with caplog.at_level(logging.ERROR, logger="inferplane.serving"):
        assert watcher.check() is False
    assert changes == []
    assert "do not load as a pair" in caplog.records[-1].message

    Path(key).write_bytes(Path(pairs["two"][1]).read_bytes())
    assert watcher.check() is True
    assert changes == [1]
    assert watcher.check() is False  # nothing new since


def test_settings_bind_brackets_ipv6():
    assert serving.ServerSettings(name="x", port=8443, host="::").bind == "[::]:8443"
    assert serving.ServerSettings(name="x", port=8443).bind == "0.0.0.0:8443"


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_records(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_are_json_with_bound_and_extra_fields():
    stream = io.StringIO()
    logs.configure("info", stream)
    log = logging.getLogger("inferplane.test")
    with logs.bound(uid="abc"):
        log.info("mutated", extra={"patch_ops": 4})
        with logs.bound(namespace="team-a"):
            log.warning("nested")
    log.info("outside")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, nested, outside, failed = json_records(stream)
    assert first["message"] == "mutated" and first["uid"] == "abc" and first["patch_ops"] == 4
    assert first["level"] == "info" and first["logger"] == "inferplane.test"
    assert dt.datetime.fromisoformat(first["time"]).tzinfo is not None
    assert nested["uid"] == "abc" and nested["namespace"] == "team-a"
    assert "uid" not in outside
    assert "ValueError: boom" in failed["exception"]


def test_a_value_json_cannot_encode_is_logged_as_its_repr():
    stream = io.StringIO()
    logs.configure("info", stream)
    logging.getLogger("inferplane.test").info("odd", extra={"thing": object()})
    assert json_records(stream)[0]["thing"].startswith("<object object")


def test_the_access_line_carries_the_apps_fields():
    config = Config()
    config.set("accesslog", "-")
    logger = serving.JsonGunicornLogger(config)
    stream = io.StringIO()
    for handler in logger.access_log.handlers:
        handler.setStream(stream)
    request = SimpleNamespace(method="POST", path="/mutate-pod")
    response = SimpleNamespace(status_code=200, sent=812)
    environ = {"REMOTE_ADDR": "10.0.0.7", logs.ACCESS_FIELDS_KEY: {"uid": "u-1", "outcome": "mutated"}}
    logger.access(response, request, environ, dt.timedelta(microseconds=1234))
    (line,) = json_records(stream)
    assert line["message"] == "request" and line["logger"] == "gunicorn.access"
    assert (line["method"], line["path"], line["status"], line["bytes"]) == ("POST", "/mutate-pod", 200, 812)
    assert line["duration_ms"] == 1.234
    assert (line["uid"], line["outcome"], line["remote"]) == ("u-1", "mutated", "10.0.0.7")


def test_the_change_is_logged_with_the_callers_action(pairs, tmp_path, caplog):
    cert, key = str(tmp_path / "live.crt"), str(tmp_path / "live.key")
    for wording, expected in (
        ("", "TLS certificate changed"),
        ("reloading workers", "TLS certificate changed; reloading workers"),
    ):
        for target, source in ((cert, pairs["one"][0]), (key, pairs["one"][1])):
            Path(target).write_bytes(Path(source).read_bytes())
        watcher = serving.CertWatcher(cert, key, interval=60, on_change=lambda: None, action=wording)
        for target, source in ((cert, pairs["two"][0]), (key, pairs["two"][1])):
            Path(target).write_bytes(Path(source).read_bytes())
        with caplog.at_level(logging.INFO, logger="inferplane.serving"):
            assert watcher.check() is True
        assert caplog.records[-1].message == expected


# A server whose workers never finish starting ("slow") or cannot start ("broken"), run for real.
SERVER = """
import sys, time
from inferplane import serving

mode, workers = sys.argv[1], int(sys.argv[2])

def start():
    if mode == "broken":
        raise RuntimeError("cannot start")
    print("starting", flush=True)
    time.sleep(120)

def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]

serving.serve(
    lambda: serving.Service(app, start=start),
    serving.ServerSettings(name="test", port=0, host="127.0.0.1", workers=workers, access_log=False),
)
"""


def run_server(mode: str, workers: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SERVER, mode, str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigterm_ends_a_server_whose_worker_is_still_starting():
    server = run_server("slow", 1)
    try:
        assert server.stdout.readline() == "starting\n"  # the worker is inside Service.start
        began = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
        # Not gunicorn's 25 s graceful timeout followed by a SIGKILL: the worker heard the signal.
        assert time.monotonic() - began < 10
    finally:
        server.kill()
        server.wait()


def test_workers_failing_to_start_together_end_the_server_with_the_boot_error_code():
    # Four workers fail within moments of each other: gunicorn halts on the first and, reaping the
    # others while it stops, raises its halt again; the exit code must stay 3 either way.
    server = run_server("broken", 4)
    try:
        _, stderr = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 3, stderr
    assert "Worker failed to boot" in stderr
