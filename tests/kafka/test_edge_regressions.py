"""Regressions from a review of the Kafka edge (each failed before its fix): a small
compressed batch cannot expand without bound, a produce of several batches for one
partition is refused whole (never half appended behind an error), the Kafka port's
plaintext exposure is warned about, it cannot run beside TLS or an ACL it would bypass,
and a fetch's max_bytes bounds the whole answer past its first partition with records."""

from __future__ import annotations

import datetime
import io
import time
from pathlib import Path
from typing import Any

import cramjam
import pytest
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v11.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.fetch.v11.response import FetchResponse
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v8.response import ProduceResponse
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta, i64

from replog.errors import ConfigError, CorruptBatchError
from replog.server.agent_support import exposure_warning
from replog.server.kafka.compression import MAX_DECOMPRESSED_BYTES, Compression, decompress
from replog.server.kafka.records import BatchHeader, KafkaRecord, encode_batch
from replog.server.settings import ServerSettings
from tests.kafka.wire import connect, log_end, read_frame, request

EXPANDED = 2 * MAX_DECOMPRESSED_BYTES


@pytest.mark.parametrize(
    ("codec", "squeeze"),
    [
        (Compression.ZSTD, cramjam.zstd.compress),
        (Compression.GZIP, cramjam.gzip.compress),
        (Compression.LZ4, cramjam.lz4.compress),
        (Compression.SNAPPY, cramjam.snappy.compress_raw),
    ],
    ids=["zstd", "gzip", "lz4", "snappy"],
)
def test_a_tiny_payload_that_expands_past_the_limit_is_refused(codec: Any, squeeze: Any) -> None:
    bomb = bytes(squeeze(bytes(EXPANDED)))
    assert len(bomb) < EXPANDED // 20  # the request itself is small
    with pytest.raises(CorruptBatchError):
        decompress(codec, bomb)
    small = bytes(300_000)  # under the limit, bigger than the first buffer tried
    assert decompress(codec, bytes(squeeze(small))) == small


def _batch(count: int, base: int = 0) -> bytes:
    return encode_batch(
        BatchHeader(base_offset=base),
        [KafkaRecord(b"v%d" % i, offset_delta=i) for i in range(count)],
    )


def test_a_produce_of_two_batches_for_one_partition_is_refused_and_appends_nothing(
    kafka_factory: Any,
) -> None:
    server = kafka_factory(max_batch_records=2)
    records = _batch(2) + _batch(3, base=2)
    body = ProduceRequest(
        acks=i16(-1), timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(TopicProduceData(name="default", partition_data=(
            PartitionProduceData(index=i32(0), records=records),
        )),),
    )  # fmt: skip
    out = io.BytesIO()
    entity_writer(ProduceRequest)(out, body)
    with connect(server) as sock:
        sock.sendall(request(0, 8, 1, out.getvalue()))
        response, _ = entity_reader(ProduceResponse)(read_frame(sock), 4)
    code = response.responses[0].partition_responses[0].error_code
    assert code is ErrorCode.invalid_record
    deadline = time.monotonic() + 1  # an orphaned append would land after the answer
    while time.monotonic() < deadline:
        assert log_end(server) == 0, "an error was answered but a batch was appended"
        time.sleep(0.05)


def test_a_kafka_port_beyond_loopback_is_warned_about(tmp_path: Path) -> None:
    settings = ServerSettings(
        data_dir=str(tmp_path), grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0",
        kafka_addr="0.0.0.0:9092",
    )  # fmt: skip
    warning = exposure_warning(settings)
    assert warning is not None and "9092" in warning


@pytest.mark.parametrize(
    "security",
    [
        {"tls_cert": "c.pem", "tls_key": "k.pem"},
        {"tls_cert": "c.pem", "tls_key": "k.pem", "tls_ca": "ca.pem", "acl_policy": "p.csv"},
    ],
    ids=["tls", "acl"],
)
def test_the_kafka_listener_runs_beside_tls_or_an_acl_and_speaks_tls_beyond_loopback(
    tmp_path: Path, security: dict[str, str]
) -> None:
    # It used to be refused (no TLS, SASL or ACL on the port); now it uses them
    # (tests/kafka/test_security.py), so a TLS port beyond loopback is not warned about.
    settings = ServerSettings(
        data_dir=str(tmp_path), grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0",
        kafka_addr="0.0.0.0:9092", **security,
    )  # fmt: skip
    assert exposure_warning(settings) is None
    with pytest.raises(ConfigError, match="kafka_sasl_users needs TLS"):
        ServerSettings(data_dir=str(tmp_path), kafka_addr="127.0.0.1:9092", kafka_sasl_users="u")


def _send(sock: Any, api_key: int, version: int, entity: Any) -> bytes:
    out = io.BytesIO()
    entity_writer(type(entity))(out, entity)
    sock.sendall(request(api_key, version, 1, out.getvalue()))
    return read_frame(sock)


def test_a_fetch_answer_stays_within_max_bytes_after_the_first_partition_with_records(
    kafka_server: Any,
) -> None:
    kafka_server.create_topic("wide", partitions=4)
    with connect(kafka_server) as sock:
        for partition in range(4):
            batch = encode_batch(BatchHeader(), [KafkaRecord(b"x" * 1000, offset_delta=0)])
            produce = ProduceRequest(
                acks=i16(-1), timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
                topic_data=(TopicProduceData(name="wide", partition_data=(
                    PartitionProduceData(index=i32(partition), records=batch),
                )),),
            )  # fmt: skip
            answer, _ = entity_reader(ProduceResponse)(_send(sock, 0, 8, produce), 4)
            assert answer.responses[0].partition_responses[0].error_code is ErrorCode.none
        fetch = FetchRequest(
            max_wait=i32Timedelta.parse(datetime.timedelta(0)), min_bytes=i32(1),
            max_bytes=i32(1500),
            topics=(FetchTopic(topic="wide", partitions=tuple(
                FetchPartition(partition=i32(p), fetch_offset=i64(0),
                               partition_max_bytes=i32(1 << 20))
                for p in range(4)
            )),),
            forgotten_topics_data=(),
        )  # fmt: skip
        response, _ = entity_reader(FetchResponse)(_send(sock, 1, 11, fetch), 4)
    parts = [p for t in response.responses for p in t.partitions]
    sizes = [len(p.records or b"") for p in parts]
    assert sum(1 for size in sizes if size) == 1, sizes  # the first one, over the budget
    assert all(p.high_watermark == 1 for p in parts)  # the rest still say where they end
