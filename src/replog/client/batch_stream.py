"""``BatchStream``: one open ``ConsumeBatchStream`` call that another thread can cancel.

``Client.stream_batches`` is a generator that reconnects by itself; a generator blocked in
``next`` cannot be closed from another thread, so a consumer group member, which must stop
a partition's fetch the moment the partition is revoked, sought or paused, holds one of
these per partition instead and opens a new one after a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from replog.client.core import Batch, batch_from
from replog.errors import ReplogError

__all__ = ["BatchStream"]


class BatchStream:
    """The batches of one server stream, in order, until ``cancel`` (then the iteration
    just ends) or a failure (raised as the ReplogError ``to_error`` maps it to)."""

    def __init__(self, call: Any, to_error: Callable[[grpc.RpcError], ReplogError]) -> None:
        self._call = call
        self._to_error = to_error
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[Batch]:
        try:
            for response in self._call:
                yield batch_from(response)
        except grpc.RpcError as exc:
            if self._cancelled.is_set():
                return
            raise self._to_error(exc) from None

    def cancel(self) -> None:
        """End the stream (from any thread); idempotent."""
        self._cancelled.set()
        self._call.cancel()

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel`` was called."""
        return self._cancelled.is_set()
