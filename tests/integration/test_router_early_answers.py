"""Answers given before the request body has arrived leave the client's connection usable or closed cleanly.

Every early answer (a refused key, an unknown endpoint, a full queue, an unreachable pod, a pod that
refuses a body by its length...) is checked the same way, on one raw socket so the order is exact:
the head goes out, the answer is read before any body byte is sent, then the body follows.

- a small body: the router reads and drops it, and the next request on the same socket is answered;
- a large or chunked body, or one held back for a `100 Continue`: the answer says `Connection: close`,
  the router keeps reading (and dropping) what the client still sends, and the client then meets a
  clean end of stream, never a reset (which on a real client turns into ConnectionResetError, possibly
  before it has read the answer).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from router.server import DRAIN_LIMIT
from router.testing import Router, Stub, start_router, start_stub

KEY = "early-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SMALL = 64 * 1024  # under DRAIN_LIMIT: read and dropped
LARGE = 8 * 1024 * 1024  # over it: Connection: close


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, Stub]]:
    started = {
        "blue": start_stub("127.0.0.2", "blue"),
        "slow": start_stub("127.0.0.5", "slow", delay_ms=1000),
    }
    yield started
    for stub in started.values():
        stub.stop()


@pytest.fixture(scope="module")
def router(stubs: dict[str, Stub], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    blue, slow = stubs["blue"].address, stubs["slow"].address
    table = {
        "endpoints": {
            "keyed": {"keys": {"primary": KEY}, "deployments": {"d": {"backends": [blue]}}},
            "open": {
                "auth": "none",
                "deployments": {
                    "d": {
                        "max-concurrent-requests-per-pod": 1,
                        "request-timeout-ms": 3000,
                        "backends": [blue],
                    }
                },
            },
            "nokeys": {"deployments": {"d": {"backends": [blue]}}},
            "empty": {"auth": "none", "deployments": {"d": {"max-queue-wait-ms": 100, "backends": []}}},
            "gone": {"auth": "none", "deployments": {"d": {"backends": ["127.0.0.9:9"]}}},
            "timing": {"auth": "none", "deployments": {"d": {"request-timeout-ms": 200, "backends": [slow]}}},
            "team-a/twice": {"auth": "none", "deployments": {"d": {"backends": [blue]}}},
            "team-b/twice": {"auth": "none", "deployments": {"d": {"backends": [blue]}}},
        }
    }
    started = start_router(table, tmp_path_factory.mktemp("early"))
    yield started
    started.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


class RawClient:
    """One client socket, writing exact bytes and reading whole answers (every router answer has a length)."""

    def __init__(self, router: Router) -> None:
        self.sock = socket.create_connection((router.host, router.port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request_head(
        self, path: str, length: int | None, method: str = "POST", headers: dict[str, str] | None = None
    ) -> None:
        fields = {"Host": "router", **(headers or {})}
        fields.update(
            {"Content-Length": str(length)} if length is not None else {"Transfer-Encoding": "chunked"}
        )
        self.send(
            f"{method} {path} HTTP/1.1\r\n".encode()
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in fields.items())
            + b"\r\n"
        )

    def answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def score(self, path: str = "/api/v1/endpoint/open/score") -> Answer:
        self.request_head(path, 2)
        self.send(b"{}")
        return self.answer()

    def ends_cleanly(self) -> bool:
        """Reads to the end of the stream: True at a clean end, ConnectionResetError at a reset."""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return True
            self.buffer += data

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise AssertionError(f"the router closed the connection mid-answer: {self.buffer!r}")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@pytest.fixture
def client(router: Router) -> Iterator[RawClient]:
    """A fresh connection to the module's router for each test."""
    with RawClient(router) as opened:
        yield opened


@dataclass(frozen=True)
class Case:
    status: int
    path: str
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    message: str = ""  # a piece of the error sentence, to know the right branch answered


