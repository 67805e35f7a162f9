"""A crash-test harness: random workloads on a FaultyFileSystem, a history of what was
written and what was promised durable, and a checker run after recovery."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field

from replog.errors import ReplogError
from replog.storage import Log, LogConfig
from replog.storage.config import SyncPolicy
from replog.storage.faultfs import FaultyFileSystem

DIRECTORY = "/log"


def small_config(sync: SyncPolicy) -> LogConfig:
    return LogConfig(
        max_store_bytes=512,
        max_index_bytes=120,
        max_record_bytes=200,
        sync=sync,
        sync_interval_ms=1,
    )


@dataclass
class History:
    """What the workload did: every value ever written at each offset, the records that
    should be in the log now, and those the log promised were durable."""

    written: dict[int, set[bytes]] = field(default_factory=dict)
    current: dict[int, bytes] = field(default_factory=dict)
    required: dict[int, bytes] = field(default_factory=dict)
    lowest: int = 0

    def attempt(self, base: int, batch: list[bytes]) -> None:
        """Before a write: an unacknowledged write may still reach the disk."""
        for i, value in enumerate(batch):
            self.written.setdefault(base + i, set()).add(value)

    def wrote(self, base: int, batch: list[bytes]) -> None:
        for i, value in enumerate(batch):
            self.current[base + i] = value

    def promised(self, durable_offset: int) -> None:
        self.required = {o: v for o, v in self.current.items() if o < durable_offset}

    def cut_after(self, offset: int) -> None:
        for o in [o for o in self.current if o > offset]:
            del self.current[o]
        self.required = {o: v for o, v in self.required.items() if o <= offset}


def run_workload(
    log: Log, rng: random.Random, steps: int, history: History, *, truncations: bool = True
) -> None:
    """Random appends, batches, syncs and tail truncations; stops at the first storage error
    (a crash point or an injected fault). Rolls happen as the small segments fill."""
    tag = rng.getrandbits(32)
    for step in range(steps):
        choice = rng.random()
        try:
            if choice < 0.5:
                value = b"%08x-%d-" % (tag, step) + bytes(rng.randrange(0, 60))
                history.attempt(log.next_offset, [value])
                offset = log.append(value)
                history.wrote(offset, [value])
            elif choice < 0.85:
                batch = [
                    b"%08x-%d-%d-" % (tag, step, i) + bytes(rng.randrange(0, 40))
                    for i in range(rng.randint(1, 8))
                ]
                history.attempt(log.next_offset, batch)
                base = log.append_batch(batch)
                history.wrote(base, batch)
            elif choice < 0.93 or not truncations:
                log.sync()
            elif log.next_offset > log.lowest_offset:
                offset = rng.randrange(log.lowest_offset - 1, log.next_offset)
                # Whether or not it completes, records after the offset are no longer owed.
                history.cut_after(offset)
                log.truncate_after(offset)
        except (ReplogError, OSError):
            return
        if log.config.sync == "always" and choice < 0.85:
            assert log.durable_offset == log.next_offset, "an acknowledged append is not durable"
        history.promised(log.durable_offset)


def abandon(log: Log) -> None:
    """Forget a log whose process "died" at a power cut (its handles are dead)."""
    with contextlib.suppress(ReplogError, OSError, ValueError):
        log.close()


def check_recovered(log: Log, history: History, context: str) -> None:
    """The recovered log is consistent with the history (see module doc)."""
    assert log.lowest_offset <= log.next_offset, context
    assert log.lowest_offset == history.lowest, context
    readable = {}
    for offset in range(log.lowest_offset, log.next_offset):
        record = log.read(offset)  # CorruptRecordError here is a failure: offsets are dense
        assert record.offset == offset, context
        assert record.value in history.written.get(offset, set()), (
            f"{context}: offset {offset} holds a value never written there"
        )
        readable[offset] = record.value
    batch = log.read_batch(log.lowest_offset) if log.next_offset > log.lowest_offset else []
    assert [r.value for r in batch] == [readable[log.lowest_offset + i] for i in range(len(batch))]
    missing = {o: v for o, v in history.required.items() if readable.get(o) != v}
    assert not missing, f"{context}: records promised durable were lost or changed: {missing}"


def reopen(fs: FaultyFileSystem, sync: SyncPolicy) -> Log:
    return Log(DIRECTORY, small_config(sync), fs=fs)
