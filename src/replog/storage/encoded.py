"""Records prepared for an append without a protobuf message each: their values and the
encoded bytes of their keys and headers, joined with the offset and timestamp the log
assigns into exactly the bytes ``Record.SerializeToString`` gives. Pure.

An edge that already walks its records one by one (the Kafka edge decoding a record batch)
builds an :class:`EncodedRecords` in that pass, and the log's ``encode_records`` turns it
into stored payloads with a few joins per record instead of a message to fill, copy and
serialize. It is a ``Sequence[Record]`` too, materialising a record when one is asked for,
so code that takes records of any kind takes it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import overload

from replog.errors import InvalidArgumentError, RecordTooLargeError
from replog.v1.record_pb2 import Record

__all__ = ["EncodedRecords", "key_and_headers", "offset_fields", "varint"]

# Record's fields as protobuf writes them (tag = field number << 3 | wire type), in the
# order it writes them: field number order.
_VALUE = 0x0A  # 1 bytes
_OFFSET = 0x10  # 2 varint
_TERM = b"\x18"  # 3 varint
_TYPE = b"\x20"  # 4 varint
_TIMESTAMP = b"\x28"  # 5 varint
_KEY = b"\x32"  # 6 bytes
_HEADER = b"\x3a"  # 7 message Header {1: key string, 2: value bytes}
_HEADER_KEY = b"\x0a"
_HEADER_VALUE = b"\x12"
_PRODUCER_ID = b"\x48"  # 9, then producer_epoch 10, sequence 11, batch_records 12
_PRODUCER_EPOCH = b"\x50"
_SEQUENCE = b"\x58"
_BATCH_RECORDS = b"\x60"
_U64 = 2**64
_PREFIX_CACHE_LIMIT = 1 << 14
_VALUE_PREFIXES: dict[int, bytes] = {0: b""}  # proto3 leaves an empty value out
_SMALL_OFFSETS = [b""] + [bytes((_OFFSET, n)) for n in range(1, 128)]  # offset 0: left out
_LOW_OFFSETS = [bytes((_OFFSET, n | 0x80)) for n in range(128)]


def varint(value: int) -> bytes:
    """``value`` (0 <= value < 2^64) as a protobuf varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_prefixed(tag: bytes, data: bytes) -> bytes:
    return tag + varint(len(data)) + data


