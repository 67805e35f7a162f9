"""Produce requests are read by length when they carry bare values, and in full otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.api import wire
from replog.api.backend import Conditions
from replog.api.wire import produce_batch_request, produce_batch_values, set_conditions
from replog.client.core import encode_batch_request, encode_record
from replog.client.producer import _value_head
from replog.errors import InvalidArgumentError
from replog.v1.log_pb2 import ProduceBatchRequest
from replog.v1.record_pb2 import Header, Record

values = st.binary(max_size=300) | st.sampled_from([b"", b"x" * 127, b"y" * 20_000])
records = st.builds(
    Record,
    value=values,
    key=st.binary(max_size=3),
    headers=st.lists(st.builds(Header, key=st.text(max_size=2), value=st.binary(max_size=2))),
    offset=st.sampled_from([0, 0, 0, 5]),
)


def reference(request: bytes) -> list[bytes | Record]:
    parsed = ProduceBatchRequest.FromString(request).records
    return [r.value if not r.key and not len(r.headers) else r for r in parsed]


@given(st.lists(values, min_size=1, max_size=20))
def test_a_batch_of_bare_values_gives_the_values(batch: list[bytes]) -> None:
    request = encode_batch_request([encode_record(v) for v in batch])
    assert produce_batch_values(request) == batch


@given(st.lists(records | values, min_size=1, max_size=10))
def test_any_batch_gives_what_a_full_parse_gives(batch: list[Record | bytes]) -> None:
    request = ProduceBatchRequest(
        records=[r if isinstance(r, Record) else Record(value=r) for r in batch]
    ).SerializeToString()
    assert produce_batch_values(request) == reference(request)


def test_a_record_with_only_a_key_is_not_taken_for_a_bare_value() -> None:
    request = ProduceBatchRequest(records=[Record(key=b"k"), Record(value=b"v")])
    values_ = produce_batch_values(request.SerializeToString())
    assert isinstance(values_[0], Record) and values_[0].key == b"k" and values_[1] == b"v"


def test_an_explicit_empty_value_field_is_read_in_full() -> None:
    request = b"\x0a\x02\x0a\x00"  # a Record whose empty value was written anyway
    assert produce_batch_values(request) == [b""]


@pytest.mark.parametrize("request_bytes", [b"", b"\x0a\x05\x0a"], ids=["empty", "torn"])
def test_an_empty_or_malformed_batch_is_an_invalid_argument(request_bytes: bytes) -> None:
    with pytest.raises(InvalidArgumentError):
        produce_batch_values(request_bytes)


@given(values)
def test_the_producer_frames_a_bare_value_as_protobuf_does(value: bytes) -> None:
    expected = ProduceBatchRequest(records=[Record(value=value)]).SerializeToString()
    assert _value_head(len(value)) + value == expected


tricky = st.text(alphabet="\n:\x8a\xbax", max_size=40).map(lambda t: t.encode("latin-1"))
dense_records = st.builds(
    Record,
    value=values | tricky,
    key=tricky,
    headers=st.lists(st.builds(Header, key=st.just(":"), value=tricky), max_size=4),
)


@given(st.lists(dense_records | tricky, min_size=1, max_size=12), st.integers(1, 8))
def test_a_batch_over_the_limits_is_refused_and_any_other_parses_as_before(
    batch: list[Record | bytes], limit: int
) -> None:
    request = ProduceBatchRequest(
        records=[r if isinstance(r, Record) else Record(value=r) for r in batch]
    ).SerializeToString()
    parsed = ProduceBatchRequest.FromString(request).records
    messages = len(parsed) + sum(len(r.headers) for r in parsed)
    if len(parsed) > limit or messages > 2 * limit:
        with pytest.raises(InvalidArgumentError, match="at most"):
            produce_batch_values(request, limit)
    else:
        assert produce_batch_values(request, limit) == reference(request)


@pytest.mark.parametrize("record", [b"\x0a\x00", b"\x8a\x00\x00", b"\x8a\x80\x00\x00"])
def test_records_are_counted_before_parsing_however_their_tags_are_encoded(record: bytes) -> None:
    assert produce_batch_values(record * 1000, 1000) == [b""] * 1000
    with pytest.raises(InvalidArgumentError, match="at most 1000 records"):
        produce_batch_values(record * 1001, 1000)


def test_headers_are_counted_before_parsing() -> None:
    record = Record(value=b"v", headers=[Header(key="k")] * 20).SerializeToString()
    request = encode_batch_request([record] * 10)  # 10 records, 210 messages
    assert len(produce_batch_values(request, 105)) == 10
    with pytest.raises(InvalidArgumentError, match="records and headers together"):
        produce_batch_values(request, 104)


@pytest.mark.parametrize("tail", [b"\x0a\x05\x0a", b"\x0b"], ids=["torn", "group"])
def test_a_malformed_batch_counted_before_parsing_is_an_invalid_argument(tail: bytes) -> None:
    newlines = encode_record(b"\n" * 10)  # many bytes that could start a record's tag
    request = encode_batch_request([newlines] * 5)
    assert produce_batch_values(request, 10) == [b"\n" * 10] * 5  # walked, not just counted
    with pytest.raises(InvalidArgumentError, match="malformed"):
        produce_batch_values(request + tail, 10)


def test_a_flood_of_unknown_fields_is_refused_without_walking_all_of_it() -> None:
    request = b"\x0a\x00" + b"\x10\x0a" * 1_000_000  # field 2 = 10, a million times
    with pytest.raises(InvalidArgumentError, match="fields"):
        produce_batch_values(request, 1000)


@given(
    st.lists(records | values, min_size=1, max_size=10),
    st.sampled_from(["", "orders", "ü" * 100]),
    st.none() | st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 2**63 - 1]),
    st.none() | st.integers(0, 2**64 - 1),
    st.none() | st.integers(-1, 2**63 - 1),
    st.booleans(),
)
def test_a_batch_to_a_topic_and_partition_gives_what_a_full_parse_gives(
    batch: list[Record | bytes],
    topic: str,
    partition: int | None,
    producer_id: int,
    expected_offset: int | None,
    expected_key_offset: int | None,
    acks_leader: bool,
) -> None:
    conditions = Conditions(
        producer_id=producer_id,
        producer_epoch=3 if producer_id else 0,
        base_sequence=2**31 - 1 if producer_id else 0,
        expected_offset=expected_offset,
        expected_key_offset=expected_key_offset,
        acks_leader=acks_leader,
    )
    message = ProduceBatchRequest(
        records=[r if isinstance(r, Record) else Record(value=r) for r in batch],
        topic=topic,
        partition=partition,
    )
    set_conditions(message, conditions)
    request = message.SerializeToString()
    assert produce_batch_request(request) == (reference(request), topic, partition, conditions)


def test_bare_values_to_a_topic_come_back_bare_and_keyed_ones_as_records() -> None:
    request = ProduceBatchRequest(
        records=[Record(value=b"a"), Record(value=b"")], topic="t", partition=0
    ).SerializeToString()
    assert produce_batch_request(request)[:3] == ([b"a", b""], "t", 0)
    keyed = ProduceBatchRequest(records=[Record(value=b"a", key=b"k")], topic="t")
    values_, topic, partition, _ = produce_batch_request(keyed.SerializeToString())
    assert isinstance(values_[0], Record) and values_[0].key == b"k"
    assert (topic, partition) == ("t", None)


def test_a_batch_of_bare_values_to_a_topic_is_not_inspected_record_by_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def inspected(record: Record) -> bytes:
        raise AssertionError("the fast path was not taken")

    monkeypatch.setattr(wire, "record_value", inspected)
    request = encode_batch_request([encode_record(b"v" * n) for n in (0, 1, 200)], "t", 3)
    assert produce_batch_request(request)[:3] == ([b"", b"v", b"v" * 200], "t", 3)
