"""Reading helpers of the Log: checked decoding and the raw stream of all segments."""

from __future__ import annotations

import io

from replog.errors import CorruptRecordError
from replog.storage.codec import decode_record, decode_records
from replog.storage.store import Store
from replog.v1.record_pb2 import Record

__all__ = ["LogReader", "decode_checked", "decode_checked_batch"]


def decode_checked(payload: bytes, offset: int) -> Record:
    """Decode a payload and pair-check that it is the record of ``offset``."""
    try:
        record = decode_record(payload)
    except Exception as exc:  # the CRC matched, so this is a bug or deliberate damage
        raise CorruptRecordError(offset, f"payload does not parse: {exc}") from exc
    if record.offset != offset:
        raise CorruptRecordError(offset, f"the stored record says offset {record.offset}")
    return record


def decode_checked_batch(payloads: list[bytes], first_offset: int) -> list[Record]:
    """Decode payloads of consecutive offsets from ``first_offset``, pair-checking them.

    The frames are consecutive in the store and each passed its CRC, so checking the
    first and the last record's offsets proves the whole run is the one asked for.
    """
    try:
        records = list(decode_records(payloads))
    except Exception:  # find the culprit one by one, for a precise error
        return [decode_checked(payload, first_offset + i) for i, payload in enumerate(payloads)]
    for i in (0, len(records) - 1) if records else ():
        if records[i].offset != first_offset + i:
            raise CorruptRecordError(
                first_offset + i, f"the stored record says offset {records[i].offset}"
            )
    return records


class LogReader(io.RawIOBase):
    """Reads the store files of a fixed list of segments one after another."""

    def __init__(self, spans: list[tuple[Store, int]]) -> None:
        self._spans = spans
        self._span = 0
        self._position = 0

    def readable(self) -> bool:
        """Always True: this stream is for reading."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the current store; return 0 after the last one."""
        while self._span < len(self._spans):
            store, size = self._spans[self._span]
            if self._position < size:
                want = min(len(buffer), size - self._position)
                data = store.read_at(want, self._position)
                buffer[: len(data)] = data
                self._position += len(data)
                return len(data)
            self._span += 1
            self._position = 0
        return 0
