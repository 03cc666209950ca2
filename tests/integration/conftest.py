"""Shared fixtures for our servers run for real: an `inferplane <server>` subprocess under gunicorn,
serving HTTPS on loopback with a certificate from a throwaway CA, spoken to by a client that
verifies that CA.

For any server (webhook, extender, router, scoring):

    def test_x(tls, start_server):
        server = start_server(["webhook", "--catalog", d], tls=tls.issue("webhook"))
        r = server.session.post(server.url("/mutate-pod"), ...)
        server.stop()  # SIGTERM; returns the exit code

`start_server` appends `--port`, `--tls-cert-file` and `--tls-key-file` (pass `port_flag=None`,
`tls=None` to leave them out), waits until `ready_path` answers (any HTTP status counts as "up"
unless `expect_status` is given), and stops every server it started at the end of the test.
Server output is kept in files: `server.log_lines()` returns its JSON log lines parsed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inferplane import logs
from inferplane.localcluster.process import inferplane_argv

STARTUP_TIMEOUT = 20.0
LOOPBACK = "127.0.0.1"


# ---- PKI ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertPair:
    cert_file: Path
    key_file: Path
    ca_file: Path  # the CA that signed it, for clients to verify with

    def serial(self) -> int:
        return x509.load_pem_x509_certificate(self.cert_file.read_bytes()).serial_number


class ThrowawayCA:
    """A CA that lives for one test session and signs serving certificates for loopback."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inferplane-test-ca")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )  # fmt: skip
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, hosts: Sequence[str] = ("localhost", LOOPBACK)) -> CertPair:
        """A fresh key and serving certificate in `<dir>/<name>/tls.{crt,key}` (overwritten if there)."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        folder = self.directory / name
        folder.mkdir(exist_ok=True)
        pair = CertPair(folder / "tls.crt", folder / "tls.key", self.ca_file)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # Written beside and renamed into place, as kubelet swaps a Secret volume: a reader never
        # sees half a file.
        for path, data in (
            (pair.key_file, key_pem),
            (pair.cert_file, cert.public_bytes(serialization.Encoding.PEM)),
        ):
            staged = path.with_suffix(".tmp")
            staged.write_bytes(data)
            staged.chmod(0o600)
            staged.replace(path)
        return pair


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("pki"))


def served_certificate_serial(host: str, port: int) -> int:
    """The serial number of the certificate a server presents now, on a new connection."""
    pem = ssl.get_server_certificate((host, port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


# ---- processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One `inferplane <server>` subprocess, its address and its output files."""

    def __init__(self, argv: list[str], port: int, scheme: str, ca_file: Path | None, workdir: Path,
                 env: dict[str, str]) -> None:  # fmt: skip
        self.argv = argv
        self.port = port
        self.scheme = scheme
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self.session = requests.Session()
        # Ignore REQUESTS_CA_BUNDLE and proxy variables: they would override `verify` and route
        # loopback traffic elsewhere.
        self.session.trust_env = False
        self.session.verify = str(ca_file) if ca_file else True
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._stdout, stderr=self._stderr, env=env)

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}{path}"

    def wait_ready(self, path: str, expect_status: int | None, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.argv} exited with {self.process.returncode}:\n{self.output()}")
            try:
                response = self.session.get(self.url(path), timeout=2)
                if expect_status is None or response.status_code == expect_status:
                    return
                last = response.status_code
            except requests.ConnectionError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(f"{self.argv} not ready after {timeout}s (last: {last}):\n{self.output()}")

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait for the exit code (SIGKILL if it takes longer than `timeout`)."""
        # Our idle keep-alive connections would hold a stopping worker for gunicorn's linger (2 s).
        self.session.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stdout.close()
        self._stderr.close()
        self.session.close()
        return self.process.returncode

    def output(self) -> str:
        self._stdout.flush()
        self._stderr.flush()
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (stdout and stderr); non-JSON lines are skipped."""
        return logs.read_lines(self.output())

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if predicate(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no matching log line within {timeout}s:\n{self.output()}")


StartServer = Callable[..., ServerProcess]


@contextlib.contextmanager
def _servers(directory: Path) -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def start(
        args: Sequence[str],
        *,
        tls: CertPair | None,
        ca_file: Path | None = None,
        port_flag: str | None = "--port",
        ready_path: str = "/healthz",
        expect_status: int | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        port = free_port()
        argv = [*inferplane_argv(), *args]
        if port_flag:
            argv += [port_flag, str(port)]
        if tls is not None:
            argv += ["--tls-cert-file", str(tls.cert_file), "--tls-key-file", str(tls.key_file)]
        workdir = directory / f"server-{len(started)}"
        workdir.mkdir()
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        ca = ca_file or (tls.ca_file if tls else None)
        server = ServerProcess(argv, port, "https" if tls else "http", ca, workdir, environment)
        started.append(server)
        if wait:
            server.wait_ready(ready_path, expect_status)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop(signal.SIGTERM, timeout=10)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start servers for one test; each is stopped when the test ends."""
    with _servers(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Start servers shared by a module's tests (a server start and stop costs ~3 s)."""
    with _servers(tmp_path_factory.mktemp("servers")) as start:
        yield start
