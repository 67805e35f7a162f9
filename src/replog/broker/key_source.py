"""Where a key index reads keys back: the partition's log, behind a small interface."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from replog.errors import OffsetOutOfRangeError
from replog.storage.codec import decode_records
from replog.storage.log import Log

__all__ = ["KeySource", "LogKeySource", "keys_of_payloads"]

_SCAN_RECORDS = 4096
_SCAN_BYTES = 4 << 20


def keys_of_payloads(payloads: Sequence[bytes]) -> list[bytes]:
    """The keys of serialized records (b"" for none), for ``KeyIndex.add_batch`` on the
    replication path, where a follower appends payloads it never decoded."""
    return [record.key for record in decode_records(payloads)]


class KeySource(Protocol):
    """The records a key index is derived from (the partition's log)."""

    @property
    def lowest_offset(self) -> int:
        """The first offset still held (retention removes the ones below)."""

    @property
    def next_offset(self) -> int:
        """The offset the next record will get."""

    def key_at(self, offset: int) -> bytes | None:
        """The key of the record at ``offset`` (b"" for none); None once retention removed it."""

    def keys(self, start: int, end: int) -> Iterator[tuple[int, list[bytes]]]:
        """The keys of the records in ``[start, end)``, in order, as (first offset, keys)
        batches."""


class LogKeySource:
    """A ``KeySource`` over a ``replog.storage.Log``."""

    __slots__ = ("_log",)

    def __init__(self, log: Log) -> None:
        self._log = log

    @property
    def lowest_offset(self) -> int:
        """The log's lowest offset."""
        return self._log.lowest_offset

    @property
    def next_offset(self) -> int:
        """The log's next offset."""
        return self._log.next_offset

    def key_at(self, offset: int) -> bytes | None:
        """The key at ``offset``, None below the log's lowest offset (retention removed it)."""
        if offset < self._log.lowest_offset:
            return None
        try:
            return self._log.read(offset).key
        except OffsetOutOfRangeError:
            if offset < self._log.lowest_offset:  # retention removed it meanwhile
                return None
            raise

    def keys(self, start: int, end: int) -> Iterator[tuple[int, list[bytes]]]:
        """The keys of ``[start, end)`` read in batches of up to 4,096 records."""
        offset = start
        while offset < end:
            payloads = self._log.read_payloads(
                offset, max_records=min(_SCAN_RECORDS, end - offset), max_bytes=_SCAN_BYTES
            )
            if not payloads:
                raise OffsetOutOfRangeError(offset, self._log.lowest_offset, self._log.next_offset)
            yield offset, keys_of_payloads(payloads)
            offset += len(payloads)
