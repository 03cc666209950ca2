"""The router's HTTPS: termination, and a certificate rotated under it (as cert-manager does), no restart."""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import CertPair, ThrowawayCA, served_certificate_serial
from cryptography import x509

from router.testing import Router, Stub, start_router, start_stub


@pytest.fixture(scope="module")
def stub() -> Iterator[Stub]:
    started = start_stub("127.0.0.2", "blue")
    yield started
    started.stop()


@pytest.fixture
def served(
    stub: Stub, tmp_path: Path, tls: ThrowawayCA, request: pytest.FixtureRequest
) -> Iterator[tuple[CertPair, Router]]:
    """A certificate of this test's own (its files are the ones to rotate) and a router serving it."""
    pair = tls.issue(request.node.name[:48])
    table = {
        "endpoints": {
            "e": {
                "auth": "none",
                "deployments": {
                    "d": {
                        "max-concurrent-requests-per-pod": 8,
                        "request-timeout-ms": 10_000,
                        "backends": [stub.address],
                    }
                },
            }
        }
    }
    router = start_router(
        table, tmp_path, ["--tls-cert-file", str(pair.cert_file), "--tls-key-file", str(pair.key_file)]
    )
    yield pair, router
    router.stop()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def errors(router: Router) -> list[dict]:
    return [line for line in router.log_lines() if line.get("level") == "error"]


def test_tls_termination(served: tuple[CertPair, Router]) -> None:
    pair, router = served
    answer = requests.post(router.url("e"), data=b"{}", verify=str(pair.ca_file), timeout=10)
    assert answer.status_code == 200 and answer.json()["name"] == "blue"


def test_a_rotated_certificate_reaches_the_next_handshake_and_open_connections_carry_on(
    served: tuple[CertPair, Router], tls: ThrowawayCA
) -> None:
    pair, router = served
    first = pair.serial()
    assert served_certificate_serial(router.host, router.port) == first
    # A connection opened before the rotation, kept alive across it.
    context = ssl.create_default_context(cafile=str(pair.ca_file))
    kept = context.wrap_socket(
        socket.create_connection((router.host, router.port), timeout=10), server_hostname=router.host
    )
    with ThreadPoolExecutor(1) as pool, requests.Session() as session:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        session.verify = str(pair.ca_file)
        # ... and a request in flight while the files change (the scorer takes 3 s).
        in_flight = pool.submit(
            session.post, router.url("e"), data=b"{}", headers={"x-stub-delay-ms": "3000"}, timeout=20
        )
        time.sleep(0.3)
        rotated = tls.issue(pair.cert_file.parent.name)  # new key and certificate, same files
        assert rotated.serial() != first
        wait_until(
            lambda: served_certificate_serial(router.host, router.port) == rotated.serial(),
            "the new certificate on a new connection",
        )
        assert in_flight.result().status_code == 200
    kept.sendall(b"POST /api/v1/endpoint/e/score HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
    assert kept.recv(65536).startswith(b"HTTP/1.1 200")
    assert x509.load_der_x509_certificate(kept.getpeercert(binary_form=True)).serial_number == first
    kept.close()


def test_a_pair_that_does_not_load_keeps_the_previous_certificate_and_says_so(
    served: tuple[CertPair, Router], tls: ThrowawayCA
) -> None:
    pair, router = served
    serving = pair.serial()
    before = len(errors(router))
    # A key that belongs to another certificate, written over the key alone.
    stranger = tls.issue("stranger")
    staged = pair.key_file.with_suffix(".swap")
    shutil.copyfile(stranger.key_file, staged)
    staged.replace(pair.key_file)
    wait_until(lambda: len(errors(router)) > before, "an error log line about the mismatched pair")
    line = errors(router)[-1]
    assert "previous certificate" in line["message"] and line["keyfile"] == str(pair.key_file)
    assert served_certificate_serial(router.host, router.port) == serving
    answer = requests.post(router.url("e"), data=b"{}", verify=str(pair.ca_file), timeout=10)
    assert answer.status_code == 200
    # The matching certificate arrives: that pair is taken.
    staged = pair.cert_file.with_suffix(".swap")
    shutil.copyfile(stranger.cert_file, staged)
    staged.replace(pair.cert_file)
    wait_until(
        lambda: served_certificate_serial(router.host, router.port) == stranger.serial(),
        "the repaired pair served",
    )
