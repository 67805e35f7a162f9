"""Kafka's partitioner for keys, as the server applies it (``replog.broker.partitioner``).

The client has its own copy because it imports only the wire contract (``replog.broker``
brings the storage engine with it); ``tests/unit/client`` checks the two agree.
"""

from __future__ import annotations

import struct

__all__ = ["murmur2", "partition_for_key"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` of ``data``: a signed 32-bit int, as Java returns it."""
    m, mask = _M, _MASK
    length = len(data)
    h = (_SEED ^ length) & mask
    count = length >> 2
    for (word,) in struct.iter_unpack("<I", memoryview(data)[: count * 4]):
        k = (word * m) & mask
        h = ((h * m) ^ ((k ^ (k >> 24)) * m)) & mask
    tail = length & 3
    if tail:
        h = ((h ^ int.from_bytes(data[length - tail :], "little")) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - 0x1_0000_0000 if h & 0x8000_0000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of a record with ``key`` in a topic of ``partitions`` (at least 1)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
