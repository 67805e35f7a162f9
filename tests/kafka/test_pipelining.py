"""Produce requests on one connection are pipelined (the next is read while one is
appended) yet appended and answered in the order they came, an acks=0 produce among them
answered by nothing, and a request of another kind sent behind them sees their records."""

from __future__ import annotations

import datetime
import io
from typing import Any

from kio.schema.errors import ErrorCode
from kio.schema.list_offsets.v1.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.list_offsets.v1.response import ListOffsetsResponse
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v8.response import ProduceResponse
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta, i64

from replog.server.kafka.records import BatchHeader, KafkaRecord, encode_batch
from replog.v1.record_pb2 import Record
from tests.kafka.wire import connect, read_frame, request

REQUESTS = 40  # more than a connection may have pending, so reading waits on appends
PER_REQUEST = 3
ACKS_0_AT = 17


def _produce(number: int, acks: int) -> bytes:
    records = encode_batch(
        BatchHeader(),
        [KafkaRecord(b"%d-%d" % (number, i), offset_delta=i) for i in range(PER_REQUEST)],
    )
    body = ProduceRequest(
        acks=i16(acks), timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(TopicProduceData(name="default", partition_data=(
            PartitionProduceData(index=i32(0), records=records),
        )),),
    )  # fmt: skip
    out = io.BytesIO()
    entity_writer(ProduceRequest)(out, body)
    return request(0, 8, number, out.getvalue())


def _latest(correlation_id: int) -> bytes:
    body = ListOffsetsRequest(
        replica_id=i32(-1),
        topics=(
            ListOffsetsTopic(
                name="default",
                partitions=(ListOffsetsPartition(partition_index=i32(0), timestamp=i64(-1)),),
            ),
        ),
    )
    out = io.BytesIO()
    entity_writer(ListOffsetsRequest)(out, body)
    return request(2, 1, correlation_id, out.getvalue())


def test_pipelined_produces_append_and_answer_in_order(kafka_server: Any) -> None:
    frames = [_produce(n, 0 if n == ACKS_0_AT else -1) for n in range(REQUESTS)]
    with connect(kafka_server) as sock:
        sock.sendall(b"".join(frames) + _latest(REQUESTS))
        answered = []
        for _ in range(REQUESTS - 1):  # the acks=0 one has no answer
            frame = read_frame(sock)
            correlation_id = int.from_bytes(frame[:4], "big", signed=True)
            response, _ = entity_reader(ProduceResponse)(frame, 4)
            part = response.responses[0].partition_responses[0]
            assert part.error_code is ErrorCode.none
            answered.append((correlation_id, int(part.base_offset)))
        latest, _ = entity_reader(ListOffsetsResponse)(read_frame(sock), 4)
    numbers = [n for n in range(REQUESTS) if n != ACKS_0_AT]
    assert [c for c, _ in answered] == numbers
    assert [base for _, base in answered] == [PER_REQUEST * n for n in numbers]
    assert latest.topics[0].partitions[0].offset == REQUESTS * PER_REQUEST
    assert kafka_server.agent is not None and kafka_server.agent.topics is not None
    log = kafka_server.agent.topics.partition("default", 0)
    values = [r.value for r in _read_all(log, REQUESTS * PER_REQUEST)]
    assert values == [b"%d-%d" % (n, i) for n in range(REQUESTS) for i in range(PER_REQUEST)]


def _read_all(log: Any, count: int) -> list[Record]:
    payloads, _ = log.read_from(0, count, 1 << 20)
    return [Record.FromString(p) for p in payloads]
