"""Log and MemoryLog driven side by side against a plain model, through random operations.

The model is a dict from offset to value plus two lower bounds: ``Log.truncate`` drops whole
segments only (its ``lowest_offset`` may stay below the requested offset), while
``MemoryLog.truncate`` is record-exact. Everything else must agree exactly.
"""

from __future__ import annotations

import contextlib

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from replog.errors import OffsetOutOfRangeError
from replog.storage import Log, LogConfig, MemoryLog
from replog.storage.faultfs import FaultyFileSystem

CONFIG = LogConfig(max_store_bytes=512, max_index_bytes=120, max_record_bytes=200)
DIRECTORY = "/log"
values = st.binary(min_size=0, max_size=120)


def clock() -> int:
    return 1000


class LogVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = FaultyFileSystem()
        self.log = Log(DIRECTORY, CONFIG, fs=self.fs, clock_ms=clock)
        self.memory = MemoryLog(CONFIG, clock_ms=clock)
        self.model: dict[int, bytes] = {}
        self.next = 0
        self.memory_lowest = 0

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.log.close()

    @property
    def common_lowest(self) -> int:
        return max(self.log.lowest_offset, self.memory_lowest)

    # -- appends ----------------------------------------------------------------------

    @rule(value=values, key=st.none() | st.binary(max_size=8))
    def append(self, value: bytes, key: bytes | None) -> None:
        offset = self.log.append(value, key=key)
        assert self.memory.append(value, key=key) == offset == self.next
        self.model[offset] = value
        self.next += 1

    @rule(batch=st.lists(values, min_size=1, max_size=12))
    def append_batch(self, batch: list[bytes]) -> None:
        base = self.log.append_batch(batch)
        assert self.memory.append_batch(batch) == base == self.next
        for i, value in enumerate(batch):
            self.model[base + i] = value
        self.next += len(batch)

    # -- reads ------------------------------------------------------------------------

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.log.lowest_offset - 2, self.next + 1))
        if self.log.lowest_offset <= offset < self.next:
            record = self.log.read(offset)
            assert (record.offset, record.value) == (offset, self.model[offset])
            if offset >= self.memory_lowest:
                assert self.memory.read(offset) == record
        else:
            for target in (self.log, self.memory):
                with contextlib.suppress(OffsetOutOfRangeError):
                    target.read(offset)
                    raise AssertionError(f"read({offset}) outside the range succeeded")

    @precondition(lambda self: self.next > 0)
    @rule(data=st.data(), max_records=st.integers(1, 30), max_bytes=st.integers(1, 2000))
    def read_batch(self, data: st.DataObject, max_records: int, max_bytes: int) -> None:
        offset = data.draw(st.integers(self.common_lowest, self.next))
        from_log = self.log.read_batch(offset, max_records=max_records, max_bytes=max_bytes)
        from_memory = self.memory.read_batch(offset, max_records=max_records, max_bytes=max_bytes)
        if offset == self.next:
            assert from_log == from_memory == []
            return
        # Both return at least one record; the Log may stop earlier, at a segment's end.
        assert 1 <= len(from_log) <= len(from_memory) <= max_records
        assert from_memory[: len(from_log)] == from_log
        for i, record in enumerate(from_memory):
            assert (record.offset, record.value) == (offset + i, self.model[offset + i])

    # -- lifecycle --------------------------------------------------------------------

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = Log(DIRECTORY, CONFIG, fs=self.fs, clock_ms=clock)

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        lowest = data.draw(st.integers(0, self.next))
        before = self.log.lowest_offset
        self.log.truncate(lowest)
        self.memory.truncate(lowest)
        after = self.log.lowest_offset
        assert before <= after <= max(before, lowest)
        if lowest == self.next:
            assert after == self.next
        self.memory_lowest = max(self.memory_lowest, lowest)
        assert self.memory.lowest_offset == self.memory_lowest
        for offset in [o for o in self.model if o < after]:
            del self.model[offset]

    @rule(data=st.data())
    def truncate_after(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.common_lowest - 1, self.next - 1))
        self.log.truncate_after(offset)
        self.memory.truncate_after(offset)
        for dropped in range(offset + 1, self.next):
            self.model.pop(dropped, None)
        self.next = offset + 1

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def offsets_agree(self) -> None:
        assert self.log.next_offset == self.memory.next_offset == self.next
        assert self.log.lowest_offset <= self.memory.lowest_offset
        assert sorted(self.model) == list(range(self.log.lowest_offset, self.next))
        expected_highest = None if self.log.lowest_offset == self.next else self.next - 1
        assert self.log.highest_offset == expected_highest


LogVersusModel.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
TestLogAgainstModel = LogVersusModel.TestCase
