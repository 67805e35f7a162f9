"""An asyncio event loop on virtual time, and an executor that runs work inline.

When no callback is ready, the loop jumps its clock to the next timer instead of waiting
(trio's ``MockClock`` autojump): a run takes only the CPU time its callbacks need, and the
order of events depends on nothing but the program. It does no I/O at all: the selector is a
stub, so sockets and subprocesses are unavailable, as a simulation wants.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

WALL_CLOCK_BASE_NS = 1_700_000_000 * 10**9
"""What the fake wall clock reads at virtual time 0 (a plausible date, so timestamps look real)."""


class DeadlockError(RuntimeError):
    """Nothing is ready and no timer is set: every task waits for something that never comes."""


class _JumpSelector:
    """Stands in for the selector: instead of waiting ``timeout`` seconds, advance the clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        if timeout is None:
            raise DeadlockError("no callback is ready and no timer is scheduled")
        self._loop.advance(timeout)
        self._loop.reach_due_timer()
        return []

    def close(self) -> None:
        pass


class VirtualTimeLoop(asyncio.BaseEventLoop):
    """An event loop whose ``time()`` is virtual and jumps to the next timer when idle."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._selector = _JumpSelector(self)
        self._clock_resolution = 1e-9  # the platform's would make runs machine-dependent
        self.errors: list[str] = []
        self.set_exception_handler(_collect_errors)

    def time(self) -> float:
        """Return the virtual time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (the loop does this itself when it is idle)."""
        self._now += max(0.0, seconds)

    def reach_due_timer(self) -> None:
        """Move the clock onto the next timer if asyncio is about to run it anyway.

        asyncio runs a timer up to ``_clock_resolution`` early; with a clock that only moves
        when idle, a task that re-arms a timer for "the rest of the interval" would then be
        woken early forever while others keep the loop busy (a livelock the real clock, which
        always moves, never shows). The clock reaches the timer instead.
        """
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if scheduled and scheduled[0].when() < self._now + self._clock_resolution:
            self._now = max(self._now, scheduled[0].when())

    def wall_clock_ns(self) -> int:
        """A wall clock that follows the virtual time (for record timestamps)."""
        return WALL_CLOCK_BASE_NS + int(self._now * 1e9)

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass  # nothing waits in select(): there is no thread to wake


def _collect_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Keep what asyncio reports instead of logging it; a crashed task is a harness error.

    A node future whose client stopped waiting (or whose node crashed) may end with an
    exception nobody reads: that is the simulated world, not an error.
    """
    future = context.get("future")
    if isinstance(future, asyncio.Future) and not isinstance(future, asyncio.Task):
        return
    assert isinstance(loop, VirtualTimeLoop)
    loop.errors.append(f"{context.get('message')}: {context.get('exception')!r}")


class InlineExecutor(concurrent.futures.Executor):
    """Runs each submitted function at once, on the caller's thread (no worker threads)."""

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Run ``fn`` now; return a finished future holding its result or exception."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the awaiting task, as a worker thread would
            future.set_exception(exc)
        return future
