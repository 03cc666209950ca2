"""Per-pod concurrency: exact limits, least-loaded choice, FIFO bounded wait, pods that leave, and the
limit divided among router replicas."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.pool import PodPool, QueueTimeout, share
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


@given(limit=st.integers(1, 10_000), replicas=st.integers(1, 64), key=st.text(max_size=20))
def test_the_replicas_shares_add_up_to_the_pods_limit(limit: int, replicas: int, key: str) -> None:
    parts = [share(limit, replicas, rank, key) for rank in range(replicas)]
    assert min(parts) >= 1
    assert max(parts) - min(parts) <= 1  # as even as whole numbers allow
    assert sum(parts) == max(limit, replicas)  # exactly the limit, unless each needs its 1


def test_shares_worked_examples() -> None:
    assert share(8, 1, 0) == 8  # one router: the whole limit
    assert sorted(share(8, 3, rank, "iris/ns/blue") for rank in range(3)) == [2, 3, 3]
    assert [share(1, 3, rank) for rank in range(3)] == [1, 1, 1]  # never 0: 3 at once on that pod
    # The remainder goes to different replicas for different deployments.
    extra = {key: [share(4, 3, rank, key) for rank in range(3)].index(2) for key in ("a", "b", "c", "d")}
    assert len(set(extra.values())) > 1


def test_a_lower_limit_lets_running_requests_finish_and_a_higher_one_serves_the_line() -> None:
    async def scenario() -> None:
        pool = PodPool()
        pool.update([A], max_concurrent=2)
        first, second = await pool.acquire(0.1), await pool.acquire(0.1)
        pool.resize(1)  # a second router replica appeared
        assert pool.in_flight == 2 and pool.try_acquire() is None
        waiter = asyncio.create_task(pool.acquire(1.0))
        await asyncio.sleep(0.01)
        pool.release(first)  # 1 still running on a limit of 1: the line keeps waiting
        await asyncio.sleep(0.01)
        assert not waiter.done() and pool.queued == 1
        pool.resize(2)  # the other replica left
        assert (await waiter).backend == A and pool.in_flight == 2
        pool.release(second)

    run(scenario())
