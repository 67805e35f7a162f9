"""``RecordFuture``: the future ``Producer.send`` returns, and the batch whose state it shares.

A ``concurrent.futures.Future`` costs a Condition, an RLock, two lists and a deque; at a few
hundred thousand records a second that allocation (and the garbage collector walking it) was
half of ``send``. A ``RecordFuture`` is a ``Future`` subclass holding only its batch and its
index in it: the state, the base offset and the error live once in the ``_Batch``, and every
future of a producer shares one Condition. Resolving a batch is one assignment and one
``notify_all``, whatever its size; only futures that were given callbacks or are watched by
``concurrent.futures.wait``/``as_completed`` are visited one by one.

It relies on the attributes ``Future``'s own methods use (``_condition``, ``_state``,
``_result``, ``_exception``, ``_waiters``, ``_done_callbacks``), which are exposed here as
properties over the batch; ``tests/unit/client`` checks every public ``Future`` behaviour.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures._base import FINISHED, RUNNING
from typing import Any

__all__ = ["RecordFuture"]

log = logging.getLogger("concurrent.futures")


def _read_only() -> RuntimeError:
    return RuntimeError("a RecordFuture is resolved by its Producer")


class _Batch:
    """Records travelling in one ProduceBatch request, and the outcome they share.

    ``parts`` is the request body in pieces (a field header, then a serialized Record, for
    each record), so the request is one ``b"".join``. The batch does not hold its futures
    (each holds the batch): a future its caller dropped is freed at once, so buffered
    records leave nothing for the garbage collector to walk. Futures that need to be told
    (callbacks, ``wait``) are listed in ``watched``. A batch split in two after a
    RecordTooLargeError keeps its ``halves``, where its futures find their outcome.
    """

    __slots__ = (
        "base",
        "closed_at",
        "condition",
        "count",
        "error",
        "first_at",
        "halves",
        "partition",
        "parts",
        "route",
        "size",
        "state",
        "watched",
    )

    def __init__(self, condition: threading.Condition) -> None:
        self.condition = condition
        self.parts: list[bytes] = []
        self.count = 0
        self.size = 0
        self.first_at = 0.0
        self.closed_at = 0.0  # when it took its last record: its delivery timeout counts from here
        self.state = RUNNING
        self.base = 0
        self.error: BaseException | None = None
        self.watched: list[RecordFuture] = []
        self.halves: tuple[_Batch, _Batch] | None = None
        # The key its records share (None: keyless records), so one batch never mixes
        # records of different partitions; and the partition it was appended to.
        self.route: int | bytes | None = None
        self.partition = 0

    def locate(self, index: int) -> tuple[_Batch, int]:
        """The batch that carries record ``index`` of this one, and its index there."""
        batch = self
        while batch.halves is not None:
            first, second = batch.halves
            if index < first.count:
                batch = first
            else:
                batch, index = second, index - first.count
        return batch, index

    def split(self) -> tuple[_Batch, _Batch]:
        """Two batches holding the first and the second half of this one's records."""
        cut = self.count // 2
        halves = (_Batch(self.condition), _Batch(self.condition))
        for half, parts in zip(halves, (self.parts[: 2 * cut], self.parts[2 * cut :]), strict=True):
            half.parts, half.count, half.size = parts, len(parts) // 2, sum(map(len, parts))
            half.route = self.route
        with self.condition:  # watchers move to the half that will tell them
            self.halves = halves
            for future in self.watched:
                self.locate(future._index)[0].watched.append(future)
        return halves

    def resolve(self, base: int, error: BaseException | None, partition: int = 0) -> None:
        """Finish every future of the batch: offsets from ``base`` of ``partition``, or
        ``error`` for all."""
        with self.condition:
            self.base, self.error, self.partition = base, error, partition
            self.state = FINISHED
            self.condition.notify_all()
            watched = list(self.watched)
            for future in watched:
                for waiter in future._waiters:
                    if error is None:
                        waiter.add_result(future)
                    else:
                        waiter.add_exception(future)
        for future in watched:
            for callback in future._done_callbacks:
                try:
                    callback(future)
                except Exception:  # as Future does: a failing callback is logged, not raised
                    log.exception("exception calling callback for %r", future)