def key_and_headers(key: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A Record's key and headers fields as protobuf writes them (each header's name is
    UTF-8 bytes); b"" for no key and no headers."""
    parts = [_length_prefixed(_KEY, key)] if key else []
    for name, value in headers:
        header = (_length_prefixed(_HEADER_KEY, name) if name else b"") + (
            _length_prefixed(_HEADER_VALUE, value) if value else b""
        )
        parts.append(_length_prefixed(_HEADER, header))
    return b"".join(parts)


def _value_prefix(size: int) -> bytes:
    prefix = _VALUE_PREFIXES.get(size)
    if prefix is None:
        prefix = bytes((_VALUE,)) + varint(size)
        if size < _PREFIX_CACHE_LIMIT:
            _VALUE_PREFIXES[size] = prefix
    return prefix


def offset_fields(first: int, count: int) -> list[bytes]:
    """The offset field of each of ``count`` records numbered from ``first``."""
    end = first + count
    out = _SMALL_OFFSETS[first : min(end, 128)] if first < 128 else []
    offset = max(first, 128)
    while offset < end:  # runs of up to 128 offsets share all but their first byte
        high = varint(offset >> 7)
        run_end = min(end, (offset | 0x7F) + 1)
        out += [low + high for low in _LOW_OFFSETS[offset & 0x7F : ((run_end - 1) & 0x7F) + 1]]
        offset = run_end
    return out


class EncodedRecords(Sequence[Record]):
    """Records to append, each a value and the encoding of its key and headers
    (``key_and_headers``); ``stamped`` adds an idempotent producer's fields to the first.

    ``tails`` None: no record has a key or headers. ``keys`` (each record's key, b"" for
    none) is needed only when a record has a key."""

    __slots__ = ("_keys", "_tails", "_values")

    def __init__(
        self, values: list[bytes], tails: list[bytes] | None = None, keys: list[bytes] | None = None
    ) -> None:
        self._values = values
        self._tails = tails
        self._keys = keys

    @classmethod
    def concat(cls, parts: Sequence[EncodedRecords]) -> EncodedRecords:
        """The records of ``parts``, in order (one append of many requests)."""
        if len(parts) == 1:
            return parts[0]
        values: list[bytes] = []
        for part in parts:
            values += part._values
        tails = keys = None
        if any(part._tails is not None for part in parts):
            tails = []
            for part in parts:
                tails += part._tails if part._tails is not None else [b""] * len(part)
        if any(part._keys is not None for part in parts):
            keys = []
            for part in parts:
                keys += part.keys()
        return cls(values, tails, keys)

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> EncodedRecords:
        """The value, key and headers of ``records`` (the rest of their fields dropped)."""
        tails = [
            key_and_headers(r.key, [(h.key.encode(), h.value) for h in r.headers]) for r in records
        ]
        return cls([r.value for r in records], tails, [r.key for r in records])

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        value = self._values[index]  # IndexError out of range
        tail = b"" if self._tails is None else self._tails[index]
        return Record.FromString(_value_prefix(len(value)) + value + tail)

    def keys(self) -> list[bytes]:
        """Each record's key (b"" for none)."""
        return self._keys if self._keys is not None else [b""] * len(self._values)

    def byte_size(self) -> int:
        """About the bytes the records take stored (their values, keys and headers)."""
        tails = 0 if self._tails is None else sum(map(len, self._tails))
        return sum(map(len, self._values)) + tails

    def stamped(self, producer_id: int, epoch: int, sequence: int) -> EncodedRecords:
        """These records, the first carrying its batch's producer fields (as
        ``broker.producer_records.stamp`` sets them on a Record)."""
        fields = [(_PRODUCER_ID, producer_id), (_PRODUCER_EPOCH, epoch), (_SEQUENCE, sequence)]
        fields.append((_BATCH_RECORDS, len(self)))
        extra = b"".join(tag + varint(value) for tag, value in fields if value)
        tails = list(self._tails) if self._tails is not None else [b""] * len(self)
        if tails:
            tails[0] += extra
        return EncodedRecords(self._values, tails, self._keys)

    def payloads(
        self,
        first_offset: int,
        timestamp_ms: int,
        max_record_bytes: int,
        *,
        term: int = 0,
        record_type: int = 0,
    ) -> list[bytes]:
        """Each record serialized at its offset (from ``first_offset``) with the log's
        fields: byte for byte what ``encode_records`` gives for the same Records.

        Raises InvalidArgumentError when the offsets would pass 2^64, RecordTooLargeError
        for a record over ``max_record_bytes`` (nothing is returned)."""
        values = self._values
        if not values:
            return []
        if first_offset + len(values) > _U64:
            raise InvalidArgumentError("offsets would overflow 64 bits")
        middle = b"".join(
            tag + varint(value)
            for tag, value in ((_TERM, term), (_TYPE, record_type), (_TIMESTAMP, timestamp_ms))
            if value
        )
        prefix = _value_prefix
        join = b"".join
        offsets = offset_fields(first_offset, len(values))
        tails = self._tails
        if tails is None:
            payloads = [
                join((prefix(len(v)), v, o, middle)) for v, o in zip(values, offsets, strict=True)
            ]
        else:
            payloads = [
                join((prefix(len(v)), v, o, middle, t))
                for v, o, t in zip(values, offsets, tails, strict=True)
            ]
        largest = max(map(len, payloads))
        if largest > max_record_bytes:
            raise RecordTooLargeError(largest, max_record_bytes)
        return payloads
