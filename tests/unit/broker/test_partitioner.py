"""Kafka's default partitioner: murmur2 bit for bit, key placement and the sticky partitioner."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.broker.partitioner import StickyPartitioner, murmur2, partition_for_key, to_positive
from replog.errors import InvalidArgumentError

# org.apache.kafka.common.utils.UtilsTest.testMurmur2 (Java ints).
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

_UNALIGNED = b"PreAmbleWillBeRemoved,ThePrePartThatIs"
# librdkafka src/rdmurmur2.c unittest_murmur2 (its "Java murmur2 results", as uint32 bits).
LIBRDKAFKA_VECTORS = [
    (b"kafka", 0xD067CF64),
    (b"giberish123456789", 0x8F552B0C),
    (b"1234", 0x9FC97B14),
    (b"234", 0xE7C009CA),
    (b"34", 0x873930DA),
    (b"4", 0x5A4B5CA1),
    (_UNALIGNED, 0x78424F1C),
    (_UNALIGNED[1:], 0x4A62B377),
    (_UNALIGNED[2:], 0xE0E4E09E),
    (_UNALIGNED[3:], 0x62B8B43F),
    (b"", 0x106E08D9),
]


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _java_murmur2(data: bytes) -> int:
    """A line-by-line transcription of the Java, with Java's int overflow and >>>."""
    length = len(data)
    m, r = _int32(0x5BD1E995), 24
    h = _int32(_int32(0x9747B28C) ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = _int32(
            data[i4] + (data[i4 + 1] << 8) + (data[i4 + 2] << 16) + _int32(data[i4 + 3] << 24)
        )
        k = _int32(k * m)
        k = _int32(k ^ ((k & 0xFFFFFFFF) >> r))
        k = _int32(k * m)
        h = _int32(h * m)
        h = _int32(h ^ k)
    rest, base = length % 4, length & ~3
    if rest >= 3:
        h = _int32(h ^ (data[base + 2] << 16))
    if rest >= 2:
        h = _int32(h ^ (data[base + 1] << 8))
    if rest >= 1:
        h = _int32(h ^ data[base])
        h = _int32(h * m)
    h = _int32(h ^ ((h & 0xFFFFFFFF) >> 13))
    h = _int32(h * m)
    return _int32(h ^ ((h & 0xFFFFFFFF) >> 15))


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
def test_murmur2_returns_what_kafkas_java_client_returns(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@pytest.mark.parametrize(("data", "bits"), LIBRDKAFKA_VECTORS)
def test_murmur2_agrees_with_librdkafka_on_aligned_unaligned_and_empty_keys(
    data: bytes, bits: int
) -> None:
    assert murmur2(data) == _int32(bits)


@given(st.binary(max_size=600))
def test_murmur2_matches_a_literal_transcription_of_the_java(data: bytes) -> None:
    assert murmur2(data) == _java_murmur2(data)


@given(st.binary(min_size=257, max_size=2000))
def test_murmur2_of_keys_longer_than_the_word_reader_cache_matches_too(data: bytes) -> None:
    assert murmur2(data) == _java_murmur2(data)


def test_murmur2_reads_bytearrays_and_memoryviews_like_bytes() -> None:
    for data, expected in KAFKA_VECTORS:
        assert murmur2(bytearray(data)) == expected
        assert murmur2(memoryview(b"xx" + data)[2:]) == expected


def test_to_positive_keeps_the_low_31_bits_as_kafka_does() -> None:
    assert to_positive(0) == 0
    assert to_positive(5) == 5
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-(1 << 31)) == 0
    assert to_positive(-790332482) == 1357151166


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
@pytest.mark.parametrize("partitions", [1, 2, 3, 7, 12, 100])
def test_a_key_goes_to_the_partition_kafka_puts_it_on(
    data: bytes, expected: int, partitions: int
) -> None:
    assert partition_for_key(data, partitions) == (expected & 0x7FFFFFFF) % partitions


def test_foobar_goes_to_partition_6_of_10() -> None:
    assert partition_for_key(b"foobar", 10) == 6


def test_an_empty_key_is_a_key_and_hashes_like_kafkas_empty_byte_array() -> None:
    assert partition_for_key(b"", 7) == 0x106E08D9 % 7
    assert {partition_for_key(b"", 12) for _ in range(5)} == {0x106E08D9 % 12}


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=10_000))
def test_a_keyed_partition_is_always_in_range(key: bytes, partitions: int) -> None:
    assert 0 <= partition_for_key(key, partitions) < partitions


@pytest.mark.parametrize("partitions", [0, -1])
def test_a_key_cannot_be_placed_in_a_topic_without_partitions(partitions: int) -> None:
    with pytest.raises(InvalidArgumentError, match="at least 1 partition"):
        partition_for_key(b"k", partitions)


