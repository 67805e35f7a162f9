"""MemoryLog: the Log's interface over a list in memory, for tests and ephemeral use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from replog.errors import InvalidArgumentError, LogClosedError, OffsetOutOfRangeError
from replog.storage.codec import (
    RecordInput,
    decode_record,
    encode_records,
    make_record,
    serialize_placed_records,
)
from replog.storage.config import LogConfig, is_offset
from replog.v1.record_pb2 import Record

__all__ = ["MemoryLog"]


class MemoryLog:
    """An in-memory log with the same behaviour as ``Log`` (nothing survives ``close``).

    Records are kept serialized, exactly as ``Log`` stores them, so both return equal
    Records for the same appends. Task-safe for one writer and many readers.
    """

    def __init__(
        self,
        config: LogConfig | None = None,
        *,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.config = config or LogConfig()
        self._clock_ms = clock_ms
        self._lowest = self.config.initial_offset
        self._payloads: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def lowest_offset(self) -> int:
        """The first readable offset (equal to ``next_offset`` while empty)."""
        return self._lowest

    @property
    def next_offset(self) -> int:
        """The offset the next appended record gets."""
        return self._lowest + len(self._payloads)

    @property
    def highest_offset(self) -> int | None:
        """The last record's offset, or None while the log is empty."""
        return self.next_offset - 1 if self._payloads else None

    def append(
        self,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Iterable[tuple[str, bytes]] | dict[str, bytes] | None = None,
    ) -> int:
        """Append one record; return its offset."""
        if key is None and headers is None and type(value) is bytes:
            return self.append_batch((value,))
        return self.append_batch((make_record(value, key=key, headers=headers),))

    def append_batch(self, values: Sequence[RecordInput]) -> int:
        """Append records at contiguous offsets; return the first offset."""
        if isinstance(values, bytes | bytearray | str) or not isinstance(values, Sequence):
            raise InvalidArgumentError("append_batch takes a sequence of values")
        if not values:
            raise InvalidArgumentError("append_batch needs at least one value")
        with self._lock:
            self._check_open()
            base = self.next_offset
            timestamp_ms = max(1, self._clock_ms())
            self._payloads += encode_records(
                values, base, timestamp_ms, self.config.max_record_bytes
            )
            return base

    def append_records(self, records: Sequence[Record]) -> int:
        """Append records whose offsets are already set; return the first offset."""
        with self._lock:
            self._check_open()
            base = self.next_offset
            payloads = serialize_placed_records(records, base, self.config.max_record_bytes)
            self._payloads += payloads
            return base

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the log is closed")

    def _check_offset(self, offset: int) -> int:
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise InvalidArgumentError(f"offset must be an integer, got {type(offset).__name__}")
        self._check_open()
        if not self._lowest <= offset < self.next_offset:
            raise OffsetOutOfRangeError(offset, self._lowest, self.next_offset)
        return offset - self._lowest

    def read(self, offset: int) -> Record:
        """Return the record at ``offset``."""
        return decode_record(self._payloads[self._check_offset(offset)])

    def read_payloads(
        self, offset: int, *, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[bytes]:
        """Return serialized records from ``offset`` (empty at ``next_offset``)."""
        if not isinstance(max_records, int) or max_records < 1 or max_bytes < 1:
            raise InvalidArgumentError("max_records and max_bytes must be positive")
        if is_offset(offset) and offset == self.next_offset and not self._closed:
            return []
        start = self._check_offset(offset)
        out = [self._payloads[start]]
        size = len(out[0]) + 12
        for payload in self._payloads[start + 1 : start + max_records]:
            size += len(payload) + 12
            if size > max_bytes:
                break
            out.append(payload)
        return out

    def read_batch(
        self, offset: int, *, max_records: int = 1000, max_bytes: int = 1 << 20
    ) -> list[Record]:
        """Return decoded records from ``offset`` (empty at ``next_offset``)."""
        payloads = self.read_payloads(offset, max_records=max_records, max_bytes=max_bytes)
        return [decode_record(payload) for payload in payloads]

    def truncate(self, lowest: int) -> None:
        """Drop every record below ``lowest`` (record-exact, unlike Log's whole segments)."""
        with self._lock:
            self._check_open()
            # A bool is an int to isinstance, but truncate(True) is a caller's bug.
            if not is_offset(lowest) or not 0 <= lowest <= self.next_offset:
                raise InvalidArgumentError(
                    f"truncate needs an offset between 0 and {self.next_offset}, got {lowest!r}"
                )
            drop = max(0, lowest - self._lowest)
            del self._payloads[:drop]
            self._lowest += drop

    def truncate_after(self, offset: int) -> None:
        """Drop every record after ``offset``."""
        with self._lock:
            self._check_open()
            if not is_offset(offset) or not self._lowest - 1 <= offset < self.next_offset:
                raise InvalidArgumentError(
                    f"truncate_after needs an offset between {self._lowest - 1} and "
                    f"{self.next_offset - 1}, got {offset!r}"
                )
            del self._payloads[offset + 1 - self._lowest :]

    def sync(self) -> None:
        """Nothing to make durable; present for interface parity with Log."""
        self._check_open()

    def close(self) -> None:
        """Close the log; its records are gone."""
        self._closed = True

    def __enter__(self) -> MemoryLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
