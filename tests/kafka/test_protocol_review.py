"""Regressions from a review of the Kafka protocol's answers (each failed before its fix):
ListOffsets by timestamp when stored timestamps step back, OffsetCommit and OffsetFetch
errors per partition, fetched batches marked LogAppendTime, Fetch with min_bytes 0 at
once, Produce refusing an invalid acks, an old message format or an unknown codec."""

from __future__ import annotations

import asyncio
import datetime
import io
import random
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import google_crc32c
import pytest
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v11.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.fetch.v11.response import FetchResponse
from kio.schema.list_offsets.v5.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.offset_commit.v2.request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kio.schema.offset_commit.v2.response import OffsetCommitResponse
from kio.schema.offset_fetch.v1.request import OffsetFetchRequest, OffsetFetchRequestTopic
from kio.schema.offset_fetch.v1.response import OffsetFetchResponse
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.schema.produce.v8.response import ProduceResponse
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i8, i16, i32, i32Timedelta, i64

from replog.server.backend import SingleNodeBackend
from replog.server.broker_backend import SingleLogTopics
from replog.server.kafka import data
from replog.server.kafka.codec import RequestHeader
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.groups import handle_group_request
from replog.server.kafka.records import BatchHeader, KafkaRecord, decode_batches, encode_batch
from replog.storage.config import LogConfig
from replog.storage.index import ENTRY_BYTES
from replog.storage.log import Log
from tests.kafka.conftest import KafkaServer
from tests.kafka.wire import connect, log_end, read_frame, request

_SECONDS_5 = i32Timedelta.parse(datetime.timedelta(seconds=5))


def _send(sock: Any, api_key: int, version: int, entity: Any, reader: Any) -> Any:
    out = io.BytesIO()
    entity_writer(type(entity))(out, entity)
    sock.sendall(request(api_key, version, 1, out.getvalue()))
    answer, _ = entity_reader(reader)(read_frame(sock), 4)
    return answer


def _produce(records: bytes, acks: int = -1, partitions: int = 1) -> ProduceRequest:
    return ProduceRequest(
        acks=i16(acks), timeout=_SECONDS_5,
        topic_data=(TopicProduceData(name="default", partition_data=tuple(
            PartitionProduceData(index=i32(p), records=records) for p in range(partitions)
        )),),
    )  # fmt: skip


def _still_served(sock: Any) -> None:
    """The connection stays open and answers the next request."""
    sock.sendall(request(18, 0, 42))
    assert struct.unpack_from(">i", read_frame(sock))[0] == 42


# -- a partition whose clock the test sets ---------------------------------------------------


class _Partition:
    """``default``/0 over a real Log whose clock the test sets, behind a Kafka context."""

    def __init__(self, directory: Path) -> None:
        self.now_ms = 1000
        # 100 records a segment, so retention can delete part of an index block.
        config = LogConfig(sync="never", max_index_bytes=ENTRY_BYTES * 100)
        self.log = Log(directory, config, clock_ms=lambda: self.now_ms)
        self.backend = SingleNodeBackend(self.log, server_id="t", rpc_addr="127.0.0.1:1")
        self.ctx = KafkaContext(SingleLogTopics(self.backend, {}))

    async def append(self, stamps: list[int]) -> KafkaContext:
        """One record per stamp, each appended on its own while the clock reads it."""
        for stamp in stamps:
            self.now_ms = stamp
            await self.backend.submit([b"v%d" % stamp])
        return self.ctx


@pytest.fixture
def stamped(tmp_path: Path) -> Callable[[Callable[[_Partition], Awaitable[None]]], None]:
    """Runs a scenario on a fresh ``_Partition``, closed after it."""

    def run(scenario: Callable[[_Partition], Awaitable[None]]) -> None:
        async def main() -> None:
            partition = _Partition(tmp_path / "log")
            partition.backend.start()
            try:
                await scenario(partition)
            finally:
                await partition.backend.close()

        asyncio.run(main())

    return run


async def _offset_for(ctx: KafkaContext, timestamp: int) -> tuple[int, int]:
    body = ListOffsetsRequest(
        replica_id=i32(-1), isolation_level=i8(0),
        topics=(ListOffsetsTopic(name="default", partitions=(
            ListOffsetsPartition(partition_index=i32(0), current_leader_epoch=i32(-1),
                                 timestamp=i64(timestamp)),
        )),),
    )  # fmt: skip
    answer = await data.list_offsets(ctx, load_response_schema(2, 5), body)
    part = answer.topics[0].partitions[0]
    assert part.error_code is ErrorCode.none
    return int(part.timestamp), int(part.offset)


def _earliest_at_or_after(stamps: list[int], target: int) -> tuple[int, int]:
    for offset, stamp in enumerate(stamps):
        if stamp >= target:
            return stamp, offset
    return -1, -1