class _ScriptedRng:
    """Returns the scripted draws in order and records each range asked for."""

    def __init__(self, *draws: int) -> None:
        self.draws = list(draws)
        self.asked: list[tuple[int, int]] = []

    def randrange(self, start: int, stop: int, /) -> int:
        self.asked.append((start, stop))
        return self.draws.pop(0)


def test_key_less_records_stay_on_one_partition_until_the_batch_is_done() -> None:
    sticky = StickyPartitioner(random.Random(7))
    first = sticky.partition("t", 8)
    assert all(sticky.partition("t", 8) == first for _ in range(100))


def test_the_next_batch_goes_to_a_different_partition() -> None:
    sticky = StickyPartitioner(random.Random(1))
    current = sticky.partition("t", 3)
    for _ in range(200):
        sticky.next_batch("t")
        following = sticky.partition("t", 3)
        assert following != current
        current = following


@pytest.mark.parametrize(("draw", "expected"), [(0, 0), (1, 1), (2, 3), (3, 4)])
def test_the_next_partition_is_drawn_uniformly_among_the_others(draw: int, expected: int) -> None:
    rng = _ScriptedRng(2, draw)
    sticky = StickyPartitioner(rng)
    assert sticky.partition("t", 5) == 2
    sticky.next_batch("t")
    assert sticky.partition("t", 5) == expected
    assert rng.asked == [(0, 5), (0, 4)]  # one draw among the 4 others, no retrying


def test_many_batches_use_every_partition_about_evenly() -> None:
    sticky = StickyPartitioner(random.Random(42))
    used: Counter[int] = Counter()
    for _ in range(6000):
        used[sticky.partition("t", 6)] += 1
        sticky.next_batch("t")
    assert set(used) == set(range(6))
    assert min(used.values()) > 800  # 1000 expected each


def test_a_one_partition_topic_keeps_partition_0_across_batches() -> None:
    sticky = StickyPartitioner(_ScriptedRng(0))
    assert sticky.partition("t", 1) == 0
    sticky.next_batch("t")
    assert sticky.partition("t", 1) == 0


def test_a_change_in_the_partition_count_picks_again() -> None:
    rng = _ScriptedRng(9, 1)
    sticky = StickyPartitioner(rng)
    assert sticky.partition("t", 10) == 9
    assert sticky.partition("t", 2) == 1  # 9 no longer exists
    assert rng.asked == [(0, 10), (0, 2)]
    assert sticky.partition("t", 2) == 1


def test_each_topic_sticks_on_its_own() -> None:
    rng = _ScriptedRng(0, 3, 2)
    sticky = StickyPartitioner(rng)
    assert sticky.partition("a", 4) == 0
    assert sticky.partition("b", 4) == 3
    sticky.next_batch("a")
    assert sticky.partition("a", 4) == 3  # draw 2 among {1, 2, 3}
    assert sticky.partition("b", 4) == 3


def test_next_batch_of_a_topic_never_partitioned_does_nothing() -> None:
    rng = _ScriptedRng(1)
    sticky = StickyPartitioner(rng)
    sticky.next_batch("t")
    assert rng.asked == []
    assert sticky.partition("t", 3) == 1


def test_the_same_seed_chooses_the_same_partitions() -> None:
    def run(seed: int) -> list[int]:
        sticky = StickyPartitioner(random.Random(seed))
        out = []
        for _ in range(50):
            out.append(sticky.partition("t", 7))
            sticky.next_batch("t")
        return out

    assert run(3) == run(3)


def test_a_partitioner_without_an_rng_draws_its_own() -> None:
    assert 0 <= StickyPartitioner().partition("t", 4) < 4


@pytest.mark.parametrize("partitions", [0, -3])
def test_key_less_records_cannot_go_to_a_topic_without_partitions(partitions: int) -> None:
    with pytest.raises(InvalidArgumentError, match="at least 1 partition"):
        StickyPartitioner().partition("t", partitions)


def test_batch_partition_is_the_one_partition_of_the_keyed_records() -> None:
    from replog.broker.partitioner import batch_partition
    from replog.v1.record_pb2 import Record

    def by_first_byte(key: bytes) -> int:
        return key[0] % 4

    assert batch_partition([b"bare", Record(value=b"v")], by_first_byte) is None
    keyed = [b"bare", Record(value=b"v", key=b"\x01a"), Record(value=b"v", key=b"\x05b")]
    assert batch_partition(keyed, by_first_byte) == 1
    mixed = [b"bare", Record(value=b"v", key=b"\x01"), Record(value=b"v", key=b"\x02")]
    with pytest.raises(InvalidArgumentError, match=r"records\[1\] .* records\[2\]"):
        batch_partition(mixed, by_first_byte)
