"""Which partition a record goes to: Kafka's default partitioner, bit for bit.

A record with a key goes to ``to_positive(murmur2(key)) % partitions``, the partition the
Kafka Java producer picks for the same key bytes and partition count (and librdkafka with
``partitioner=murmur2_random``; librdkafka's own default hashes with CRC32 instead), so
keyed data written by either lands together. A record without a key
has no partition of its own; the ``StickyPartitioner`` keeps such records on one partition
for a whole batch and then moves on, as Kafka's producer does since KIP-480.

Nothing here does I/O, reads the clock or draws randomness of its own.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from replog.errors import InvalidArgumentError
from replog.v1.record_pb2 import Record

__all__ = [
    "batch_partition",
    "RandomSource",
    "StickyPartitioner",
    "murmur2",
    "partition_for_key",
    "to_positive",
]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
# One precompiled little-endian word reader per key length up to 256 bytes: a single C call
# yields every 4-byte word of a usual key.
_WORDS = tuple(struct.Struct(f"<{count}I") for count in range(65))


def murmur2(data: bytes) -> int:
    """Return Kafka's ``Utils.murmur2`` of ``data``: a signed 32-bit int, as Java returns it.

    Seed ``0x9747b28c``, ``m = 0x5bd1e995``, ``r = 24``; words are read little-endian. The
    empty byte string hashes too (to 275646681).
    """
    m = _M
    mask = _MASK
    length = len(data)
    h = (_SEED ^ length) & mask
    count = length >> 2
    words = _WORDS[count].unpack_from(data) if count < len(_WORDS) else _long_words(data, count)
    for word in words:
        k = (word * m) & mask
        # h*m ^ mix(k), masked once: masking distributes over XOR.
        h = ((h * m) ^ ((k ^ (k >> 24)) * m)) & mask
    tail = length & 3
    if tail:
        h = ((h ^ int.from_bytes(data[length - tail :], "little")) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - 0x1_0000_0000 if h & 0x8000_0000 else h


def _long_words(data: bytes, count: int) -> Iterator[int]:
    """The first ``count`` little-endian words of ``data``, without one tuple of them all."""
    for (word,) in struct.iter_unpack("<I", memoryview(data)[: count * 4]):
        yield word


def to_positive(n: int) -> int:
    """Return ``n & 0x7fffffff``, Kafka's ``Utils.toPositive`` (not ``abs``: it keeps the
    low 31 bits, so ``-1`` becomes ``2147483647``)."""
    return n & 0x7FFFFFFF


def partition_for_key(key: bytes, partitions: int) -> int:
    """Return the partition of a record with ``key`` in a topic of ``partitions`` partitions.

    This is Kafka's ``BuiltInPartitioner.partitionForKey``. As in Kafka, an empty key
    ``b""`` is a key like any other (every empty-keyed record goes to the partition of
    ``murmur2(b"")``); only a record with *no* key (``None``) is spread by the
    ``StickyPartitioner`` instead. The result changes when the partition count does.
    """
    if partitions < 1:
        raise InvalidArgumentError(f"a topic has at least 1 partition, not {partitions}")
    return to_positive(murmur2(key)) % partitions


class RandomSource(Protocol):
    """The randomness the sticky partitioner draws on (``random.Random`` satisfies it)."""

    def randrange(self, start: int, stop: int, /) -> int:
        """Return a random integer in ``[start, stop)``."""
        ...


class StickyPartitioner:
    """Chooses partitions for records without a key, one batch at a time, per topic.

    ``partition`` returns the same partition for a topic until ``next_batch`` is called for
    it; then it moves to another partition, chosen uniformly among the others (so it
    differs from the last one whenever the topic has more than one). A change in the
    partition count re-picks at once. This is what Kafka's ``StickyPartitionCache`` does
    (KIP-480); Kafka's later adaptive variant (KIP-794) also weighs broker queue lengths,
    which a caller can approximate by calling ``next_batch`` when a batch is sent.

    Records with a key never come here: they go to ``partition_for_key`` (an empty key is
    a key). Every random choice comes from ``rng``, so a seeded ``random.Random`` makes the
    choices reproducible. Not thread-safe: a caller shared between threads holds a lock.
    """

    def __init__(self, rng: RandomSource | None = None) -> None:
        self._rng: RandomSource = rng if rng is not None else random.Random()
        # topic -> (partition count the choice was made for, chosen partition)
        self._current: dict[str, tuple[int, int]] = {}

    def partition(self, topic: str, partitions: int) -> int:
        """Return the partition for the next key-less record of ``topic``, a topic of
        ``partitions`` partitions."""
        if partitions < 1:
            raise InvalidArgumentError(f"a topic has at least 1 partition, not {partitions}")
        current = self._current.get(topic)
        if current is not None and current[0] == partitions:
            return current[1]
        chosen = self._rng.randrange(0, partitions)
        self._current[topic] = (partitions, chosen)
        return chosen

    def next_batch(self, topic: str) -> None:
        """Move ``topic``'s key-less records to another partition: the batch is complete.

        A topic that has no partition chosen yet is left alone: its first ``partition``
        call chooses one.
        """
        current = self._current.get(topic)
        if current is None:
            return
        partitions, previous = current
        if partitions == 1:
            return
        # Uniform over the other partitions in one draw: no retry loop.
        chosen = self._rng.randrange(0, partitions - 1)
        if chosen >= previous:
            chosen += 1
        self._current[topic] = (partitions, chosen)


def batch_partition(
    values: Iterable[bytes | Record], partition_for: Callable[[bytes], int]
) -> int | None:
    """The one partition the keyed records among ``values`` map to (``partition_for`` maps a
    key), or None when none has a key (the caller then takes the sticky partition).

    A batch is appended atomically to one partition, so keys that map to two partitions are
    refused with InvalidArgumentError naming two such records. Bare values and records with
    an empty key are keyless.
    """
    chosen: tuple[int, int] | None = None  # (record index, partition)
    seen: set[bytes] = set()
    for i, value in enumerate(values):
        key = value.key if isinstance(value, Record) else b""
        if not key or key in seen:
            continue
        seen.add(key)
        partition = partition_for(key)
        if chosen is None:
            chosen = (i, partition)
        elif partition != chosen[1]:
            low, high = sorted((chosen[1], partition))
            raise InvalidArgumentError(
                f"records[{chosen[0]}] maps to partition {chosen[1]} and records[{i}] to "
                f"partition {partition}, so the keys map to partitions {low} and {high}; a "
                "batch is appended to one partition: send one batch per partition, or name "
                "the partition"
            )
    return None if chosen is None else chosen[1]