def test_list_offsets_by_time_finds_the_earliest_record_at_or_after_it_when_time_steps_back(
    stamped: Any,
) -> None:
    async def scenario(partition: _Partition) -> None:
        stamps = [3000, 1000, 1000, 1000, 1000]  # the clock stepped back after offset 0
        ctx = await partition.append(stamps)
        assert await _offset_for(ctx, 2000) == (3000, 0)
        assert await _offset_for(ctx, 3001) == (-1, -1)
        more = [2500, 4000, 900]
        await partition.append(more)  # the answer follows later appends
        assert await _offset_for(ctx, 2000) == (3000, 0)
        assert await _offset_for(ctx, 3001) == (4000, 6)

    stamped(scenario)


def test_list_offsets_by_time_agrees_with_a_scan_over_many_records_in_any_order(
    stamped: Any,
) -> None:
    chooser = random.Random(7)
    stamps = [chooser.randrange(1, 5000) for _ in range(3000)]
    stamps[1200] = 6000  # the newest of all, in a block retention will cut into

    async def scenario(partition: _Partition) -> None:
        ctx = await partition.append(stamps)
        targets = [0, 1, 4999, 5000, 5500, 6000, *(chooser.randrange(1, 5001) for _ in range(40))]
        for target in targets:
            assert await _offset_for(ctx, target) == _earliest_at_or_after(stamps, target)
        partition.log.truncate(1550)  # retention: whole segments, mid-block
        assert partition.backend.lowest_offset == 1500
        kept = [-1] * 1500 + stamps[1500:]  # deleted records match no target
        for target in targets:
            assert await _offset_for(ctx, target) == _earliest_at_or_after(kept, target)

    stamped(scenario)


# -- fetched batches carry the broker's append time ------------------------------------------


async def _fetch_batches(ctx: KafkaContext, max_bytes: int) -> list[Any]:
    body = FetchRequest(
        max_wait=i32Timedelta.parse(datetime.timedelta(0)), min_bytes=i32(1),
        max_bytes=i32(1 << 20),
        topics=(FetchTopic(topic="default", partitions=(
            FetchPartition(partition=i32(0), fetch_offset=i64(0),
                           partition_max_bytes=i32(max_bytes)),
        )),),
        forgotten_topics_data=(),
    )  # fmt: skip
    answer = await data.fetch(ctx, load_response_schema(1, 11), body)
    return decode_batches(answer.responses[0].partitions[0].records)


def test_fetched_batches_say_log_append_time_with_each_records_stored_time(
    stamped: Any,
) -> None:
    async def scenario(partition: _Partition) -> None:
        stamps = [1000, 1000, 1500, 1200]
        ctx = await partition.append(stamps)
        batches = await _fetch_batches(ctx, 1 << 20)
        seen = []
        for batch in batches:
            assert batch.header.log_append_time  # attribute bit 3
            for record in batch.records:
                # A client reads a LogAppendTime record's time from its batch's max.
                offset = batch.header.base_offset + record.offset_delta
                seen.append((offset, batch.header.max_timestamp, record.value))
        assert seen == [(o, s, b"v%d" % s) for o, s in enumerate(stamps)]
        # Past the first batch, batches that do not fit the limit wait for the next fetch.
        (first,) = await _fetch_batches(ctx, 100)  # reads all four records
        assert [first.header.base_offset + r.offset_delta for r in first.records] == [0, 1]
        assert first.header.base_offset + first.header.last_offset_delta == 1

    stamped(scenario)


# -- OffsetCommit and OffsetFetch errors, per partition --------------------------------------


def _commit(group: str) -> OffsetCommitRequest:
    return OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=i32(-1), member_id="",
        topics=(OffsetCommitRequestTopic(name="default", partitions=tuple(
            OffsetCommitRequestPartition(partition_index=i32(p), committed_offset=i64(1),
                                         committed_metadata="")
            for p in (0, 1)
        )),),
    )  # fmt: skip


def _offset_fetch(group: str) -> OffsetFetchRequest:
    return OffsetFetchRequest(
        group_id=group,
        topics=(OffsetFetchRequestTopic(name="default", partition_indexes=(i32(0), i32(1))),),
    )


def _codes(answer: Any) -> list[tuple[str, int, ErrorCode]]:
    return [(t.name, p.partition_index, p.error_code) for t in answer.topics for p in t.partitions]


def test_offset_commit_and_offset_fetch_v1_answer_a_bad_group_id_per_partition(
    kafka_server: KafkaServer,
) -> None:
    invalid = ErrorCode.invalid_group_id
    with connect(kafka_server) as sock:
        committed = _send(sock, 8, 2, _commit(""), OffsetCommitResponse)
        fetched = _send(sock, 9, 1, _offset_fetch(""), OffsetFetchResponse)
    assert _codes(committed) == [("default", 0, invalid), ("default", 1, invalid)]
    assert _codes(fetched) == [("default", 0, invalid), ("default", 1, invalid)]
    assert all(p.committed_offset == -1 for t in fetched.topics for p in t.partitions)


