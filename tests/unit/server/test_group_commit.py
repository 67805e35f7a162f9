"""Server-side group commit: many produce requests share one append, up to a bounded size."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from replog.server.backend import SingleNodeBackend
from replog.storage import Log, LogConfig


class _CountingLog(Log):
    """A Log that records how many values each append took, holding them until released."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, LogConfig(sync="never"))
        self.sizes: list[int] = []
        self.release = threading.Event()

    def append_batch(self, values):  # type: ignore[no-untyped-def]
        assert self.release.wait(20), "the test never released the append"
        self.sizes.append(len(values))
        return super().append_batch(values)


async def test_a_group_of_empty_records_is_bounded_by_their_count_not_only_their_bytes(
    tmp_path: Path,
) -> None:
    log = _CountingLog(tmp_path)
    backend = SingleNodeBackend(
        log, server_id="n1", rpc_addr="127.0.0.1:0", max_batch_records=100_000
    )
    backend.start()
    try:
        first = backend.submit([b""])
        queued = [backend.submit([b""] * 100_000) for _ in range(8)]
        log.release.set()
        offsets = await asyncio.wait_for(asyncio.gather(first, *queued), 60)
        assert offsets == [0, *range(1, 800_001, 100_000)]
        assert sum(log.sizes) == 800_001
        assert max(log.sizes) <= 16 * 1024 * 1024 // 64 + 100_000, log.sizes
    finally:
        log.release.set()
        await backend.close()
