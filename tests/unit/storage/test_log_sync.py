"""Log durability policies: group commit under concurrency, and the interval flusher."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from replog.storage import Log, LogConfig
from replog.storage.faultfs import FaultyFileSystem
from replog.storage.files import FileHandle, OsFileSystem


class CountingFileSystem:
    """The real file system, counting every fsync of a file."""

    def __init__(self) -> None:
        self._fs = OsFileSystem()
        self.syncs = 0
        self._lock = threading.Lock()

    def open(self, path: str) -> FileHandle:
        handle = self._fs.open(path)
        counter = self

        class Counted:
            def __getattr__(self, name: str) -> Any:
                return getattr(handle, name)

            def sync(self) -> None:
                with counter._lock:
                    counter.syncs += 1
                handle.sync()

        return Counted()  # type: ignore[return-value]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


def wait_for(condition: Callable[[], bool], deadline_s: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or the deadline passes; return whether it held."""
    end = time.monotonic() + deadline_s
    pause = threading.Event()
    while time.monotonic() < end:
        if condition():
            return True
        pause.wait(0.002)
    return condition()


def run_appenders(log: Log, threads: int, appends: int) -> dict[int, bytes]:
    """Append from several threads; return every acknowledged offset and its value, after
    checking that each append was durable when it returned."""
    acknowledged: dict[int, bytes] = {}
    not_durable: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(worker: int) -> None:
        start.wait()
        for i in range(appends):
            value = f"{worker}-{i}".encode()
            offset = log.append(value)
            durable = log.durable_offset > offset
            with lock:
                acknowledged[offset] = value
                if not durable:
                    not_durable.append(offset)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert not_durable == []
    return acknowledged


def test_concurrent_appenders_with_sync_always_share_fsyncs(log_dir: str) -> None:
    fs = CountingFileSystem()
    threads, appends = 8, 40
    with Log(log_dir, LogConfig(sync="always"), fs=fs) as log:  # type: ignore[arg-type]
        before = fs.syncs
        acknowledged = run_appenders(log, threads, appends)
        fsyncs = fs.syncs - before
        assert sorted(acknowledged) == list(range(threads * appends))
        assert all(log.read(o).value == v for o, v in acknowledged.items())
    assert 0 < fsyncs < threads * appends


def test_every_append_acknowledged_by_concurrent_appenders_survives_a_power_cut(
    fault_fs: FaultyFileSystem,
) -> None:
    log = Log(
        "/log", LogConfig(sync="always", max_store_bytes=4096, max_record_bytes=1024), fs=fault_fs
    )
    acknowledged = run_appenders(log, 4, 25)
    fault_fs.power_cut()
    with contextlib.suppress(OSError):
        log.close()
    with Log("/log", fs=fault_fs) as reopened:
        assert {o: reopened.read(o).value for o in acknowledged} == acknowledged


@pytest.mark.parametrize("interval_ms", [5, 50])
def test_the_interval_policy_makes_appends_durable_within_a_deadline(
    fault_fs: FaultyFileSystem, interval_ms: int
) -> None:
    config = LogConfig(sync="interval", sync_interval_ms=interval_ms)
    log = Log("/log", config, fs=fault_fs)
    try:
        log.append_batch([b"a", b"b", b"c"])
        assert wait_for(lambda: log.durable_offset == 3)
        fault_fs.power_cut()
    finally:
        with contextlib.suppress(OSError):
            log.close()
    with Log("/log", fs=fault_fs) as reopened:
        assert [reopened.read(o).value for o in range(3)] == [b"a", b"b", b"c"]


def test_the_never_policy_leaves_durability_to_an_explicit_sync(
    fault_fs: FaultyFileSystem,
) -> None:
    log = Log("/log", LogConfig(sync="never"), fs=fault_fs)
    log.append(b"synced")
    log.sync()
    assert log.durable_offset == 1
    log.append(b"maybe lost")
    assert log.durable_offset == 1
    fault_fs.power_cut()
    with contextlib.suppress(OSError):
        log.close()
    with Log("/log", fs=fault_fs) as reopened:
        assert reopened.next_offset == 1
        assert reopened.read(0).value == b"synced"
