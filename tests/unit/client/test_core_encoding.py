"""Records and produce requests encoded by hand are the bytes protobuf would produce."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.client.core import (
    Offset,
    consume_batch_request,
    consume_request,
    encode_batch_request,
    encode_produce_request,
    encode_record,
)
from replog.errors import InvalidArgumentError
from replog.v1.log_pb2 import ProduceBatchRequest, ProduceRequest
from replog.v1.record_pb2 import Record

blobs = st.binary(max_size=200) | st.sampled_from([b"", b"k" * 300])


@given(blobs, st.none() | blobs)
def test_a_value_and_key_encode_as_protobuf_does(value: bytes, key: bytes | None) -> None:
    expected = Record(value=value, key=key or b"").SerializeToString()
    assert encode_record(value, key) == expected


@given(blobs, st.dictionaries(st.text(max_size=3), st.binary(max_size=3), max_size=3))
def test_headers_are_kept(value: bytes, headers: dict[str, bytes]) -> None:
    record = Record.FromString(encode_record(value, b"k", headers))
    assert record.value == value and record.key == b"k"
    assert [(h.key, h.value) for h in record.headers] == list(headers.items())


@given(st.lists(st.tuples(blobs, st.none() | blobs), min_size=1, max_size=5))
def test_a_batch_request_is_the_protobuf_message(pairs: list[tuple[bytes, bytes | None]]) -> None:
    records = [Record(value=v, key=k or b"") for v, k in pairs]
    encoded = encode_batch_request([encode_record(v, k) for v, k in pairs])
    assert encoded == ProduceBatchRequest(records=records).SerializeToString()


topics = st.sampled_from(["", "default", "orders", "ü-topic", "t" * 200])
partitions = st.none() | st.integers(0, 2**32 - 1)


@given(st.lists(blobs, min_size=1, max_size=3), topics, partitions)
def test_a_batch_request_to_a_topic_and_partition_is_the_protobuf_message(
    values: list[bytes], topic: str, partition: int | None
) -> None:
    encoded = encode_batch_request([encode_record(v) for v in values], topic, partition)
    expected = ProduceBatchRequest(
        records=[Record(value=v) for v in values], topic=topic, partition=partition
    )
    assert encoded == expected.SerializeToString()
    parsed = ProduceBatchRequest.FromString(encoded)
    assert parsed.HasField("partition") == (partition is not None)


@given(blobs, topics, partitions)
def test_a_produce_request_to_a_topic_and_partition_is_the_protobuf_message(
    value: bytes, topic: str, partition: int | None
) -> None:
    encoded = encode_produce_request(encode_record(value), topic, partition)
    expected = ProduceRequest(record=Record(value=value), topic=topic, partition=partition)
    assert encoded == expected.SerializeToString()


@pytest.mark.parametrize("partition", [-1, 2**32, True, "1", 1.0])
def test_a_partition_that_is_not_a_u32_is_refused_before_sending(partition: object) -> None:
    with pytest.raises(InvalidArgumentError, match="partition"):
        encode_produce_request(b"", "t", partition)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="partition"):
        consume_batch_request(0, 1, 0, 0, 0, "t", partition)  # type: ignore[arg-type]


def test_a_topic_that_is_not_a_str_is_refused_before_sending() -> None:
    with pytest.raises(InvalidArgumentError, match="topic"):
        encode_batch_request([b""], b"orders")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="topic"):
        consume_request(0, 0, None)  # type: ignore[arg-type]


def test_consume_requests_carry_their_topic_and_partition() -> None:
    request = consume_batch_request(3, 10, 0, 0, 0, "orders", 7)
    assert (request.topic, request.partition, request.offset) == ("orders", 7, 3)
    assert (consume_request(1, 0, "x", 2).topic, consume_request(1, 0, "x", 2).partition) == (
        "x",
        2,
    )


def test_an_offset_is_an_int_that_knows_its_partition() -> None:
    offset = Offset(41, 3)
    assert offset == 41 and offset + 1 == 42 and f"{offset}" == "41"
    assert offset.partition == 3 and Offset(5).partition == 0
