"""The offsets topic's records add up to the same group state on every reader, and only
the latest coordinator's writes count."""

from __future__ import annotations

import pytest

from replog.broker.group_log import (
    GroupLogState,
    commit_record,
    commit_records,
    copy_batches,
    delete_record,
    epoch_record,
    start_record,
    state_records,
)
from replog.errors import CorruptRecordError
from replog.v1.record_pb2 import Record


def replay(records: list[Record]) -> tuple[GroupLogState, list[bool]]:
    state = GroupLogState()
    counted = [state.apply(offset, r.value) for offset, r in enumerate(records)]
    return state, counted


def test_commits_of_the_current_coordinator_count_and_the_latest_offset_wins() -> None:
    state, counted = replay(
        [
            start_record("a"),
            commit_record("a", "g", [("orders", 0, 5, ""), ("orders", 1, 7, "m")]),
            commit_record("a", "g", [("orders", 0, 9, "")]),
        ]
    )
    assert counted == [True, True, True]
    assert state.offsets == {"g": {("orders", 0): (9, ""), ("orders", 1): (7, "m")}}
    assert state.next_offset == 3


def test_a_write_of_a_replaced_coordinator_after_its_successor_started_is_ignored() -> None:
    state, counted = replay(
        [
            start_record("old"),
            commit_record("old", "g", [("orders", 0, 5, "")]),
            start_record("new"),
            commit_record("old", "g", [("orders", 0, 99, "")]),  # the deposed one, late
            epoch_record("old", "g", 40, "range"),
            delete_record("old", "g"),
        ]
    )
    assert counted == [True, True, True, False, False, False]
    assert state.offsets == {"g": {("orders", 0): (5, "")}}
    assert state.epochs == {}
    assert state.take_outcome(3) is False and state.take_outcome(1) is True
    assert state.take_outcome(1) is None  # taken once


def test_epochs_only_grow_and_a_delete_forgets_the_group() -> None:
    state, _ = replay(
        [
            start_record("a"),
            epoch_record("a", "g", 4, "range"),
            epoch_record("a", "g", 3, "range"),  # written out of order by racing heartbeats
            commit_record("a", "g", [("t", 0, 1, "")]),
        ]
    )
    assert state.epochs == {"g": 4} and state.assignors == {"g": "range"}
    assert state.groups() == {"g"}
    state.apply(4, delete_record("a", "g").value)
    assert state.groups() == set() and state.offsets == {}


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[1, 2]",
        b'{"k": "other"}',
        b'{"k": "commit", "inc": "a"}',
        b'{"k": "commit", "inc": "a", "g": "g", "o": [["t", "x", 1, ""]]}',
        b'{"k": "commit", "inc": "a", "g": "g", "o": 5}',
        b'{"k": "epoch", "inc": "a", "g": "g", "e": "4", "a": "range"}',
        b"\xff\xfe",
    ],
)
def test_a_record_that_is_not_a_group_record_is_refused_and_changes_nothing(value: bytes) -> None:
    state, _ = replay([start_record("a"), commit_record("a", "g", [("t", 0, 1, "")])])
    before = (dict(state.offsets["g"]), dict(state.epochs))
    with pytest.raises(CorruptRecordError):
        state.apply(2, value)
    assert (state.offsets["g"], state.epochs) == before
    assert state.next_offset == 3  # skipped: the reader moves past it


def test_a_compaction_copy_after_a_new_start_rebuilds_the_same_state_alone() -> None:
    state, _ = replay(
        [
            start_record("a"),
            commit_record("a", "g", [("orders", 0, 5, "x"), ("orders", 1, 7, "")]),
            epoch_record("a", "g", 3, "range"),
            commit_record("a", "h", [("t", 0, 1, "")]),
            delete_record("a", "h"),
            epoch_record("a", "k", 2, "cooperative-sticky"),
        ]
    )
    copy = [start_record("b"), *state_records(state, "b")]
    rebuilt, counted = replay(copy)  # a reader whose log front (everything before) is gone
    assert all(counted)
    assert (rebuilt.offsets, rebuilt.epochs, rebuilt.assignors) == (
        state.offsets,
        state.epochs,
        state.assignors,
    )


def test_a_large_commit_spans_records_under_the_budget_and_replays_to_the_same_offsets() -> None:
    rows = [("orders", p, p * 10, "m" * 4000) for p in range(100)]  # ~400 kB in all
    records = commit_records("a", "g", rows, max_bytes=64 * 1024)
    assert len(records) > 1
    assert all(len(r.value) < 70 * 1024 for r in records)
    state, counted = replay([start_record("a"), *records])
    assert all(counted)
    assert state.offsets["g"] == {("orders", p): (p * 10, "m" * 4000) for p in range(100)}
    batches = copy_batches(records, max_bytes=128 * 1024)
    assert [r for b in batches for r in b] == records and len(batches) > 1
