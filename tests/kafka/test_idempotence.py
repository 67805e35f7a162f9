"""An idempotent Kafka producer's retry is appended once: InitProducerId hands out an id,
and a batch resent with the same id, epoch and sequence answers with the first offset."""

from __future__ import annotations

import datetime
import io

from kio.schema.errors import ErrorCode
from kio.schema.init_producer_id.v1.request import InitProducerIdRequest
from kio.schema.init_producer_id.v1.response import InitProducerIdResponse
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v8.response import ProduceResponse
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta

from replog.server.kafka.records import BatchHeader, KafkaRecord, encode_batch
from tests.kafka.conftest import KafkaServer
from tests.kafka.wire import connect, log_end, read_frame, request


def _send(sock: object, api_key: int, version: int, entity: object) -> bytes:
    body = io.BytesIO()
    entity_writer(type(entity))(body, entity)
    sock.sendall(request(api_key, version, 1, body.getvalue()))  # type: ignore[attr-defined]
    return read_frame(sock)  # type: ignore[arg-type]


def _produce(producer_id: int, epoch: int, sequence: int) -> ProduceRequest:
    batch = encode_batch(
        BatchHeader(producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence),
        [KafkaRecord(b"a"), KafkaRecord(b"b", offset_delta=1)],
    )
    return ProduceRequest(
        acks=i16(-1), timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(TopicProduceData(name="default", partition_data=(  # type: ignore[arg-type]
            PartitionProduceData(index=i32(0), records=batch),  # type: ignore[arg-type]
        )),),
    )  # fmt: skip


def test_a_resent_idempotent_batch_is_appended_once_at_its_first_offset(
    kafka_server: KafkaServer,
) -> None:
    with connect(kafka_server) as sock:
        init = InitProducerIdRequest(
            transactional_id=None,
            transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
        )
        answer, _ = entity_reader(InitProducerIdResponse)(_send(sock, 22, 1, init), 4)
        assert answer.error_code is ErrorCode.none
        assert answer.producer_id > 0
        bases = []
        for _ in range(2):
            frame = _send(sock, 0, 8, _produce(answer.producer_id, answer.producer_epoch, 0))
            response, _ = entity_reader(ProduceResponse)(frame, 4)
            partition = response.responses[0].partition_responses[0]
            assert partition.error_code is ErrorCode.none
            bases.append(partition.base_offset)
        assert bases == [0, 0]
        assert log_end(kafka_server) == 2
        frame = _send(sock, 0, 8, _produce(answer.producer_id, answer.producer_epoch, 5))
        response, _ = entity_reader(ProduceResponse)(frame, 4)
        error = response.responses[0].partition_responses[0].error_code
        assert error is ErrorCode.out_of_order_sequence_number
        assert log_end(kafka_server) == 2
