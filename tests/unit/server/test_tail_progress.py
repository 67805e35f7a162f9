"""A tailing stream never spins: even a backend that wakes it with nothing to read cannot
make it re-read without really suspending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from replog.api.backend import ReadResult
from replog.server.backend import SingleNodeBackend
from replog.server.broker_backend import SingleLogTopics
from replog.server.grpc_service import LogService
from replog.server.metrics import ServerMetrics
from replog.storage import Log, LogConfig


class _RestlessBackend(SingleNodeBackend):
    """A real backend whose ``wait_for_data`` breaks its promise: it returns True at once."""

    reads = 0

    def read_from(self, offset: int, max_records: int, max_bytes: int) -> ReadResult:
        self.reads += 1
        return super().read_from(offset, max_records, max_bytes)

    async def wait_for_data(self, offset: int, timeout_s: float | None) -> bool:
        return True


@pytest.mark.timeout(5)  # without the guard the event loop never runs again
async def test_a_tail_woken_without_data_backs_off_instead_of_spinning(tmp_path: Path) -> None:
    log = Log(tmp_path, LogConfig(sync="never"))
    backend = _RestlessBackend(log, server_id="n1", rpc_addr="127.0.0.1:0")
    backend.start()
    service = LogService(SingleLogTopics(backend, {}), ServerMetrics(None))
    tail = service._tail(backend, 0, 1, 1)
    reader = asyncio.ensure_future(anext(tail))
    try:
        await asyncio.sleep(0.5)  # the loop must get here while the tail waits for data
        assert 2 <= backend.reads <= 20, backend.reads
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await tail.aclose()
        await backend.close()
