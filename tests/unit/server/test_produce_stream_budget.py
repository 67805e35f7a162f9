"""A ProduceStream holds a bounded number of bytes in flight, however fast its client sends."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from replog.server.backend import SingleNodeBackend
from replog.server.broker_backend import SingleLogTopics
from replog.server.grpc_service import STREAM_PIPELINE_BYTES, LogService
from replog.server.metrics import ServerMetrics
from replog.storage import Log, LogConfig
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

RECORD = 512 * 1024


class _HeldLog(Log):
    """A Log whose appends wait until released, as a slow disk's would."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, LogConfig(sync="never"))
        self.release = threading.Event()

    def append_batch(self, values):  # type: ignore[no-untyped-def]
        assert self.release.wait(20), "the test never released the append"
        return super().append_batch(values)


async def test_a_produce_stream_stops_reading_once_its_bytes_in_flight_reach_the_budget(
    tmp_path: Path,
) -> None:
    log = _HeldLog(tmp_path)
    backend = SingleNodeBackend(log, server_id="n1", rpc_addr="127.0.0.1:0")
    backend.start()
    service = LogService(SingleLogTopics(backend, {}), ServerMetrics(None))
    total = 4 * STREAM_PIPELINE_BYTES // RECORD
    pulled = 0
    sent_all = asyncio.Event()

    async def requests() -> AsyncIterator[log_pb2.ProduceRequest]:
        nonlocal pulled
        for i in range(total):
            pulled += 1
            yield log_pb2.ProduceRequest(record=Record(value=bytes([i % 256]) * RECORD))
        sent_all.set()

    answers = service._produce_stream(requests(), None)  # type: ignore[arg-type]
    first = asyncio.ensure_future(anext(answers))
    try:
        # The appends are held: a stream without a budget reads all of its client's records.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sent_all.wait(), 1.0)
        assert pulled * RECORD <= STREAM_PIPELINE_BYTES + 2 * RECORD, f"{pulled} records read"
        log.release.set()
        offsets = [(await first).offset] + [a.offset async for a in answers]
        assert offsets == list(range(total))
    finally:
        log.release.set()
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await answers.aclose()
        await backend.close()
