"""Kafka request framing, request headers v0-v2 and response encoding: frames are cut
from any chunking of the stream, oversized or malformed input is refused with
ProtocolError, and bodies parse and encode through kio's schemas."""

from __future__ import annotations

import datetime
import io
import itertools
import struct

import pytest
from aiokafka.protocol.admin import ApiVersionRequest_v0, ApiVersionResponse_v2
from aiokafka.protocol.metadata import MetadataRequest_v1, MetadataResponse_v1
from aiokafka.protocol.produce import ProduceRequest_v3
from hypothesis import given
from hypothesis import strategies as st
from kio.schema.api_versions.v2.response import ApiVersion, ApiVersionsResponse
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v1.response import MetadataResponse, MetadataResponseBroker
from kio.serial import entity_writer
from kio.static.primitive import i16, i32, i32Timedelta

from replog.errors import ProtocolError
from replog.server.kafka.codec import FrameReader, decode_request, encode_response
from replog.server.kafka.records import BatchHeader, KafkaRecord, decode_batches, encode_batch


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _client_frame(request: object, correlation_id: int, client_id: str) -> bytes:
    """A request frame as a Kafka client's own protocol classes (aiokafka's) write it."""
    header = request.build_request_header(correlation_id=correlation_id, client_id=client_id)  # type: ignore[attr-defined]
    return bytes(header.encode() + request.encode())  # type: ignore[attr-defined]


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_frames_come_out_whole_and_in_order_however_the_stream_is_chunked(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(_frame(p) for p in payloads)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    reader = FrameReader()
    frames: list[bytes] = []
    for start, end in itertools.pairwise(points):
        frames.extend(reader.feed(stream[start:end]))
    assert frames == payloads
    assert reader.pending == 0


def test_a_frame_over_the_limit_is_refused_before_its_body_arrives() -> None:
    reader = FrameReader(max_frame_bytes=1000)
    assert reader.feed(_frame(b"x" * 1000)) == [b"x" * 1000]
    with pytest.raises(ProtocolError, match="1001 bytes"):
        reader.feed(struct.pack(">i", 1001))


def test_a_negative_frame_size_is_refused() -> None:
    with pytest.raises(ProtocolError):
        FrameReader().feed(struct.pack(">i", -5))


def test_a_partial_frame_waits_for_the_rest() -> None:
    reader = FrameReader()
    frame = _frame(b"hello")
    assert reader.feed(frame[:6]) == []
    assert reader.pending == 6
    assert reader.feed(frame[6:]) == [b"hello"]


def test_a_client_api_versions_v0_request_parses_with_its_header() -> None:
    frame = _client_frame(ApiVersionRequest_v0(), 42, "my-client")
    request = decode_request(frame)
    assert (request.header.api_key, request.header.api_version) == (18, 0)
    assert request.header.correlation_id == 42
    assert request.header.client_id == "my-client"
    assert type(request.body).__name__ == "ApiVersionsRequest"


def test_a_client_metadata_request_names_its_topics() -> None:
    request = decode_request(_client_frame(MetadataRequest_v1(["a", "b"]), 7, "c"))
    assert [topic.name for topic in request.body.topics] == ["a", "b"]  # type: ignore[union-attr]


def test_a_produce_request_carries_its_record_batch_bytes_untouched() -> None:
    batch = encode_batch(BatchHeader(), [KafkaRecord(b"v", b"k")])
    produce = ProduceRequest_v3(
        transactional_id=None, required_acks=-1, timeout=1000, topics=[("t", [(0, batch)])]
    )
    request = decode_request(_client_frame(produce, 1, "p"))
    body = request.body
    assert body.acks == -1  # type: ignore[union-attr]
    records = body.topic_data[0].partition_data[0].records  # type: ignore[union-attr]
    assert decode_batches(bytes(records))[0].records == (KafkaRecord(b"v", b"k"),)


def test_a_flexible_request_header_v2_with_tagged_fields_parses() -> None:
    body = io.BytesIO()
    entity_writer(ApiVersionsRequest)(
        body, ApiVersionsRequest(client_software_name="rdkafka", client_software_version="2")
    )
    header = struct.pack(">hhih", 18, 3, 9, 3) + b"cli" + b"\x00"
    request = decode_request(header + body.getvalue())
    assert request.header.correlation_id == 9
    assert request.body == ApiVersionsRequest(
        client_software_name="rdkafka", client_software_version="2"
    )


def test_an_api_key_kio_does_not_know_gives_a_header_and_no_body() -> None:
    request = decode_request(struct.pack(">hhih", 999, 0, 5, -1))
    assert (request.header.api_key, request.header.correlation_id) == (999, 5)
    assert request.header.client_id is None
    assert request.body is None


@pytest.mark.parametrize(
    "frame",
    [b"\x00\x12", struct.pack(">hhih", 18, 0, 1, 10) + b"abc", struct.pack(">hhi", 3, 1, 1)],
    ids=["shorter-than-a-header", "client-id-past-the-end", "no-client-id"],
)
def test_a_malformed_request_header_is_refused(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(frame)


def test_bytes_after_a_request_body_are_refused() -> None:
    frame = _client_frame(ApiVersionRequest_v0(), 1, "c") + b"junk"
    with pytest.raises(ProtocolError, match="bytes after"):
        decode_request(frame)


def test_a_truncated_request_body_is_refused() -> None:
    frame = _client_frame(MetadataRequest_v1(["topic"]), 1, "c")
    with pytest.raises(ProtocolError, match="does not parse"):
        decode_request(frame[:-2])


def test_an_api_versions_response_is_framed_with_a_v0_header_a_client_reads() -> None:
    response = ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(ApiVersion(api_key=i16(0), min_version=i16(3), max_version=i16(8)),),
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
    )
    frame = encode_response(77, response)
    (size, correlation_id) = struct.unpack_from(">ii", frame)
    assert size == len(frame) - 4
    assert correlation_id == 77
    decoded = ApiVersionResponse_v2.decode(io.BytesIO(frame[8:]))
    assert decoded.error_code == 0
    assert decoded.api_versions[0][:3] == (0, 3, 8)


def test_a_metadata_v1_response_encodes_as_a_client_reads_it() -> None:

    response = MetadataResponse(
        brokers=(MetadataResponseBroker(node_id=i32(1), host="127.0.0.1", port=i32(9092)),),
        controller_id=i32(1),
        topics=(),
    )
    frame = encode_response(3, response)
    decoded = MetadataResponse_v1.decode(io.BytesIO(frame[8:]))
    assert decoded.brokers[0][:3] == (1, "127.0.0.1", 9092)
