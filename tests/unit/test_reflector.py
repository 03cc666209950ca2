"""The list+watch reflector against a real HTTP server on loopback that plays the apiserver.

`FakeApiserver` is a test double of kube-apiserver, not a mock of our code: the reflector speaks real
HTTP/1.1 to it through urllib3, receives LIST pages and chunked WATCH streams, and sees the failures
a real apiserver produces (410 Gone as a status and as an ERROR event, bookmarks, a dropped
connection, a 404 for a CRD that is not installed).
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from inferplane import kube
from inferplane.reflector import Backoff, Reflector

FAST = Backoff(initial=0.01, maximum=0.05)
PATH = "/apis/ml.example/v1alpha1/instancetypes"
Step = tuple[Any, ...]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-watch (the reflector stopping) is normal; anything else is not."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeApiserver:
    """A test double of kube-apiserver for one collection: LIST with limit/continue, WATCH as a
    chunked stream that plays the scripts queued with `script(...)`, then idles until timeoutSeconds.

    Steps: ("event", TYPE, obj) · ("bookmark", rv) · ("error", code) (an ERROR event with a Status)
    · ("status", code) (answer the watch with that HTTP status instead) · ("drop",) (close the
    connection mid-chunk) · ("end",) (end the stream cleanly) · ("wait", seconds).
    """

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}  # collection path -> name -> object
        self.rv = 10
        self.list_status: int | None = None  # answer every LIST with this HTTP status
        self.missing: set[str] = set()  # collection paths that answer 404 (a CRD not installed)
        self.expire_continue = 0  # answer this many of the next LISTs carrying `continue` with 410
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.authorizations: list[str | None] = []
        # Writes (POST, PUT, PATCH, DELETE): (method, path, Content-Type, body), answered with the
        # body echoed, or with `write_status` when set.
        self.writes: list[tuple[str, str, str | None, Any]] = []
        self.write_status: int | None = None
        self._scripts: dict[str, queue.Queue[list[Step]]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeApiserver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeApiserver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(
        self, name: str, path: str = PATH, *, metadata: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Store an object in the collection at `path` with the next resourceVersion."""
        with self._lock:
            self.rv += 1
            obj = {"metadata": {**(metadata or {}), "name": name, "resourceVersion": str(self.rv)}, **fields}
            self.objects.setdefault(path, {})[name] = obj
            return obj

    def script(self, *steps: Step, path: str = PATH) -> None:
        """Queue the steps the next WATCH of `path` plays."""
        self._scripts.setdefault(path, queue.Queue()).put(list(steps))

    def watches(self) -> list[dict[str, str]]:
        return [q for _, q in self.requests if q.get("watch") == "true"]

    def lists(self) -> list[dict[str, str]]:
        return [q for _, q in self.requests if q.get("watch") != "true"]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                fake.requests.append((parts.path, query))
                fake.authorizations.append(self.headers.get("Authorization"))
                if parts.path in fake.missing:
                    fake._status(self, 404)
                elif query.get("watch") == "true":
                    fake._watch(self, parts.path, query)
                else:
                    fake._list(self, parts.path, query)

            def _write(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = orjson.loads(self.rfile.read(length)) if length else None
                fake.authorizations.append(self.headers.get("Authorization"))
                fake.writes.append((self.command, self.path, self.headers.get("Content-Type"), body))
                if fake.write_status:
                    return fake._status(self, fake.write_status)
                fake._send_json(self, 201 if self.command == "POST" else 200, body or {"kind": "Status"})

            do_POST = do_PUT = do_PATCH = do_DELETE = _write

        return Handler

    def _send_json(self, handler: BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _status(self, handler: BaseHTTPRequestHandler, code: int) -> None:
        reason = {404: "NotFound", 409: "Conflict", 410: "Expired", 500: "InternalError"}.get(code, "Unknown")
        body = {"kind": "Status", "status": "Failure", "code": code, "reason": reason,
                "message": f"fake apiserver says {code}"}  # fmt: skip
        self._send_json(handler, code, body)

    def _list(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        if self.list_status:
            return self._status(handler, self.list_status)
        if "continue" in query and self.expire_continue:
            self.expire_continue -= 1
            return self._status(handler, 410)
        with self._lock:
            collection = self.objects.get(path, {})
            items = [collection[k] for k in sorted(collection)]
            rv = str(self.rv)
        start = int(query.get("continue", "0"))
        limit = int(query.get("limit", "0")) or len(items)
        page = items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": rv}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        self._send_json(handler, 200, {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page})

    def _watch(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        try:
            steps = self._scripts.get(path, queue.Queue()).get_nowait()
        except queue.Empty:
            steps = [("wait", float(query.get("timeoutSeconds", "1"))), ("end",)]
        if steps and steps[0][0] == "status":
            return self._status(handler, steps[0][1])
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(data: bytes) -> None:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()

        for step in steps:
            if step[0] == "event":
                chunk(orjson.dumps({"type": step[1], "object": step[2]}) + b"\n")
            elif step[0] == "bookmark":
                chunk(orjson.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": step[1]}}})
                      + b"\n")  # fmt: skip
            elif step[0] == "error":
                status = {"kind": "Status", "code": step[1], "reason": "Expired", "message": "too old"}
                chunk(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
            elif step[0] == "drop":
                handler.wfile.write(b'40\r\n{"type": "ADD')
                handler.wfile.flush()
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
            elif step[0] == "wait":
                self._closing.wait(step[1])
            elif step[0] == "end":
                break
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


class Recorder:
    """What a consumer of the reflector saw, with a way to wait for it."""

    def __init__(self) -> None:
        self.replaced: list[list[str]] = []
        self.events: list[tuple[str, str]] = []
        self.fail_next_event = False
        self._changed = threading.Condition()

    def on_replace(self, items: list[dict[str, Any]]) -> None:
        with self._changed:
            self.replaced.append([i["metadata"]["name"] for i in items])
            self._changed.notify_all()

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        if self.fail_next_event:
            self.fail_next_event = False
            raise KeyError("consumer bug")
        with self._changed:
            self.events.append((kind, obj["metadata"]["name"]))
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with self._changed:
            assert self._changed.wait_for(predicate, timeout), "timed out waiting for the reflector"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture
def apiserver() -> Iterator[FakeApiserver]:
    with FakeApiserver() as fake:
        yield fake


@pytest.fixture
def run(apiserver: FakeApiserver) -> Iterator[Callable[..., tuple[Reflector, Recorder]]]:
    started: list[Reflector] = []

    def start(recorder: Recorder | None = None, **kwargs: Any) -> tuple[Reflector, Recorder]:
        recorder = recorder or Recorder()
        kwargs.setdefault("backoff", FAST)
        reflector = Reflector(
            kube.for_host(apiserver.url), PATH,
            on_replace=recorder.on_replace, on_event=recorder.on_event, **kwargs,
        )  # fmt: skip
        reflector.start()
        started.append(reflector)
        return reflector, recorder

    yield start
    for reflector in started:
        reflector.stop()


def test_lists_every_page_then_watches_from_the_list_resource_version(apiserver, run):
    for name in "abcde":
        apiserver.put(name)
    reflector, seen = run(page_size=2)
    assert reflector.wait_synced(5)
    assert seen.replaced == [["a", "b", "c", "d", "e"]]
    assert [q.get("continue") for q in apiserver.lists()] == [None, "2", "4"]
    assert all(q["limit"] == "2" for q in apiserver.lists())
    wait_for(lambda: apiserver.watches())
    watch = apiserver.watches()[0]
    assert watch["resourceVersion"] == "15"
    assert watch["allowWatchBookmarks"] == "true"
    assert watch["timeoutSeconds"] == "300"


def test_events_arrive_in_order_and_a_bookmark_moves_the_resource_version(apiserver, run):
    apiserver.put("a")
    added = {"metadata": {"name": "b", "resourceVersion": "12"}}
    modified = {"metadata": {"name": "a", "resourceVersion": "13"}}
    deleted = {"metadata": {"name": "b", "resourceVersion": "14"}}
    apiserver.script(("event", "ADDED", added), ("event", "MODIFIED", modified),
                     ("event", "DELETED", deleted), ("bookmark", "40"), ("end",))  # fmt: skip
    reflector, seen = run()
    seen.wait(lambda: len(seen.events) == 3)
    assert seen.events == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    wait_for(lambda: len(apiserver.watches()) >= 2)
    # The stream ended normally: watch again from the bookmark, no relist.
    assert apiserver.watches()[1]["resourceVersion"] == "40"
    assert len(apiserver.lists()) == 1
    assert reflector.resource_version == "40"
    assert reflector.last_sync_age() is not None and reflector.last_sync_age() < 5


def test_error_event_410_makes_it_list_again(apiserver, run):
    apiserver.put("a")
    apiserver.script(("error", 410))
    reflector, seen = run()
    reflector.wait_synced(5)
    apiserver.put("b")  # changed while the watch was broken: only a relist can know it
    seen.wait(lambda: len(seen.replaced) == 2)
    assert seen.replaced == [["a"], ["a", "b"]]
    assert reflector.relists == 1


def test_http_410_on_watch_makes_it_list_again(apiserver, run):
    apiserver.put("a")
    apiserver.script(("status", 410))
    _reflector, seen = run()
    seen.wait(lambda: len(seen.replaced) == 2)
    assert len(apiserver.lists()) == 2


def test_a_dropped_connection_resumes_the_watch_without_relisting(apiserver, run, caplog):
    apiserver.put("a")
    first = {"metadata": {"name": "b", "resourceVersion": "30"}}
    second = {"metadata": {"name": "c", "resourceVersion": "31"}}
    apiserver.script(("event", "ADDED", first), ("drop",))
    apiserver.script(("event", "ADDED", second), ("end",))
    with caplog.at_level(logging.WARNING, logger="inferplane.reflector"):
        _reflector, seen = run()
        seen.wait(lambda: len(seen.events) == 2)
    assert seen.events == [("ADDED", "b"), ("ADDED", "c")]
    assert [w["resourceVersion"] for w in apiserver.watches()[:2]] == ["11", "30"]
    assert len(apiserver.lists()) == 1
    assert any(r.message == "watch failed; retrying" for r in caplog.records)


def test_a_missing_resource_is_logged_with_the_hint_and_retried_until_it_appears(apiserver, run, caplog):
    apiserver.list_status = 404
    with caplog.at_level(logging.WARNING, logger="inferplane.reflector"):
        reflector, _ = run(missing_hint="is the InstanceType CRD installed?")
        wait_for(lambda: len(apiserver.lists()) >= 3)
        assert not reflector.synced.is_set()
        assert reflector.last_sync_age() is None
        warning = next(r for r in caplog.records if r.message == "list failed; retrying")
    assert warning.hint == "is the InstanceType CRD installed?"
    assert "404" in warning.error
    apiserver.list_status = None
    assert reflector.wait_synced(5)


def test_a_failing_consumer_is_logged_and_followed_by_a_relist(apiserver, run, caplog):
    apiserver.put("a")
    apiserver.script(("event", "ADDED", {"metadata": {"name": "b", "resourceVersion": "12"}}))
    seen = Recorder()
    seen.fail_next_event = True
    with caplog.at_level(logging.ERROR, logger="inferplane.reflector"):
        run(seen)
        seen.wait(lambda: len(seen.replaced) == 2)
    assert any("KeyError: 'consumer bug'" in (r.exc_text or "") for r in caplog.records)


def test_an_expired_continue_token_starts_the_pages_over_and_only_then_one_unpaged_list(apiserver, run):
    for name in "abcde":
        apiserver.put(name)
    apiserver.expire_continue = 1
    reflector, seen = run(page_size=2)
    assert reflector.wait_synced(5)
    assert seen.replaced == [["a", "b", "c", "d", "e"]]  # page a, b of the expired pass not twice
    assert [(q.get("limit"), q.get("continue")) for q in apiserver.lists()] == [
        ("2", None), ("2", "2"), ("2", None), ("2", "2"), ("2", "4")
    ]  # fmt: skip

    apiserver.expire_continue = 2  # the relist outlives the compaction twice
    reflector.stop()
    reflector, seen = run(page_size=2)
    assert reflector.wait_synced(5)
    assert seen.replaced == [["a", "b", "c", "d", "e"]]
    assert [(q.get("limit"), q.get("continue")) for q in apiserver.lists()[5:]] == [
        ("2", None), ("2", "2"), ("2", None), ("2", "2"), (None, None)
    ]  # fmt: skip


def test_transform_shapes_list_items_and_events_and_none_leaves_objects_out(apiserver, run):
    for name in ("a", "skip-b", "c"):
        apiserver.put(name)
    apiserver.script(
        ("event", "ADDED", {"metadata": {"name": "d", "resourceVersion": "20"}}),
        ("event", "MODIFIED", {"metadata": {"name": "skip-e", "resourceVersion": "21"}}),
        ("event", "DELETED", {"metadata": {"name": "a", "resourceVersion": "22"}}),
    )
    replaced: list[list[tuple[str, str]]] = []
    events: list[tuple[str, tuple[str, str]]] = []

    def keep(obj: dict[str, Any]) -> tuple[str, str] | None:
        name = obj["metadata"]["name"]
        return None if name.startswith("skip-") else ("kept", name)  # the resourceVersion is not kept

    reflector = Reflector(
        kube.for_host(apiserver.url), PATH, transform=keep, backoff=FAST,
        on_replace=replaced.append, on_event=lambda kind, kept: events.append((kind, kept)),
    )  # fmt: skip
    reflector.start()
    try:
        wait_for(lambda: len(events) == 2)
        assert replaced == [[("kept", "a"), ("kept", "c")]]
        assert events == [("ADDED", ("kept", "d")), ("DELETED", ("kept", "a"))]
        # The resourceVersion comes from the object as served, dropped or transformed.
        wait_for(lambda: reflector.resource_version == "22")
    finally:
        reflector.stop()


def test_each_page_is_transformed_before_the_next_is_fetched(apiserver, run):
    for name in "abcde":
        apiserver.put(name)
    lists_when_seen: dict[str, int] = {}

    def note(obj: dict[str, Any]) -> dict[str, Any]:
        lists_when_seen[obj["metadata"]["name"]] = len(apiserver.lists())
        return obj

    reflector, _ = run(page_size=2, transform=note)
    assert reflector.wait_synced(5)
    assert lists_when_seen == {"a": 1, "b": 1, "c": 2, "d": 2, "e": 3}


def test_selectors_go_on_the_list_and_the_watch(apiserver, run):
    reflector, _ = run(label_selector="ml.example/model-name", field_selector="spec.nodeName=n1")
    reflector.wait_synced(5)
    wait_for(lambda: apiserver.watches())
    for query in (apiserver.lists()[0], apiserver.watches()[0]):
        assert query["labelSelector"] == "ml.example/model-name"
        assert query["fieldSelector"] == "spec.nodeName=n1"


def test_stop_interrupts_a_watch_that_waits_for_events(apiserver, run):
    reflector, _ = run()
    reflector.wait_synced(5)
    wait_for(lambda: apiserver.watches())
    time.sleep(0.1)
    began = time.monotonic()
    reflector.stop()
    assert time.monotonic() - began < 2
    assert not reflector._thread.is_alive()


def test_periodic_relist(apiserver, run):
    apiserver.put("a")
    apiserver.script(("wait", 0.3), ("end",))
    _, seen = run(relist_seconds=0.2)
    seen.wait(lambda: len(seen.replaced) >= 2)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(0, 0.0, 0.5), (1, 0.0, 1.0), (3, 0.0, 4.0), (10, 0.0, 30.0), (3, 1.0, 2.0), (200, 0.5, 22.5)],
)
def test_backoff_grows_to_its_cap_with_jitter(attempt, rand, expected):
    assert Backoff().delay(attempt, rand=lambda: rand) == pytest.approx(expected)
