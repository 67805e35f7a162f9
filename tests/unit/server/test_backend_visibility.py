"""The single-node backend shows consumers only acknowledged (durable) records."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from replog.errors import OffsetOutOfRangeError
from replog.server.backend import SingleNodeBackend
from replog.storage import Log, LogConfig


class _SlowSyncLog(Log):
    """A Log whose appends reach the file but wait, as if in fsync, until released."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, LogConfig(sync="always"))
        self.written = threading.Event()
        self.release = threading.Event()

    def append_batch(self, values):  # type: ignore[no-untyped-def]
        base = super().append_batch(values)
        self.written.set()
        assert self.release.wait(10), "the test never released the append"
        return base


async def test_a_record_written_but_not_yet_durable_is_invisible_to_consumers(
    tmp_path: Path,
) -> None:
    log = _SlowSyncLog(tmp_path)
    backend = SingleNodeBackend(log, server_id="n1", rpc_addr="127.0.0.1:0")
    backend.start()
    try:
        produced = backend.submit([b"pending"])
        assert await asyncio.to_thread(log.written.wait, 10)
        assert log.next_offset == 1  # in the file, but not acknowledged yet
        assert backend.high_watermark == 0
        assert backend.read_from(0, 10, 1 << 20) == ([], 0)
        with pytest.raises(OffsetOutOfRangeError):
            backend.read(0)
        assert not await backend.wait_for_data(0, timeout_s=0.05)
        log.release.set()
        assert await asyncio.wait_for(produced, 10) == 0
        assert backend.high_watermark == 1
        assert await backend.wait_for_data(0, timeout_s=5)
        assert backend.read(0).value == b"pending"
        assert backend.read_from(0, 10, 1 << 20).next_offset == 1
    finally:
        log.release.set()
        await backend.close()
        log.close()
