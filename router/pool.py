"""Per-deployment concurrency: at most N requests in flight per pod, a bounded FIFO wait, least-loaded first.

This is the part of azureml-fe that makes `max_concurrent_requests_per_instance` and `max_queue_wait_ms`
true: a request takes a slot on the least-loaded ready pod, or waits in line until one frees up or its
wait runs out (then the caller answers 503). A pod that leaves keeps its slots until the requests on it
finish, but is never handed out again. Everything here runs on the event loop thread, so plain
counters are enough; the timeouts are loop timers rather than `asyncio.wait_for`, which would cost a
task per request.

With several router replicas the limit is a pod's, not a replica's: `share` gives each live replica
its part of it (the replicas learn of each other from their load Leases, `router.leader`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Iterable

from router.table import Backend


def share(limit: int, replicas: int, rank: int, key: str = "") -> int:
    """This replica's part of a pod's concurrency limit, when `replicas` routers send to that pod.

    The limit is split as evenly as whole numbers allow: each replica gets `limit // replicas`, and
    `limit % replicas` of them one more, so the parts add up to the limit exactly. Which replicas
    get the extra turns with `key` (the deployment), so no replica collects every remainder. A part
    is never below 1, as a replica with 0 could serve nothing: below `replicas` the parts add up to
    `replicas`, not `limit`, and a pod can then see one request per router replica at once.
    """
    if replicas <= 1:
        return limit
    base, extra = divmod(limit, replicas)
    turn = (rank + zlib.crc32(key.encode())) % replicas
    return max(1, base + int(turn < extra))


class QueueTimeout(Exception):
    """No pod freed up within the deployment's queue wait."""


class PodSlot:
    """Mutable load state of one pod, shared by every request on it."""

    __slots__ = ("backend", "gone", "in_flight")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.in_flight = 0
        self.gone = False


class PodPool:
    def __init__(self, max_concurrent: int = 1) -> None:
        self.max_concurrent = max_concurrent
        self.slots: dict[tuple[str, int], PodSlot] = {}
        self._order: list[PodSlot] = []
        self._next = 0
        self._waiters: deque[asyncio.Future[PodSlot]] = deque()
        self.queued = 0

    # -- signals the autoscaler and /metrics read ------------------------------------------------
    @property
    def pods(self) -> int:
        return len(self._order)

    @property
    def busy_pods(self) -> int:
        return sum(1 for s in self._order if s.in_flight)

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.slots.values())

    # -- membership ----------------------------------------------------------------------------------
    def update(self, backends: Iterable[Backend], max_concurrent: int) -> None:
        """Adopt the current set of ready pods; requests already on a departed pod run to the end."""
        self.max_concurrent = max_concurrent
        fresh: dict[tuple[str, int], PodSlot] = {}
        for backend in backends:
            slot = self.slots.get(backend.address)
            if slot is None or slot.gone:
                slot = PodSlot(backend)
            fresh[backend.address] = slot
        for address, slot in self.slots.items():
            if address not in fresh:
                slot.gone = True
        # Departed pods with requests still running stay in `slots` (for in-flight accounting) only.
        self.slots = fresh | {a: s for a, s in self.slots.items() if s.gone and s.in_flight}
        self._order = list(fresh.values())
        self._wake()

    def resize(self, max_concurrent: int) -> None:
        """A new limit per pod; requests already running above a lower one finish, none start."""
        self.max_concurrent = max_concurrent
        self._wake()

    # -- taking and giving back a slot ------------------------------------------------------------
    def try_acquire(self) -> PodSlot | None:
        """The least-loaded pod with room, rotating among equals so load spreads evenly."""
        order = self._order
        count = len(order)
        if not count:
            return None
        best: PodSlot | None = None
        start = self._next % count
        for i in range(count):
            slot = order[(start + i) % count]
            if slot.in_flight < self.max_concurrent and (best is None or slot.in_flight < best.in_flight):
                best = slot
                if not slot.in_flight:
                    break
        if best is not None:
            self._next = start + 1
            best.in_flight += 1
        return best

    async def acquire(self, wait_s: float) -> PodSlot:
        slot = self.try_acquire()
        if slot is not None:
            return slot
        if wait_s <= 0:
            raise QueueTimeout
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[PodSlot] = loop.create_future()
        self._waiters.append(waiter)
        self.queued += 1
        timer = loop.call_later(wait_s, _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed a slot just as the caller went away
            raise
        finally:
            timer.cancel()
            if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
                self.queued -= 1  # left the line without a slot (a handed-off waiter was counted down)

    def release(self, slot: PodSlot) -> None:
        if not slot.gone and slot.in_flight <= self.max_concurrent:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    self.queued -= 1
                    waiter.set_result(slot)  # the slot passes straight to the next in line
                    return
        slot.in_flight -= 1
        if slot.gone and not slot.in_flight:
            self.slots.pop(slot.backend.address, None)

    def _wake(self) -> None:
        while self._waiters:
            if self._waiters[0].done():
                self._waiters.popleft()
                continue
            slot = self.try_acquire()
            if slot is None:
                return
            self.queued -= 1
            self._waiters.popleft().set_result(slot)


def _expire(waiter: asyncio.Future[PodSlot]) -> None:
    if not waiter.done():
        waiter.set_exception(QueueTimeout())
