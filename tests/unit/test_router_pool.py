"""Per-pod concurrency: exact limits, least-loaded choice, FIFO bounded wait, pods that leave."""

from __future__ import annotations

import asyncio

import pytest

from router.pool import PodPool, QueueTimeout
from router.table import Backend

A = Backend("a", "127.0.0.2", 1)
B = Backend("b", "127.0.0.3", 1)


def run(coro):
    return asyncio.run(coro)


def test_least_loaded_pod_first_and_never_over_the_limit() -> None:
    pool = PodPool()
    pool.update([A, B], max_concurrent=2)
    taken = [pool.try_acquire() for _ in range(4)]
    assert [s.backend.pod for s in taken if s] in (["a", "b", "a", "b"], ["b", "a", "b", "a"])
    assert pool.try_acquire() is None
    assert pool.busy_pods == 2 and pool.in_flight == 4


def test_a_freed_slot_goes_to_the_first_in_line() -> None:
    async def scenario() -> list[str]:
        pool = PodPool()
        pool.update([A], max_concurrent=1)
        held = await pool.acquire(0.1)
        order: list[str] = []

        async def wait(name: str) -> None:
            slot = await pool.acquire(1.0)
            order.append(name)
            await asyncio.sleep(0.01)
            pool.release(slot)

        waiters = [asyncio.create_task(wait(n)) for n in ("first", "second")]
        await asyncio.sleep(0.01)
        assert pool.queued == 2
        pool.release(held)
        await asyncio.gather(*waiters)
        assert pool.queued == 0 and pool.in_flight == 0
        return order

    assert run(scenario()) == ["first", "second"]


def test_the_wait_is_bounded() -> None:
    async def scenario() -> float:
        pool = PodPool()
        pool.update([A], max_concurrent=1)
        await pool.acquire(0.1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(QueueTimeout):
            await pool.acquire(0.05)
        assert pool.queued == 0
        return loop.time() - start

    assert 0.04 < run(scenario()) < 0.5


def test_a_new_pod_serves_the_waiting_line() -> None:
    async def scenario() -> str:
        pool = PodPool()
        pool.update([A], max_concurrent=1)
        await pool.acquire(0.1)
        waiter = asyncio.create_task(pool.acquire(1.0))
        await asyncio.sleep(0.01)
        pool.update([A, B], max_concurrent=1)
        return (await waiter).backend.pod

    assert run(scenario()) == "b"


def test_a_departed_pod_finishes_its_requests_but_gets_no_more() -> None:
    pool = PodPool()
    pool.update([A, B], max_concurrent=1)
    on_a = pool.try_acquire()
    assert on_a is not None
    departing = on_a.backend
    pool.update([b for b in (A, B) if b != departing], max_concurrent=1)
    assert on_a.gone and pool.in_flight == 1 and pool.pods == 1
    other = pool.try_acquire()
    assert other is not None and other.backend != departing
    assert pool.try_acquire() is None
    pool.release(on_a)
    assert pool.in_flight == 1 and departing.address not in pool.slots


def test_a_cancelled_waiter_leaves_the_line() -> None:
    async def scenario() -> None:
        pool = PodPool()
        pool.update([A], max_concurrent=1)
        held = await pool.acquire(0.1)
        waiter = asyncio.create_task(pool.acquire(1.0))
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.sleep(0.01)
        assert pool.queued == 0
        pool.release(held)
        assert pool.in_flight == 0

    run(scenario())
