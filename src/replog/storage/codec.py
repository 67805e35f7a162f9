"""Record <-> frame bytes. Pure: no I/O, no clock.

A frame is ``[u64 big-endian payload length][u32 big-endian CRC32C of payload][payload]``,
and the payload is a serialized ``replog.v1.Record``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import google_crc32c

from replog.errors import InvalidArgumentError, RecordTooLargeError
from replog.v1.record_pb2 import Header, Record

__all__ = [
    "FRAME_HEADER",
    "FRAME_HEADER_BYTES",
    "FrameScan",
    "RecordInput",
    "crc32c",
    "decode_record",
    "encode_frames",
    "encode_records",
    "make_record",
    "scan_frames",
]

FRAME_HEADER = struct.Struct(">QI")
FRAME_HEADER_BYTES = FRAME_HEADER.size
_U64 = 2**64

#: What an append accepts for one record: its value, or a Record whose value, key and
#: headers are used (its offset and timestamp are assigned by the log).
RecordInput = bytes | Record

crc32c = google_crc32c.value


def _check_bytes(name: str, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise InvalidArgumentError(f"{name} must be bytes, got {type(value).__name__}")


def make_record(
    value: object,
    *,
    key: object = None,
    headers: Iterable[tuple[str, bytes]] | dict[str, bytes] | None = None,
) -> Record:
    """Build a Record from user arguments, raising InvalidArgumentError for wrong types."""
    record = Record(value=_check_bytes("value", value))
    if key is not None:
        record.key = _check_bytes("key", key)
    if headers is not None:
        items = headers.items() if isinstance(headers, dict) else headers
        for item in items:
            if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
                raise InvalidArgumentError("headers must be (str, bytes) pairs")
            record.headers.append(Header(key=item[0], value=_check_bytes("header value", item[1])))
    return record


def encode_records(
    values: Sequence[object],
    first_offset: int,
    timestamp_ms: int,
    max_record_bytes: int,
    *,
    term: int = 0,
    record_type: int = 0,
) -> list[bytes]:
    """Serialize ``values`` (bytes or Records) as records with contiguous offsets.

    Raises InvalidArgumentError for a value that is neither, RecordTooLargeError for a
    record over ``max_record_bytes``; on error nothing is returned, so nothing is written.
    """
    if first_offset + len(values) > _U64:
        raise InvalidArgumentError("offsets would overflow 64 bits")
    # Reusing one message is ~2x faster than building one per value.
    scratch = Record(timestamp_ms=timestamp_ms, term=term, type=record_type)
    payloads: list[bytes] = []
    offset = first_offset
    for value in values:
        if isinstance(value, bytes):
            scratch.value = value
            scratch.offset = offset
            payload = scratch.SerializeToString()
        elif isinstance(value, Record):
            record = Record()
            record.CopyFrom(value)
            record.offset = offset
            record.timestamp_ms = timestamp_ms
            record.term = term
            record.type = record_type
            payload = record.SerializeToString()
        else:
            payload = encode_records(
                [_check_bytes("value", value)], offset, timestamp_ms, max_record_bytes
            )[0]
        if len(payload) > max_record_bytes:
            raise RecordTooLargeError(len(payload), max_record_bytes)
        payloads.append(payload)
        offset += 1
    return payloads


def encode_frames(payloads: Iterable[bytes]) -> tuple[bytes, list[int]]:
    """Frame every payload; return the concatenated frames and each frame's start within them."""
    pack = FRAME_HEADER.pack
    parts: list[bytes] = []
    starts: list[int] = []
    position = 0
    for payload in payloads:
        size = len(payload)
        parts.append(pack(size, crc32c(payload)))
        parts.append(payload)
        starts.append(position)
        position += FRAME_HEADER_BYTES + size
    return b"".join(parts), starts


def decode_record(payload: bytes) -> Record:
    """Parse a record payload (the CRC was checked by the caller)."""
    return Record.FromString(payload)


@dataclass(frozen=True, slots=True)
class FrameScan:
    """The result of scanning bytes for whole, CRC-valid frames.

    ``positions``/``payloads`` are the frames found, ``end`` the position just after the
    last one, and ``stop`` why the scan ended: ``"end"`` (the data ended on a frame
    boundary), ``"torn"`` (the data ends inside a frame) or ``"corrupt"`` (a frame whose
    length is impossible or whose CRC does not match).
    """

    positions: list[int]
    payloads: list[bytes]
    end: int
    stop: str


def scan_frames(data: bytes, base_position: int, max_payload_bytes: int) -> FrameScan:
    """Scan ``data`` (which starts at ``base_position`` in its file) frame by frame."""
    unpack_from = FRAME_HEADER.unpack_from
    positions: list[int] = []
    payloads: list[bytes] = []
    pos = 0
    limit = len(data)
    stop = "end"
    while pos < limit:
        if pos + FRAME_HEADER_BYTES > limit:
            stop = "torn"
            break
        size, crc = unpack_from(data, pos)
        # A record payload is never empty (timestamps are >= 1), so a zero length is the
        # zero-filled tail a crash can leave, not a frame: CRC32C of nothing is 0 too.
        if size == 0 or size > max_payload_bytes:
            stop = "corrupt"
            break
        start = pos + FRAME_HEADER_BYTES
        if start + size > limit:
            stop = "torn"
            break
        payload = data[start : start + size]
        if crc32c(payload) != crc:
            stop = "corrupt"
            break
        positions.append(base_position + pos)
        payloads.append(payload)
        pos = start + size
    return FrameScan(positions, payloads, base_position + pos, stop)