def test_offset_commit_and_offset_fetch_v1_without_a_coordinator_say_so_per_partition() -> None:
    ctx = KafkaContext(cast(Any, None), groups=None)

    def header(key: int, version: int) -> RequestHeader:
        return RequestHeader(api_key=key, api_version=version, correlation_id=1, client_id="t")

    async def main() -> tuple[Any, Any]:
        committed = await handle_group_request(ctx, header(8, 2), _commit("g"))
        fetched = await handle_group_request(ctx, header(9, 1), _offset_fetch("g"))
        return committed, fetched

    committed, fetched = asyncio.run(main())
    unavailable = ErrorCode.coordinator_not_available
    assert _codes(committed) == [("default", 0, unavailable), ("default", 1, unavailable)]
    assert _codes(fetched) == [("default", 0, unavailable), ("default", 1, unavailable)]


# -- Fetch with nothing to wait for ----------------------------------------------------------


@pytest.mark.parametrize(("wait_ms", "min_bytes"), [(3000, 0), (0, 1)])
def test_a_fetch_at_the_log_end_answers_at_once_when_it_asks_no_wait(
    kafka_server: KafkaServer, wait_ms: int, min_bytes: int
) -> None:
    body = FetchRequest(
        max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=wait_ms)),
        min_bytes=i32(min_bytes), max_bytes=i32(1 << 20),
        topics=(FetchTopic(topic="default", partitions=(
            FetchPartition(partition=i32(0), fetch_offset=i64(0),
                           partition_max_bytes=i32(1 << 20)),
        )),),
        forgotten_topics_data=(),
    )  # fmt: skip
    with connect(kafka_server) as sock:
        _still_served(sock)  # connected and served before the clock starts
        started = time.monotonic()
        answer = _send(sock, 1, 11, body, FetchResponse)
        elapsed = time.monotonic() - started
    part = answer.responses[0].partitions[0]
    assert (part.error_code, part.records) == (ErrorCode.none, b"")
    assert elapsed < 1.0, f"waited {elapsed:.2f}s for a fetch that asked not to wait"


# -- Produce refusals: nothing appended, the connection open ----------------------------------


def _batch(count: int = 2) -> bytes:
    return encode_batch(
        BatchHeader(), [KafkaRecord(b"v%d" % i, offset_delta=i) for i in range(count)]
    )


@pytest.mark.parametrize("acks", [2, -2, 5])
def test_a_produce_with_an_invalid_acks_is_refused_for_every_partition_and_appends_nothing(
    kafka_server: KafkaServer, acks: int
) -> None:
    kafka_server.create_topic("two", partitions=2)
    body = ProduceRequest(
        acks=i16(acks), timeout=_SECONDS_5,
        topic_data=tuple(
            TopicProduceData(name=name, partition_data=tuple(
                PartitionProduceData(index=i32(p), records=_batch()) for p in range(count)
            ))
            for name, count in (("default", 1), ("two", 2))
        ),
    )  # fmt: skip
    with connect(kafka_server) as sock:
        answer = _send(sock, 0, 8, body, ProduceResponse)
        _still_served(sock)
    codes = [
        (t.name, p.index, p.error_code) for t in answer.responses for p in t.partition_responses
    ]
    wanted = ErrorCode.invalid_required_acks
    assert codes == [("default", 0, wanted), ("two", 0, wanted), ("two", 1, wanted)]
    assert log_end(kafka_server) == 0
    assert kafka_server.agent is not None and kafka_server.agent.topics is not None
    assert [kafka_server.agent.topics.partition("two", p).high_watermark for p in (0, 1)] == [0, 0]


def _legacy_message(magic: int, value: bytes) -> bytes:
    """One message of the old formats: v0 (no timestamp) or v1, in a message set."""
    timestamp = struct.pack(">q", 1000) if magic == 1 else b""
    rest = struct.pack(">bb", magic, 0) + timestamp + struct.pack(">i", -1)
    rest += struct.pack(">i", len(value)) + value
    message = struct.pack(">I", zlib.crc32(rest)) + rest  # v0/v1 messages use CRC-32
    return struct.pack(">qi", 0, len(message)) + message


def _with_codec(codec: int) -> bytes:
    """A v2 batch whose attributes name ``codec``, its CRC correct for them."""
    batch = bytearray(_batch())
    struct.pack_into(">h", batch, 21, codec)
    struct.pack_into(">I", batch, 17, google_crc32c.value(bytes(batch[21:])))
    return bytes(batch)


@pytest.mark.parametrize(
    "records",
    [
        _legacy_message(0, b"old"),
        _legacy_message(1, b"old"),
        _legacy_message(1, b"a value long enough to fill a v2 header's 61 bytes, and more"),
        _with_codec(5),
        _with_codec(6),
        _with_codec(7),
    ],
    ids=["magic0", "magic1", "magic1-long", "codec5", "codec6", "codec7"],
)
def test_a_produce_of_an_old_format_or_unknown_codec_is_an_invalid_record_appending_nothing(
    kafka_server: KafkaServer, records: bytes
) -> None:
    with connect(kafka_server) as sock:
        answer = _send(sock, 0, 8, _produce(records), ProduceResponse)
        _still_served(sock)
    part = answer.responses[0].partition_responses[0]
    assert part.error_code is ErrorCode.invalid_record, part
    assert part.base_offset == -1
    assert log_end(kafka_server) == 0
