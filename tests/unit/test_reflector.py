"""The list+watch reflector against a real HTTP server on loopback that plays the apiserver.

`FakeApiserver` (tests/fake_apiserver.py) is a test double of kube-apiserver, not a mock of our
code: the reflector speaks real HTTP/1.1 to it through urllib3, receives LIST pages and chunked
WATCH streams, and sees the failures a real apiserver produces (410 Gone as a status and as an
ERROR event, bookmarks, a dropped connection, a 404 for a CRD that is not installed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_apiserver import PATH, FakeApiserver

from inferplane import kube
from inferplane.reflector import Backoff, Reflector

FAST = Backoff(initial=0.01, maximum=0.05)


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


def test_a_client_lists_at_once_after_a_reflector_on_it_stopped_mid_watch(apiserver):
    apiserver.put("a")
    client = kube.for_host(apiserver.url)
    for _ in range(3):
        reflector = Reflector(client, PATH, on_replace=lambda items: None, on_event=lambda kind, obj: None)
        reflector.start()
        # Not after the 60 s read timeout: the last watch's connection, its stream unread, must not
        # go back to the pool, where this LIST would wait on a server still busy with that watch.
        assert reflector.wait_synced(5)
        reflector.stop()  # as the watch request is being sent


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
