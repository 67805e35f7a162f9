"""Reading helpers of the Log: checked decoding and the raw stream of all segments."""

from __future__ import annotations

import io

from replog.errors import CorruptRecordError
from replog.storage.codec import decode_record
from replog.storage.store import Store
from replog.v1.record_pb2 import Record

__all__ = ["LogReader", "decode_checked"]


def decode_checked(payload: bytes, offset: int) -> Record:
    """Decode a payload and pair-check that it is the record of ``offset``."""
    try:
        record = decode_record(payload)
    except Exception as exc:  # the CRC matched, so this is a bug or deliberate damage
        raise CorruptRecordError(offset, f"payload does not parse: {exc}") from exc
    if record.offset != offset:
        raise CorruptRecordError(offset, f"the stored record says offset {record.offset}")
    return record


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
