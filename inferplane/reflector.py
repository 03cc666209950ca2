"""List+watch cache feeding: the Kubernetes reflector pattern, on raw JSON dicts.

The official Python client has no informer (kubernetes-client/python#868 is still open) and its
`Watch` neither follows bookmarks nor relists on 410, so this module owns exactly that loop and
nothing else: LIST (paginated) → `on_replace(items)` → WATCH from the list's resourceVersion with
bookmarks → `on_event(type, obj)` per change → on 410 Gone, LIST again; on any other failure, wait a
jittered, growing delay and WATCH again from the last resourceVersion seen.

Objects are the apiserver's JSON parsed by orjson: building the official client's models would
cost more than everything else the extender does with 150,000 pods.

`transform` turns each object into what the consumer keeps, as it arrives: each item of a LIST page
before the next page is fetched, and each watched object before `on_event`. Without it a LIST holds
every full object until its last page (150,000 pods: ~3 KB each in Python when minimal, several
times that as the apiserver serves them); with it only one page of full objects is alive at a time.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import orjson
import urllib3

from inferplane.kube import ApiStatusError, KubeClient

log = logging.getLogger(__name__)

T = TypeVar("T")  # what the consumer keeps of each object: the object itself unless transformed
Transform = Callable[[dict[str, Any]], T | None]

LIST_READ_TIMEOUT = 60.0
# A watch that ends this fast without one event is treated as a failure, not a normal end: without
# this a server that closes every watch at once would be hammered in a tight loop.
SHORT_WATCH_SECONDS = 1.0


class ResourceExpired(Exception):
    """410 Gone: the resourceVersion we hold is older than the apiserver's history; relist."""


class WatchError(Exception):
    """The watch stream said ERROR (other than 410), or broke its own framing."""


