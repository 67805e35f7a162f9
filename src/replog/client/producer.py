"""``Producer``: batches records in the background and keeps several batches in flight.

``send()`` returns at once with a ``concurrent.futures.Future`` that resolves to the
record's offset (or fails with a replog error). A batch goes out when it holds
``max_batch_records`` records or ``max_batch_bytes`` bytes, or ``linger_ms`` after its first
record. With ``max_in_flight > 1`` batches may be appended in a different order than they
were sent; use ``max_in_flight=1`` to keep send order. A failed batch fails every future
in it; a retry after an ambiguous failure would be at-least-once, so it is not done
(see ``replog.client.core``).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Self

from replog.client.client import Client
from replog.client.core import HeadersInput, ValueInput, encode_record
from replog.errors import InvalidArgumentError, ReplogError, ServerError

__all__ = ["Producer"]


class Producer:
    """A thread-based batching producer over a ``Client`` (or a ``HOST:PORT`` to connect to)."""

    def __init__(
        self,
        client: Client | str | None = None,
        *,
        linger_ms: float = 5.0,
        max_batch_records: int = 10_000,
        max_batch_bytes: int = 4 * 1024 * 1024,
        max_in_flight: int = 4,
        max_buffered_records: int = 200_000,
    ) -> None:
        if max_batch_records < 1 or max_batch_bytes < 1 or max_in_flight < 1 or linger_ms < 0:
            raise InvalidArgumentError("producer limits must be positive")
        self._owns_client = not isinstance(client, Client)
        self.client = client if isinstance(client, Client) else Client(client)
        self.linger_s = linger_ms / 1000
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.max_buffered_records = max(max_buffered_records, max_batch_records)
        self._cond = threading.Condition()
        self._records: list[bytes] = []
        self._futures: list[Future[int]] = []
        self._bytes = 0
        self._first_at = 0.0
        self._in_flight = 0
        self._flushing = 0
        self._closed = False
        self._slots = threading.Semaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="replog-producer")
        self._sender = threading.Thread(target=self._run, name="replog-producer", daemon=True)
        self._sender.start()

    def send(
        self, value: ValueInput, key: bytes | None = None, headers: HeadersInput = None
    ) -> Future[int]:
        """Queue one record; the future resolves to its offset once acknowledged.

        Blocks while ``max_buffered_records`` records are waiting (back-pressure).
        """
        data = encode_record(value, key, headers)
        future: Future[int] = Future()
        with self._cond:
            if self._closed:
                raise InvalidArgumentError("the producer is closed")
            while len(self._records) >= self.max_buffered_records:
                self._cond.wait()
            if not self._records:
                self._first_at = time.monotonic()
            self._records.append(data)
            self._futures.append(future)
            self._bytes += len(data) + 3
            n = len(self._records)
            if n == 1 or n >= self.max_batch_records or self._bytes >= self.max_batch_bytes:
                self._cond.notify_all()
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued now and wait until every batch is answered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._records or self._in_flight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("flush timed out")
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the background threads and close an owned client. Idempotent."""
        with self._cond:
            if self._closed:
                return
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._sender.join()
        self._pool.shutdown(wait=True)
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the sender thread -------------------------------------------------------------------

    def _take(self) -> tuple[list[bytes], list[Future[int]]] | None:
        """Wait until a batch is due and take it (None once closed and drained)."""
        with self._cond:
            while True:
                if self._records:
                    full = (
                        len(self._records) >= self.max_batch_records
                        or self._bytes >= self.max_batch_bytes
                    )
                    wait = self._first_at + self.linger_s - time.monotonic()
                    if full or wait <= 0 or self._flushing or self._closed:
                        break
                    self._cond.wait(wait)
                elif self._closed:
                    return None
                else:
                    self._cond.wait()
            n = self.max_batch_records
            records, self._records = self._records[:n], self._records[n:]
            futures, self._futures = self._futures[:n], self._futures[n:]
            size = sum(len(r) + 3 for r in records)
            if size > self.max_batch_bytes and len(records) > 1:
                # Trim to the byte limit (keeping at least one record).
                total, cut = 0, len(records)
                for i, r in enumerate(records):
                    total += len(r) + 3
                    if total > self.max_batch_bytes and i:
                        cut = i
                        break
                self._records[:0] = records[cut:]
                self._futures[:0] = futures[cut:]
                records, futures = records[:cut], futures[:cut]
                size = sum(len(r) + 3 for r in records)
            self._bytes -= size
            if self._records:
                self._first_at = time.monotonic()
            self._in_flight += 1
            self._cond.notify_all()
            return records, futures

    def _run(self) -> None:
        while True:
            self._slots.acquire()
            batch = self._take()
            if batch is None:
                self._slots.release()
                return
            self._pool.submit(self._send, *batch)

    def _send(self, records: list[bytes], futures: list[Future[int]]) -> None:
        try:
            base, _ = self.client.produce_encoded(records)
        except ReplogError as exc:
            for future in futures:
                future.set_exception(exc)
        except Exception as exc:  # never leave a future unresolved
            for future in futures:
                future.set_exception(ServerError(f"produce failed: {exc}"))
        else:
            for i, future in enumerate(futures):
                future.set_result(base + i)
        finally:
            self._slots.release()
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()