SCORE = "/api/v1/endpoint/{}/score"
CASES = {
    "400 namespace header and path disagree": Case(
        400,
        "/api/v1/namespaces/team-a/endpoint/twice/score",
        headers=(("x-ml-namespace", "team-b"),),
        message="give one",
    ),
    "401 missing key": Case(401, SCORE.format("keyed"), message="requires a key"),
    "401 wrong key": Case(
        401, SCORE.format("keyed"), headers=(("Authorization", "Bearer nope"),), message="not valid"
    ),
    "404 unknown endpoint": Case(404, SCORE.format("nowhere"), message="not found"),
    "404 unknown deployment": Case(
        404,
        "/api/v1/endpoint/keyed/deployment/purple/score",
        headers=tuple(AUTH.items()),
        message="'purple' not found",
    ),
    "404 no route": Case(404, "/elsewhere", message="no route"),
    "405 method": Case(405, SCORE.format("open"), method="PUT", message="POST"),
    "409 name in two namespaces": Case(409, SCORE.format("twice"), message="several namespaces"),
    "413 from the pod, before reading the body": Case(
        413, SCORE.format("open"), headers=(("x-stub-early", "1"), ("x-stub-status", "413")), message="early"
    ),
    "502 unreachable pod": Case(502, SCORE.format("gone"), message="unreachable"),
    "503 no ready pods": Case(503, SCORE.format("empty"), message="no ready pods"),
    "503 endpoint without keys": Case(503, SCORE.format("nokeys"), message="none configured"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_early_answer_then_the_rest_of_a_small_body_keeps_the_connection(
    client: RawClient, case: Case
) -> None:
    client.request_head(case.path, SMALL, case.method, dict(case.headers))
    early = client.answer()  # before a byte of the body was sent
    assert early.status == case.status and case.message in early.body.decode(), early
    assert not early.closes, early.headers
    client.send(b"x" * SMALL)
    for _ in range(3):  # the body was read past, not taken for the next request
        following = client.score()
        assert following.status == 200 and not following.closes, following


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_early_answer_with_a_large_body_says_close_and_ends_cleanly(client: RawClient, case: Case) -> None:
    client.request_head(case.path, LARGE, case.method, dict(case.headers))
    early = client.answer()
    assert early.status == case.status and case.message in early.body.decode(), early
    assert early.closes, early.headers
    # A client that sends its body before reading (http.client does) keeps sending: no reset.
    client.send(b"x" * (2 * DRAIN_LIMIT))
    assert client.ends_cleanly()


def test_chunked_body_answered_early_says_close(client: RawClient) -> None:
    client.request_head(SCORE.format("keyed"), None)
    early = client.answer()
    assert early.status == 401 and early.closes, early
    client.send(b"10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n")
    assert client.ends_cleanly()


def test_body_held_back_for_100_continue_and_refused_says_close(client: RawClient) -> None:
    client.request_head(SCORE.format("keyed"), SMALL, headers={"Expect": "100-continue"})
    early = client.answer()  # no 100 Continue first: the body is refused unseen
    assert early.status == 401 and early.closes, early
    assert client.ends_cleanly()


def test_100_continue_then_answered_keeps_the_connection(client: RawClient) -> None:
    client.request_head(SCORE.format("open"), 2, headers={"Expect": "100-continue"})
    while b"\r\n\r\n" not in client.buffer:
        client._fill()
    assert client.buffer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    client.buffer = client.buffer[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    client.send(b"{}")
    assert client.answer().status == 200
    assert client.score().status == 200


def test_504_after_the_whole_body_keeps_the_connection(client: RawClient) -> None:
    timed_out = client.score(SCORE.format("timing"))
    assert timed_out.status == 504 and not timed_out.closes, timed_out
    assert client.score().status == 200


def test_pod_answering_early_does_not_leave_a_half_sent_body_on_a_kept_connection(client: RawClient) -> None:
    """The pod's connection is not reused after it answered before our body was all sent: the pod would
    read the next request as the rest of that body (and it would time out). "open" allows one request per
    pod at a time, so every request here would share one upstream connection if it were kept."""
    for _ in range(3):
        client.request_head(SCORE.format("open"), SMALL, headers={"x-stub-early": "1"})
        assert client.answer().status == 200
        client.send(b"x" * SMALL)
        started = time.monotonic()
        following = client.score()
        assert following.status == 200 and b'"received":2' in following.body, following
        assert time.monotonic() - started < 1.0


def test_malformed_request_gets_400_close_and_a_clean_end(client: RawClient) -> None:
    client.send(b"NOT HTTP AT ALL\r\n\r\n")
    rejected = client.answer()
    assert rejected.status == 400 and rejected.closes, rejected
    client.send(b"bytes sent before the client noticed the answer" * 1000)
    assert client.ends_cleanly()


def test_malformed_request_pipelined_behind_a_good_one_is_answered_after_it(client: RawClient) -> None:
    slow = (
        b"POST /api/v1/endpoint/timing/score HTTP/1.1\r\nHost: r\r\nx-stub-delay-ms: 100\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    quick = b"GET /healthz HTTP/1.1\r\nHost: r\r\n\r\n"
    client.send(slow + quick + b"NOT HTTP AT ALL\r\n\r\n")
    first, second, third = client.answer(), client.answer(), client.answer()
    assert first.status == 200 and b"slow" in first.body, first
    assert second.status == 200 and b"ok" in second.body, second  # parsed before the error: answered
    assert third.status == 400 and third.closes, third
    assert client.ends_cleanly()


def test_a_broken_chunked_body_cuts_its_request_short_with_400(router: Router, client: RawClient) -> None:
    client.request_head(SCORE.format("open"), None, headers={"x-stub-delay-ms": "300"})
    client.send(b"4\r\n{}{}\r\n")  # one good chunk: the request is on its way to the pod
    time.sleep(0.1)
    client.send(b"not-a-chunk-size\r\n")
    broken = client.answer()
    assert broken.status == 400 and broken.closes and b"malformed" in broken.body, broken
    assert client.ends_cleanly()
    with RawClient(router) as follow:  # and the pod slot it held was given back
        assert follow.score().status == 200


def test_a_long_pipelined_burst_is_answered_whole_and_in_order(client: RawClient) -> None:
    """Answers made without waiting (404, 401) for requests pipelined in one write, then scored ones: each
    request starts when the one before has ended, never nested inside it (2,000 deep would overflow)."""
    refused = b"GET /api/v1/endpoint/nowhere/score HTTP/1.1\r\nHost: r\r\n\r\n"
    client.send(refused * 2000)
    assert [client.answer().status for _ in range(2000)] == [404] * 2000
    scored = b"".join(
        b"POST /api/v1/endpoint/open/score HTTP/1.1\r\nHost: r\r\nx-request-id: n%d\r\n"
        b"Content-Length: 2\r\n\r\n{}" % i
        for i in range(200)
    )
    client.send(scored)
    ids = [client.answer().headers["x-request-id"] for _ in range(200)]
    assert ids == [f"n{i}" for i in range(200)]


def test_http_client_keeps_working_after_401_on_one_connection(router: Router) -> None:
    """The reported sequence with Python's own client: 200, 401, then another request on the same
    HTTPConnection. The 1 MB body goes out after the head, so the 401 is sent before it is all in: the
    client is either told to close (it then reconnects by itself) or finds the connection still good."""
    import http.client

    conn = http.client.HTTPConnection(router.host, router.port, timeout=10)
    try:
        statuses = []
        for key in (KEY, "wrong", KEY, "wrong", KEY) * 3:
            conn.request(
                "POST",
                SCORE.format("keyed"),
                body=b"y" * 1_000_000,
                headers={"Authorization": f"Bearer {key}"},
            )
            answer = conn.getresponse()
            answer.read()
            statuses.append(answer.status)
        assert statuses == [200, 401, 200, 401, 200] * 3
    finally:
        conn.close()


def test_a_slow_upload_refused_early_is_read_to_its_end(client: RawClient) -> None:
    """A client still uploading when told to close gets time to finish sending (nginx's lingering close):
    its pieces, a little apart, are all read and dropped, then the stream ends cleanly."""
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            for _ in range(5):
                client.send(b"x" * 65536)
                time.sleep(0.1)
            client.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            errors.append(exc)

    client.request_head(SCORE.format("keyed"), LARGE)
    assert client.answer().closes
    sender = threading.Thread(target=upload)
    sender.start()
    assert client.ends_cleanly()
    sender.join(10)
    assert not errors


def test_answers_on_a_connection_the_client_asked_to_close_end_cleanly(client: RawClient) -> None:
    client.request_head(SCORE.format("keyed"), SMALL, headers={"Connection": "close"})
    early = client.answer()
    assert early.status == 401 and early.closes
    client.send(b"x" * SMALL)
    assert client.ends_cleanly()