class RecordFuture(Future[int]):
    """The offset of one record sent by a ``Producer``; a ``concurrent.futures.Future``.

    It starts running (the record is queued and cannot be taken back, so ``cancel()``
    returns False) and finishes with the record's offset or with the replog error that
    failed its batch. ``result``, ``exception``, ``done``, ``add_done_callback``,
    ``concurrent.futures.wait`` and ``as_completed`` behave as for any Future;
    ``set_result``/``set_exception`` are reserved to the Producer and raise RuntimeError.
    """

    # _hooks: (waiters, done callbacks), set on first use; unset for almost every record.
    __slots__ = ("_batch", "_hooks", "_index")

    _hooks: tuple[list[Any], list[Callable[[Future[int]], object]]]

    def __init__(self, batch: _Batch, index: int) -> None:  # Future.__init__ is not wanted
        self._batch = batch
        self._index = index

    def _place(self) -> tuple[_Batch, int]:
        batch = self._batch
        return (batch, self._index) if batch.halves is None else batch.locate(self._index)

    # The attributes Future's methods read, derived from the batch. Only the Producer
    # changes them (through the batch); Future's own setters are never reached, since
    # set_result/set_exception are overridden and cancel() does nothing to a running future.

    @property
    def _condition(self) -> threading.Condition:
        return self._batch.condition

    @_condition.setter
    def _condition(self, value: threading.Condition) -> None:
        raise _read_only()

    @property
    def _state(self) -> str:
        return self._place()[0].state

    @_state.setter
    def _state(self, value: str) -> None:
        raise _read_only()

    @property
    def _result(self) -> int:
        batch, index = self._place()
        return batch.base + index

    @_result.setter
    def _result(self, value: int | None) -> None:
        raise _read_only()

    @property
    def _exception(self) -> BaseException | None:
        return self._place()[0].error

    @_exception.setter
    def _exception(self, value: BaseException | None) -> None:
        raise _read_only()

    @property
    def _waiters(self) -> list[Any]:
        return self._hook_lists()[0]

    @_waiters.setter
    def _waiters(self, value: list[Any]) -> None:
        raise _read_only()

    @property
    def _done_callbacks(self) -> list[Callable[[Future[int]], object]]:
        return self._hook_lists()[1]

    def _hook_lists(self) -> tuple[list[Any], list[Callable[[Future[int]], object]]]:
        # Called by Future's methods with the condition held, so watching is race-free.
        try:
            return self._hooks
        except AttributeError:
            self._hooks = ([], [])
            self._place()[0].watched.append(self)
            return self._hooks

    @property
    def partition(self) -> int:
        """The partition the record was appended to (once the future has its result)."""
        return self._place()[0].partition

    def result(self, timeout: float | None = None) -> int:
        """The record's offset, waiting up to ``timeout`` seconds (None: as long as it
        takes); raises the batch's error, or TimeoutError."""
        batch, index = self._finished(timeout)
        if batch.error is not None:
            raise batch.error
        return batch.base + index

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The batch's error (None when the record was appended), waiting as ``result``."""
        return self._finished(timeout)[0].error

    def _finished(self, timeout: float | None) -> tuple[_Batch, int]:
        # Every batch of a producer shares the condition, so a wake-up may be another
        # batch's: wait again until this one is finished or the time is up (Future's own
        # result() waits once and took another batch's wake-up for a timeout).
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._batch.condition:
            while True:
                batch, index = self._place()
                if batch.state == FINISHED:
                    return batch, index
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._batch.condition.wait(left)

    def set_result(self, result: int) -> None:
        """Reserved to the Producer: raises RuntimeError."""
        raise _read_only()

    def set_exception(self, exception: BaseException | None) -> None:
        """Reserved to the Producer: raises RuntimeError."""
        raise _read_only()
