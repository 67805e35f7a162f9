"""A connection reset while pipelined produces are pending: every produce submitted before
it is appended, in request order. A review found the one the sender was awaiting cancelled
(and so skipped by the backend) while the ones submitted after it were appended."""

from __future__ import annotations

import asyncio
import datetime
import io
import socket
import struct
import threading
import time
from typing import Any

from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.serial import entity_writer
from kio.static.primitive import i16, i32, i32Timedelta

from replog.server.kafka.records import BatchHeader, KafkaRecord, encode_batch
from replog.v1.record_pb2 import Record
from tests.kafka.wire import connect, request


def _produce(number: int) -> bytes:
    records = encode_batch(BatchHeader(), [KafkaRecord(b"req-%d" % number, offset_delta=0)])
    body = ProduceRequest(
        acks=i16(-1), timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(TopicProduceData(name="default", partition_data=(
            PartitionProduceData(index=i32(0), records=records),
        )),),
    )  # fmt: skip
    out = io.BytesIO()
    entity_writer(ProduceRequest)(out, body)
    return request(0, 8, number, out.getvalue())


def test_reset_mid_pipeline_keeps_request_order(kafka_server: Any) -> None:
    release = threading.Event()
    backend = kafka_server.agent.topics.partition("default", 0)
    original = backend._append
    try:
        _reset_mid_pipeline(kafka_server, release)
    finally:
        release.set()
        backend._append = original  # the server may be shared with other tests


def _reset_mid_pipeline(kafka_server: Any, release: threading.Event) -> None:
    backend = kafka_server.agent.topics.partition("default", 0)
    original = backend._append
    calls = []

    def slow_append(values: Any) -> int:
        calls.append(len(values))
        if len(calls) == 1:
            release.wait(10)  # the first append (the blocker) holds the partition
        return original(values)

    backend._append = slow_append

    async def blocker() -> int:
        return await backend.submit([b"blocker"])

    blocked = asyncio.run_coroutine_threadsafe(blocker(), kafka_server.loop)
    while not calls:
        time.sleep(0.01)
    sock = connect(kafka_server)
    sock.sendall(b"".join(_produce(n) for n in (1, 2, 3)))
    deadline = time.monotonic() + 10  # the server reads and submits all three (queued behind
    while len(backend._pending) < 3:  # the blocked append)
        assert time.monotonic() < deadline, "the three produces were never submitted"
        time.sleep(0.01)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST: the server's read raises ConnectionResetError
    time.sleep(0.5)  # the server sees the reset (its answers abandoned) before the appends run
    release.set()
    blocked.result(10)
    deadline = time.monotonic() + 10  # the blocker and the three (with the old defect: 3 of 4)
    while backend.high_watermark < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    payloads, _ = backend.read_from(0, 100, 1 << 20)
    values = [Record.FromString(p).value for p in payloads]
    # All three were read and submitted in order before the reset: either all land, or
    # (at worst) a suffix is missing -- never req-1 missing while req-2 and req-3 landed.
    assert values == [b"blocker", b"req-1", b"req-2", b"req-3"], values