@dataclass(frozen=True)
class Backoff:
    """Delay before retry `attempt` (0-based): exponential up to `maximum`, each scaled by a random
    factor in [1 - jitter, 1] so that replicas restarted together do not retry in step."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rand())


class Reflector(Generic[T]):
    """Keeps `on_replace`/`on_event` consumers in step with one resource collection.

    `path` is a collection URL such as `/api/v1/pods` or `/apis/ml.example/v1alpha1/instancetypes`.
    Callbacks (and `transform`) run on the reflector's own thread; one that raises is logged with its
    traceback and followed by a relist, since the consumer's state may now be half-updated.

    `transform(obj)` gives what the consumer receives instead of `obj` (a trimmed dict, or a value of
    its own); the reflector has already read the resourceVersion. None leaves the object out: from a
    LIST, and its events from the watch. So return None only on what does not change in an object
    (its name, namespace, owner), or the consumer misses the event that made it uninteresting; to
    hear of every object, return a value saying "nothing to keep" instead.
    """

    def __init__(
        self,
        client: KubeClient,
        path: str = "/api/v1/pods",
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        on_replace: Callable[[list[T]], None],
        on_event: Callable[[str, T], None],
        transform: Transform[T] | None = None,
        page_size: int = 500,
        watch_timeout: int = 300,
        relist_seconds: float | None = None,
        backoff: Backoff = Backoff(),
        missing_hint: str = "",
    ) -> None:
        self._client = client
        self.path = path
        self._selectors = {"fieldSelector": field_selector, "labelSelector": label_selector}
        self._on_replace = on_replace
        self._on_event = on_event
        self._transform: Transform[T] = transform or cast(Transform[T], _same)
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._relist_seconds = relist_seconds
        self._backoff = backoff
        self._missing_hint = missing_hint  # said in the log on 404 (e.g. "is the CRD installed?")
        self.synced = threading.Event()
        self.resource_version: str | None = None
        self.relists = 0  # LISTs after the first
        self._last_sync: float | None = None  # monotonic time of the last LIST or watch event
        self._listed_at = 0.0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: urllib3.BaseHTTPResponse | None = None

    # public surface

    def start(self) -> None:
        """Begin listing and watching on a daemon thread (call it in each worker, after the fork)."""
        if self._thread is not None:
            raise RuntimeError(f"reflector for {self.path} already started")
        self._thread = threading.Thread(target=self._run, name=f"reflector {self.path}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread, interrupting a watch that is waiting for the next event."""
        self._stopped.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(ValueError, RuntimeError):  # already finished or released
                response.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self.synced.wait(timeout)

    def last_sync_age(self) -> float | None:
        """Seconds since the last LIST, event or bookmark; None before the first LIST."""
        if self._last_sync is None:
            return None
        return time.monotonic() - self._last_sync

    # the loop

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                if self.resource_version is None or self._relist_due():
                    self._list()
                self._watch(self.resource_version)  # type: ignore[arg-type]
                failures = 0
                continue
            except ResourceExpired:
                log.info(
                    "resourceVersion expired; listing again",
                    extra={"resource": self.path, "resource_version": self.resource_version},
                )
                self.resource_version = None
                if time.monotonic() - self._listed_at > SHORT_WATCH_SECONDS:
                    failures = 0
                    continue
                # Expired again right after a LIST: something is off; do not relist in a tight loop.
            except (ApiStatusError, WatchError, urllib3.exceptions.HTTPError, OSError) as exc:
                if self._stopped.is_set():
                    break
                self._log_failure(exc)
            except Exception:
                if self._stopped.is_set():
                    break
                log.exception("reflector callback failed; listing again", extra={"resource": self.path})
                self.resource_version = None
            self._stopped.wait(self._backoff.delay(failures))
            failures += 1

    def _relist_due(self) -> bool:
        return self._relist_seconds is not None and time.monotonic() - self._listed_at >= self._relist_seconds

    def _log_failure(self, exc: Exception) -> None:
        extra: dict[str, Any] = {"resource": self.path, "error": str(exc)}
        if isinstance(exc, ApiStatusError) and exc.code == 404 and self._missing_hint:
            extra["hint"] = self._missing_hint
        verb = "watch" if self.synced.is_set() else "list"
        log.warning(f"{verb} failed; retrying", extra=extra)

    def _list(self) -> None:
        items: list[T] = []
        first_page: dict[str, Any] = {**self._selectors, "limit": self._page_size}
        params, expired = first_page, 0
        while True:
            try:
                page = orjson.loads(self._client.get(self.path, params, timeout=LIST_READ_TIMEOUT).data)
            except ApiStatusError as exc:
                if exc.code != 410 or "continue" not in params:
                    raise
                # The continue token outlived etcd's compaction (every 5 minutes by default): start
                # over from a new snapshot, in pages again, since one unpaged LIST of a big cluster
                # is the very peak of memory the pages avoid. Only a list that keeps outliving the
                # compaction is taken in one piece.
                expired += 1
                items, params = [], first_page if expired == 1 else {**self._selectors}
                log.info(
                    "list continuation expired; listing again from the start",
                    extra={"resource": self.path, "paged": "limit" in params},
                )
                continue
            items.extend(self._kept(page.get("items") or ()))
            meta = page.get("metadata") or {}
            del page  # this page's full objects go before the next page arrives
            token = meta.get("continue")
            if not token:
                break
            params = {**self._selectors, "limit": self._page_size, "continue": token}
        if self._listed_at:
            self.relists += 1
        self._on_replace(items)
        self.resource_version = meta.get("resourceVersion") or ""
        self._listed_at = self._last_sync = time.monotonic()
        self.synced.set()
        log.info(
            "listed",
            extra={"resource": self.path, "items": len(items), "resource_version": self.resource_version},
        )

    def _watch(self, resource_version: str) -> None:
        params = {
            **self._selectors,
            "watch": True,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": self._watch_timeout,
        }
        started, events = time.monotonic(), 0
        # The server ends the watch after timeoutSeconds; our read timeout is a margin beyond that,
        # for a connection that died without a FIN.
        try:
            response = self._client.get(self.path, params, timeout=self._watch_timeout + 30, stream=True)
        except ApiStatusError as exc:
            if exc.code == 410:
                raise ResourceExpired(exc.message) from exc
            raise
        self._response = response
        ended = False  # the server ended the stream: the connection may serve the next request
        try:
            if self._stopped.is_set():  # stop() ran before it could see this response
                return
            for line in _lines(response):
                self._handle(orjson.loads(line))
                events += 1
            ended = not self._stopped.is_set()  # after stop()'s shutdown the stream only looks ended
        finally:
            self._response = None
            if not ended:
                # Left mid-stream (stopped, an ERROR event, a consumer bug): the rest of the body is
                # unread, or the socket half shut; back in the pool, the connection would hang the
                # client's next request until its read timeout.
                response.close()
            response.release_conn()
        if events == 0 and time.monotonic() - started < SHORT_WATCH_SECONDS and not self._stopped.is_set():
            raise WatchError("watch closed at once without any event")

    def _handle(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise ResourceExpired(obj.get("message", ""))
            raise WatchError(f"watch ERROR event: {code} {obj.get('reason', '')}: {obj.get('message', '')}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            kept = self._transform(obj)
            if kept is not None:
                self._on_event(kind, kept)
        elif kind != "BOOKMARK":
            raise WatchError(f"watch event of unknown type {kind!r}")
        if rv:
            self.resource_version = rv
        self._last_sync = time.monotonic()

    def _kept(self, objs: Iterable[dict[str, Any]]) -> Iterator[T]:
        for obj in objs:
            kept = self._transform(obj)
            if kept is not None:
                yield kept


def _same(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Newline-delimited JSON from a chunked body, one event per line, as soon as each arrives."""
    pending = bytearray()  # grows linearly when one large object spans many chunks
    for chunk in response.stream(65536):
        pending += chunk
        if b"\n" not in chunk:
            continue
        *complete, rest = pending.split(b"\n")
        pending = bytearray(rest)
        for line in complete:
            if line.strip():
                yield bytes(line)
    if pending.strip():
        yield bytes(pending)
