"""Bad bytes on the Kafka port: unknown API keys and versions get the protocol's error
code on a connection that stays open; truncated, mis-sized, oversized or malformed frames
and idle connections get that connection closed; the server and the log are unharmed."""

from __future__ import annotations

import datetime
import io
import logging
import socket
import struct
import time

import pytest
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsV0
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v0.response import MetadataResponse as MetadataV0Response
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v8.response import ProduceResponse as ProduceV8Response
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta

from replog.server.kafka.codec import DEFAULT_MAX_FRAME_BYTES
from replog.server.kafka.records import BatchHeader, KafkaRecord, encode_batch
from tests.kafka.conftest import KafkaServer, wait_until
from tests.kafka.wire import connect, log_end, read_frame, request


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _api_versions_still_answered(server: KafkaServer) -> None:
    with connect(server) as sock:
        sock.sendall(request(18, 0, 99))
        frame = read_frame(sock)
    assert struct.unpack_from(">i", frame)[0] == 99
    body, _ = entity_reader(ApiVersionsV0)(frame, 4)
    assert body.error_code is ErrorCode.none


def test_an_unknown_api_key_is_answered_with_unsupported_version_on_an_open_connection(
    kafka_server: KafkaServer,
) -> None:
    with connect(kafka_server) as sock:
        sock.sendall(request(4242, 0, 7))
        frame = read_frame(sock)
        assert struct.unpack(">ih", frame) == (7, ErrorCode.unsupported_version.value)
        sock.sendall(request(18, 0, 8))
        assert struct.unpack_from(">i", read_frame(sock))[0] == 8


def test_an_api_version_not_served_gets_that_versions_response_with_unsupported_version(
    kafka_server: KafkaServer,
) -> None:
    with connect(kafka_server) as sock:
        sock.sendall(request(3, 0, 11, struct.pack(">i", 0)))  # Metadata v0: served from v1
        frame = read_frame(sock)
    assert struct.unpack_from(">i", frame)[0] == 11
    body, size = entity_reader(MetadataV0Response)(frame, 4)
    assert (body.brokers, body.topics, 4 + size) == ((), (), len(frame))


def test_api_versions_of_a_newer_version_is_answered_in_v0_with_the_served_versions(
    kafka_server: KafkaServer,
) -> None:
    with connect(kafka_server) as sock:
        sock.sendall(request(18, 99, 5))
        frame = read_frame(sock)
    body, _ = entity_reader(ApiVersionsV0)(frame, 4)
    assert body.error_code is ErrorCode.unsupported_version
    served = {key.api_key: (key.min_version, key.max_version) for key in body.api_keys}
    assert served[18] == (0, 3)
    assert served[0] == (3, 8)


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">i", 20) + b"\x00\x12\x00",  # the frame ends before its size says
        struct.pack(">i", 4) + b"\x00\x12\x00\x00",  # a frame too short for any header
        request(3, 1, 1, b"\x00\x00\x00\x05"),  # Metadata: 5 topics promised, none sent
        struct.pack(">i", DEFAULT_MAX_FRAME_BYTES + 1),  # oversized
        struct.pack(">i", -1),  # negative size
    ],
    ids=["truncated", "too-short", "wrong-length-inside", "oversized", "negative-size"],
)
def test_a_bad_frame_closes_only_its_connection_with_one_log_line_and_the_log_unchanged(
    kafka_server: KafkaServer, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="replog.kafka")
    before = log_end(kafka_server)
    with connect(kafka_server) as sock:
        sock.sendall(data)
        if data.startswith(struct.pack(">i", 20)):
            sock.shutdown(socket.SHUT_WR)  # the rest never comes
        assert _closed(sock)
    _api_versions_still_answered(kafka_server)
    assert log_end(kafka_server) == before
    lines = [r for r in caplog.records if r.name == "replog.kafka"]
    assert len(lines) == 1, lines
    assert str(lines[0].getMessage()).startswith("kafka: ")


def test_a_produce_whose_batch_fails_its_crc_is_refused_with_corrupt_message(
    kafka_server: KafkaServer,
) -> None:
    before = log_end(kafka_server)
    batch = bytearray(encode_batch(BatchHeader(), [KafkaRecord(b"value")]))
    batch[-1] ^= 0xFF
    produce = ProduceRequest(
        acks=i16(-1), timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(TopicProduceData(name="default", partition_data=(  # type: ignore[arg-type]
            PartitionProduceData(index=i32(0), records=bytes(batch)),  # type: ignore[arg-type]
        )),),
    )  # fmt: skip
    body = io.BytesIO()
    entity_writer(ProduceRequest)(body, produce)
    with connect(kafka_server) as sock:
        sock.sendall(request(0, 8, 3, body.getvalue()))
        frame = read_frame(sock)
    response, _ = entity_reader(ProduceV8Response)(frame, 4)
    partition = response.responses[0].partition_responses[0]
    assert partition.error_code is ErrorCode.corrupt_message
    assert log_end(kafka_server) == before


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    kafka_factory: object,
) -> None:
    server = kafka_factory(idle_timeout_s=0.5)  # type: ignore[operator]
    with connect(server) as sock:
        started = time.monotonic()
        assert _closed(sock)
        assert time.monotonic() - started < 9
    wait_until(lambda: _api_versions_still_answered(server) is None, what="server answers")
