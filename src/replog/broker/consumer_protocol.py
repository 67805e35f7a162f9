"""Kafka's ConsumerProtocol: the bytes classic-group members of protocol type "consumer"
exchange through the coordinator (Subscription in JoinGroup's metadata, Assignment in
SyncGroup), versions 0-3. Pure. Decoding never raises: bytes that do not parse give None,
so the coordinator can show what it understands and nothing else.

Subscription: int16 version, [string topic], bytes user_data (nullable); v1+ owned
partitions [string topic, [int32]]; v2+ int32 generation; v3+ nullable string rack.
Assignment: int16 version, [string topic, [int32 partition]], bytes user_data (nullable);
versions 1-3 add nothing. A version above 3 is read as 3 reads it (Kafka's rule: newer
versions only append fields).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from replog.broker.assignors import TopicPartition

__all__ = [
    "decode_assignment",
    "decode_subscription_topics",
    "encode_assignment",
    "encode_subscription",
]


class _TruncatedError(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self._at + size > len(self._data):
            raise _TruncatedError
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def int16(self) -> int:
        value: int = struct.unpack(">h", self.take(2))[0]
        return value

    def int32(self) -> int:
        value: int = struct.unpack(">i", self.take(4))[0]
        return value

    def string(self) -> str:
        return self.take(self.int16()).decode()

    def count(self) -> int:
        count = self.int32()
        if count > len(self._data):  # more entries than bytes: garbage
            raise _TruncatedError
        return max(count, 0)


def decode_subscription_topics(data: bytes) -> tuple[str, ...] | None:
    """The topics a Subscription names (sorted), or None when it does not parse."""
    try:
        reader = _Reader(data)
        if reader.int16() < 0:
            return None
        return tuple(sorted({reader.string() for _ in range(reader.count())}))
    except (_TruncatedError, UnicodeDecodeError):
        return None


def decode_assignment(data: bytes) -> tuple[TopicPartition, ...] | None:
    """The partitions an Assignment gives (sorted; b"" is no partitions), or None when it
    does not parse."""
    if not data:
        return ()
    try:
        reader = _Reader(data)
        if reader.int16() < 0:
            return None
        out: set[TopicPartition] = set()
        for _ in range(reader.count()):
            topic = reader.string()
            out.update(TopicPartition(topic, reader.int32()) for _ in range(reader.count()))
        return tuple(sorted(out))
    except (_TruncatedError, UnicodeDecodeError):
        return None


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _partitions(partitions: Iterable[TopicPartition]) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    out = [struct.pack(">i", len(by_topic))]
    for topic, numbers in by_topic.items():
        out.append(_string(topic) + struct.pack(f">i{len(numbers)}i", len(numbers), *numbers))
    return b"".join(out)


def encode_subscription(topics: Iterable[str], version: int = 0, user_data: bytes = b"") -> bytes:
    """A Subscription (v0-v3; v1+ with no owned partitions, v2+ generation -1, v3+ no rack)."""
    names = sorted(topics)
    out = [struct.pack(">hi", version, len(names)), *map(_string, names)]
    out.append(struct.pack(">i", len(user_data)) + user_data)
    if version >= 1:
        out.append(struct.pack(">i", 0))
    if version >= 2:
        out.append(struct.pack(">i", -1))
    if version >= 3:
        out.append(struct.pack(">h", -1))
    return b"".join(out)


def encode_assignment(
    partitions: Iterable[TopicPartition], version: int = 0, user_data: bytes = b""
) -> bytes:
    """An Assignment (v0-v3)."""
    body = _partitions(partitions)
    return struct.pack(">h", version) + body + struct.pack(">i", len(user_data)) + user_data
