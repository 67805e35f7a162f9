"""The virtual-time event loop and the inline executor the driver simulation runs on."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from tests.sim.driver.loop import DeadlockError, InlineExecutor, VirtualTimeLoop


def _run(coro_fn: object) -> object:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro_fn())  # type: ignore[operator]
    finally:
        loop.close()


def test_an_idle_loop_jumps_to_the_next_timer_instead_of_waiting() -> None:
    async def sleepy() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await asyncio.sleep(seconds)
            seen.append((name, loop.time()))

        await asyncio.gather(sleeper("hour", 3600.0), sleeper("minute", 60.0))
        return seen

    started = time.monotonic()
    assert _run(sleepy) == [("minute", 60.0), ("hour", 3600.0)]
    assert time.monotonic() - started < 1.0


def test_a_timer_rearmed_for_the_rest_of_an_interval_is_reached_not_spun_on() -> None:
    # Like RaftNode._run, two tasks wait "until the next tick" and re-arm for the rest when
    # woken early. Their deadlines are 0.3 ns apart: asyncio runs the later timer with the
    # earlier one (within its clock resolution), and unless the clock moves onto it the task
    # re-arms a sub-resolution timeout forever (it did: 10,000 turns and counting).
    async def tickers() -> list[int]:
        loop = asyncio.get_running_loop()
        turns = [0, 0]

        async def ticker(i: int, offset_s: float) -> None:
            for k in range(1, 30):
                deadline = 0.1 * k + offset_s
                while loop.time() < deadline and turns[i] < 1000:
                    turns[i] += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.Event().wait(), deadline - loop.time())

        await asyncio.gather(ticker(0, 0.0), ticker(1, 3e-10))
        return turns

    assert max(_run(tickers)) < 100  # type: ignore[call-overload]


def test_waiting_for_something_that_never_comes_is_reported_as_a_deadlock() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(DeadlockError):
        _run(forever)


def test_the_wall_clock_follows_virtual_time() -> None:
    async def clocks() -> int:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        before = loop.wall_clock_ns()
        await asyncio.sleep(2.5)
        return loop.wall_clock_ns() - before

    assert _run(clocks) == 2_500_000_000


def test_the_inline_executor_runs_work_at_once_on_the_calling_thread() -> None:
    async def offload() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        executor = InlineExecutor()
        name = await loop.run_in_executor(executor, lambda: threading.current_thread().name)
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(executor, lambda: 1 // 0)
        return name, threading.current_thread().name

    ran_on, caller = _run(offload)  # type: ignore[misc]
    assert ran_on == caller
