"""Kafka's ConsumerProtocol bytes (Subscription, Assignment v0-v3): what a classic consumer
sends is decoded into topics and partitions; anything else decodes to None, never raises."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from replog.broker.assignors import TopicPartition
from replog.broker.consumer_protocol import (
    decode_assignment,
    decode_subscription_topics,
    encode_assignment,
    encode_subscription,
)


def test_an_assignment_written_field_by_field_as_kafka_python_does_decodes_to_its_partitions() -> (
    None
):
    # version 0; one topic "orders" with partitions 2 and 0; user data null (-1).
    data = struct.pack(">hih6si2ii", 0, 1, 6, b"orders", 2, 2, 0, -1)
    assert decode_assignment(data) == (TopicPartition("orders", 0), TopicPartition("orders", 2))


def test_a_v1_subscription_with_owned_partitions_decodes_to_its_topics() -> None:
    topics = struct.pack(">hih1sh1s", 1, 2, 1, b"b", 1, b"a")
    owned = struct.pack(">iih1sii", 0, 1, 1, b"a", 1, 3)  # user data b"", then owned a-3
    assert decode_subscription_topics(topics + owned) == ("a", "b")


def test_an_empty_assignment_gives_no_partitions_and_garbage_gives_none() -> None:
    assert decode_assignment(b"") == ()
    assert decode_assignment(b"\x00") is None
    assert decode_assignment(struct.pack(">hi", 0, 1_000_000)) is None
    assert decode_subscription_topics(b"\xff\xff") is None


@given(
    st.sets(st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 1000)), max_size=20),
    st.integers(0, 3),
    st.binary(max_size=16),
)
def test_every_assignment_version_round_trips(
    pairs: set[tuple[str, int]], version: int, user_data: bytes
) -> None:
    partitions = {TopicPartition(t, p) for t, p in pairs}
    encoded = encode_assignment(partitions, version, user_data)
    assert decode_assignment(encoded) == tuple(sorted(partitions))


@given(st.sets(st.text(min_size=1, max_size=8), max_size=10), st.integers(0, 3))
def test_every_subscription_version_round_trips(topics: set[str], version: int) -> None:
    assert decode_subscription_topics(encode_subscription(topics, version)) == tuple(sorted(topics))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    decode_assignment(data)
    decode_subscription_topics(data)
