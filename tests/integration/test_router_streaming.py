"""100 MB each way through the router without it holding the body: its peak RSS must stay small."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator

import pytest

from router.testing import Router, Stub, start_router, start_stub

SIZE = 100 * 1024 * 1024
PIECE = bytes(range(256)) * 256  # 64 KiB
# The router starts near 32 MB and grows by under 1 MB here; a buffered body would add 100 MB.
MAX_GROWTH_KIB = 16 * 1024


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Router, Stub]]:
    stub = start_stub("127.0.0.8", "big")
    try:
        table = {
            "endpoints": {
                "big": {
                    "auth": "none",
                    "deployments": {"d": {"request-timeout-ms": 30000, "backends": [stub.address]}},
                }
            }
        }
        router = start_router(table, tmp_path_factory.mktemp("streaming"))
        yield router, stub
        router.stop()
    finally:
        stub.stop()


def pieces() -> Iterator[bytes]:
    for _ in range(SIZE // len(PIECE)):
        yield PIECE


def test_100_mb_upload_streams_through(setup: tuple[Router, Stub]) -> None:
    router, _ = setup
    before = router.rss_kib("VmHWM")
    expected = hashlib.sha256()
    for piece in pieces():
        expected.update(piece)
    conn = http.client.HTTPConnection(router.host, router.port, timeout=60)
    conn.putrequest("POST", "/api/v1/endpoint/big/score")
    conn.putheader("Content-Length", str(SIZE))
    conn.putheader("x-stub-hash", "1")
    conn.endheaders()
    for piece in pieces():
        conn.send(piece)
    answer = conn.getresponse()
    body = answer.read()
    assert answer.status == 200, body
    assert b'"received":%d' % SIZE in body
    assert expected.hexdigest().encode() in body
    growth = router.rss_kib("VmHWM") - before
    assert growth < MAX_GROWTH_KIB, f"router peak RSS grew by {growth} KiB"


def test_100_mb_chunked_upload_streams_through(setup: tuple[Router, Stub]) -> None:
    router, _ = setup
    before = router.rss_kib("VmHWM")
    conn = http.client.HTTPConnection(router.host, router.port, timeout=60)
    conn.request(
        "POST",
        "/api/v1/endpoint/big/score",
        body=pieces(),
        encode_chunked=True,
        headers={"Transfer-Encoding": "chunked"},
    )
    answer = conn.getresponse()
    body = answer.read()
    assert answer.status == 200 and b'"received":%d' % SIZE in body
    assert router.rss_kib("VmHWM") - before < MAX_GROWTH_KIB


def test_100_mb_answer_streams_back(setup: tuple[Router, Stub]) -> None:
    router, _ = setup
    before = router.rss_kib("VmHWM")
    conn = http.client.HTTPConnection(router.host, router.port, timeout=60)
    conn.request("POST", "/api/v1/endpoint/big/score", body=b"{}", headers={"x-stub-bytes": str(SIZE)})
    answer = conn.getresponse()
    assert answer.status == 200
    assert answer.getheader("azureml-model-deployment") == "d"
    received = 0
    while chunk := answer.read(1 << 20):
        received += len(chunk)
    assert received == SIZE
    assert router.rss_kib("VmHWM") - before < MAX_GROWTH_KIB
