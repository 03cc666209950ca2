"""`Exchange` runs a request's coroutine as a Task would: to its end, through the futures it awaits, and
into CancelledError where it waits when cancelled, so its `finally` blocks give back what it holds."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from router.server import Exchange


def run(main) -> None:
    uvloop.run(main())


def test_runs_at_once_and_resumes_when_the_awaited_future_is_done() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        seen: list[object] = []

        async def handler() -> None:
            seen.append("started")
            seen.append(await future)
            await asyncio.sleep(0)  # a bare yield: resumed at the next turn
            seen.append("ended")

        exchange = Exchange(handler())
        exchange.step()
        assert seen == ["started"] and not exchange.done  # ran at once, up to the await
        future.set_result(7)
        for _ in range(5):
            await asyncio.sleep(0)
        assert seen == ["started", 7, "ended"] and exchange.done

    run(main)


def test_cancel_while_waiting_raises_where_it_waits_and_runs_finally() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        seen: list[str] = []

        async def handler() -> None:
            try:
                await future
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            finally:
                seen.append("released")

        exchange = Exchange(handler())
        exchange.step()
        exchange.cancel()
        assert future.cancelled()  # as Task.cancel cancels what the task waits on
        await asyncio.sleep(0)
        assert seen == ["cancelled", "released"] and exchange.done

    run(main)


def test_cancel_after_the_future_is_done_but_before_resuming_still_cancels() -> None:
    async def main() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seen: list[str] = []

        async def handler() -> None:
            try:
                await future
                seen.append("went on")
            except asyncio.CancelledError:
                seen.append("cancelled")

        exchange = Exchange(handler())
        exchange.step()
        future.set_result(None)  # its wakeup is scheduled, not run
        exchange.cancel()
        await asyncio.sleep(0)
        assert seen == ["cancelled"] and exchange.done

    run(main)


def test_cancel_before_it_starts_never_runs_it() -> None:
    async def main() -> None:
        seen: list[str] = []

        async def handler() -> None:
            seen.append("ran")

        exchange = Exchange(handler())
        exchange.cancel()
        exchange.step()
        assert seen == [] and exchange.done

    run(main)


def test_an_error_the_handler_does_not_catch_ends_it() -> None:
    async def main() -> None:
        async def handler() -> None:
            raise KeyboardInterrupt

        exchange = Exchange(handler())
        with pytest.raises(KeyboardInterrupt):
            exchange.step()
        assert exchange.done

    run(main)
