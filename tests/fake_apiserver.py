"""`FakeApiserver`: a test double of kube-apiserver on loopback, shared by the tests of what lists
and watches (the reflector, the webhook's cluster feed, the extender's caches).

A test double, not a mock of our code: clients speak real HTTP/1.1 to it through urllib3, receive
LIST pages and chunked WATCH streams, and see the failures a real apiserver produces (410 Gone as a
status and as an ERROR event, bookmarks, a dropped connection, a 404 for a CRD that is not
installed, a LIST answering 500). A WATCH either plays steps a test scripted, or, with no script
queued, streams what changed: the events `apply`/`delete` logged after the resourceVersion the
watch asks for, then each new one as it happens, as the real apiserver does.
"""

from __future__ import annotations

import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

PATH = "/apis/ml.example/v1alpha1/instancetypes"
Step = tuple[Any, ...]
# Answers a write instead of the echo: (method, path, body) -> (HTTP status, JSON body).
WriteHandler = Callable[[str, str, Any], tuple[int, dict[str, Any]]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-watch (the reflector stopping) is normal; anything else is not."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


class FakeApiserver:
    """A test double of kube-apiserver: LIST with limit/continue, WATCH as a chunked stream that
    plays the scripts queued with `script(...)`, or else streams the changes `apply`/`delete` make
    until timeoutSeconds.

    Steps: ("event", TYPE, obj) · ("bookmark", rv) · ("error", code) (an ERROR event with a Status)
    · ("status", code) (answer the watch with that HTTP status instead) · ("drop",) (close the
    connection mid-chunk) · ("end",) (end the stream cleanly) · ("wait", seconds).
    """

    def __init__(self, *, watch_timeout: float = 1.0) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}  # collection path -> name -> object
        self.rv = 10
        self.watch_timeout = watch_timeout  # seconds a WATCH without timeoutSeconds stays open
        self.list_status: int | None = None  # answer every LIST with this HTTP status
        self.failing: set[str] = set()  # collection paths whose LIST answers 500
        self.missing: set[str] = set()  # collection paths that answer 404 (a CRD not installed)
        self.expire_continue = 0  # answer this many of the next LISTs carrying `continue` with 410
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.authorizations: list[str | None] = []
        # Writes (POST, PUT, PATCH, DELETE): (method, path, Content-Type, body), answered with the
        # body echoed, or with `write_status` when set.
        self.writes: list[tuple[str, str, str | None, Any]] = []
        self.write_status: int | None = None
        self.write_handler: WriteHandler | None = None
        self._scripts: dict[str, queue.Queue[list[Step]]] = {}
        self._log: list[tuple[int, str, dict[str, Any]]] = []  # (resourceVersion, path, event)
        self._watchers: dict[str, list[queue.Queue[dict[str, Any] | None]]] = {}
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
        with self._lock:
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.put(None)
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

    def apply(self, path: str, obj: dict[str, Any]) -> None:
        """Create or update `obj` in the collection at `path`, as a change watches see."""
        self._change(
            path, "MODIFIED" if obj["metadata"]["name"] in self.objects.get(path, {}) else "ADDED", obj
        )

    def delete(self, path: str, obj: dict[str, Any]) -> None:
        self._change(path, "DELETED", obj)

    def _change(self, path: str, kind: str, obj: dict[str, Any]) -> None:
        with self._lock:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            collection = self.objects.setdefault(path, {})
            if kind == "DELETED":
                collection.pop(obj["metadata"]["name"], None)
            else:
                collection[obj["metadata"]["name"]] = obj
            event = {"type": kind, "object": obj}
            self._log.append((self.rv, path, event))
            for watcher in self._watchers.get(path, []):
                watcher.put(event)

    @property
    def field_selectors(self) -> list[str]:
        """The fieldSelector of every request that had one, in order."""
        return [query["fieldSelector"] for _, query in self.requests if "fieldSelector" in query]

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
                if fake.write_handler is not None:
                    return fake._send_json(self, *fake.write_handler(self.command, self.path, body))
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
        if path in self.failing:
            return self._status(handler, 500)
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
        timeout = float(query.get("timeoutSeconds") or self.watch_timeout)
        try:
            steps = self._scripts.get(path, queue.Queue()).get_nowait()
        except queue.Empty:
            return self._stream(handler, path, int(query.get("resourceVersion") or 0), timeout)
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

    def _stream(self, handler: BaseHTTPRequestHandler, path: str, since: int, timeout: float) -> None:
        """The changes after resourceVersion `since`, then each new one, until `timeout`."""
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        with self._lock:
            for rv, collection, event in self._log:
                if collection == path and rv > since:
                    events.put(event)
            self._watchers.setdefault(path, []).append(events)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = events.get(timeout=min(left, 0.5))
                except queue.Empty:
                    continue
                if event is None:
                    break
                line = orjson.dumps(event) + b"\n"
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        finally:
            with self._lock:
                self._watchers[path].remove(events)
