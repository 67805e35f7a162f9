"""A group member's pure state: joining, following an assignment (revoke, then add),
positions of what was yielded, what to commit, seek/pause/resume and fencing."""

from __future__ import annotations

import pytest

from replog.client.consumer_state import (
    ConsumerRecords,
    ConsumerState,
    record_from,
    records_from,
    start_offset,
)
from replog.client.groups import HeartbeatAnswer
from replog.errors import InvalidArgumentError
from replog.v1.record_pb2 import Header, Record

A0, A1, A2 = ("orders", 0), ("orders", 1), ("orders", 2)


def answer(epoch: int, *owned: tuple[str, int], member: str = "m1") -> HeartbeatAnswer:
    return HeartbeatAnswer(member, epoch, frozenset(owned), 250)


def joined(*owned: tuple[str, int]) -> ConsumerState:
    state = ConsumerState(["orders"], auto_commit_interval_ms=1000)
    change = state.on_answer(answer(1, *owned))
    for tp in sorted(change.added):
        state.start(tp, 0, 0)  # committed at 0 already
    return state


def test_a_new_member_joins_with_epoch_zero_no_id_and_its_subscription() -> None:
    fields = ConsumerState(["orders", "refunds"]).heartbeat_fields()
    assert (fields.member_id, fields.member_epoch) == ("", 0)
    assert fields.topics == ("orders", "refunds")
    assert fields.owned == frozenset()


def test_after_joining_heartbeats_carry_the_id_epoch_and_owned_partitions_not_the_topics() -> None:
    state = joined(A0, A1)
    fields = state.heartbeat_fields()
    assert (fields.member_id, fields.member_epoch, fields.topics) == ("m1", 1, None)
    assert fields.owned == {A0, A1}
    assert state.heartbeat_interval_s == 0.25


def test_an_answer_that_drops_partitions_revokes_them_and_one_that_adds_starts_them() -> None:
    state = joined(A0, A1)
    change = state.on_answer(answer(2, A1, A2))
    assert change.revoked == {A0}
    assert change.added == {A2}
    # Until released, a revoked partition is still reported as owned (the coordinator
    # gives it to nobody else meanwhile).
    assert A0 in state.heartbeat_fields().owned
    state.release(change.revoked)
    assert state.heartbeat_fields().owned == {A1}


def test_positions_move_past_each_yielded_record_and_only_moved_ones_are_committed() -> None:
    state = joined(A0, A1)
    gen = state.fetch_from(A0)
    assert gen is not None
    assert state.yielded(A0, 0, gen[0])
    assert state.yielded(A0, 1, gen[0])
    assert state.to_commit() == {A0: 2}
    state.committed({A0: 2}, now=5.0)
    assert state.to_commit() == {}
    assert state.yielded(A0, 2, gen[0])
    assert state.to_commit([A1]) == {}
    assert state.to_commit([A0, A1]) == {A0: 3}


def test_a_start_position_never_committed_is_committed_so_a_successor_starts_there() -> None:
    state = ConsumerState(["orders"])
    state.on_answer(answer(1, A0, A1))
    state.start(A0, 20, -1)  # "latest": nothing committed yet
    state.start(A1, 4, 4)
    assert state.to_commit() == {A0: 20}


def test_a_record_of_a_stale_fetch_is_dropped_not_yielded_after_a_seek() -> None:
    state = joined(A0)
    old = state.fetch_from(A0)
    assert old is not None
    new_gen = state.seek(A0, 40)
    assert not state.yielded(A0, 7, old[0])
    assert state.position(A0) == 40
    assert state.yielded(A0, 40, new_gen)
    assert state.position(A0) == 41


def test_a_record_behind_the_position_is_not_yielded_twice() -> None:
    state = joined(A0)
    gen = state.seek(A0, 10)
    assert state.yielded(A0, 10, gen)
    assert not state.yielded(A0, 10, gen)
    assert not state.yielded(A0, 3, gen)


def test_a_revoked_partition_yields_nothing_more_and_is_not_committed() -> None:
    state = joined(A0, A1)
    gen = state.fetch_from(A0)
    assert gen is not None
    state.release([A0])
    assert not state.yielded(A0, 0, gen[0])
    assert state.to_commit() == {}
    assert not state.current(A0, gen[0])


def test_a_paused_partition_is_not_fetched_until_resumed_from_its_position() -> None:
    state = joined(A0)
    gen = state.seek(A0, 5)
    assert state.yielded(A0, 5, gen)
    state.pause([A0])
    assert state.paused() == {A0}
    assert state.fetch_from(A0) is None
    assert not state.current(A0, gen)
    assert state.resume([A0]) == [A0]
    resumed = state.fetch_from(A0)
    assert resumed is not None
    assert resumed[1] == 6
    assert resumed[0] != gen


def test_seek_or_pause_of_a_partition_not_assigned_is_refused() -> None:
    state = joined(A0)
    with pytest.raises(InvalidArgumentError, match="not assigned"):
        state.seek(A2, 0)
    with pytest.raises(InvalidArgumentError, match="not assigned"):
        state.pause([A2])
    with pytest.raises(InvalidArgumentError):
        state.seek(A0, -1)


def test_a_fenced_member_drops_everything_and_rejoins_as_a_new_member() -> None:
    state = joined(A0, A1)
    assert state.fenced() == {A0, A1}
    fields = state.heartbeat_fields()
    assert (fields.member_id, fields.member_epoch, fields.owned) == ("", 0, frozenset())
    assert fields.topics == ("orders",)
    assert state.to_commit() == {}


def test_auto_commit_is_due_an_interval_after_the_last_commit() -> None:
    state = ConsumerState(["orders"], auto_commit_interval_ms=1000, now=10.0)
    assert not state.commit_due(10.5)
    assert state.commit_due(11.0)
    state.committed({}, now=11.0)
    assert not state.commit_due(11.9)
    assert state.next_wakeup(20.0, auto_commit=True) == 12.0
    assert state.next_wakeup(11.5, auto_commit=True) == 11.5
    assert state.next_wakeup(20.0, auto_commit=False) == 20.0


@pytest.mark.parametrize(
    ("committed", "reset", "expected"),
    [
        (7, "latest", 7),
        (7, "earliest", 7),
        (-1, "latest", 20),
        (-1, "earliest", 5),
        (2, "earliest", 5),  # committed below the retained range
        (30, "latest", 20),  # past the end (a topic recreated)
    ],
)
def test_a_new_partition_starts_at_its_commit_else_where_auto_offset_reset_says(
    committed: int, reset: str, expected: int
) -> None:
    assert start_offset(committed, 5, 20, reset) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topics": []}, "topics"),
        ({"topics": "orders"}, "topics"),
        ({"topics": ["orders"], "auto_offset_reset": "smallest"}, "auto_offset_reset"),
        ({"topics": ["orders"], "auto_commit_interval_ms": 0}, "auto_commit_interval_ms"),
    ],
)
def test_bad_settings_are_refused_with_a_typed_error(
    kwargs: dict[str, object], message: str
) -> None:
    topics = kwargs.pop("topics")
    with pytest.raises(InvalidArgumentError, match=message):
        ConsumerState(topics, **kwargs)  # type: ignore[arg-type]


def test_a_consumer_record_carries_where_it_is_its_key_value_headers_and_time() -> None:
    raw = Record(value=b"v", key=b"k", offset=9, timestamp_ms=1234)
    raw.headers.extend([Header(key="h", value=b"x")])
    record = record_from("orders", 2, raw)
    assert (record.topic, record.partition, record.offset) == ("orders", 2, 9)
    assert (record.key, record.value, record.headers, record.timestamp) == (
        b"k",
        b"v",
        (("h", b"x"),),
        1234,
    )


def test_a_failed_auto_commit_is_retried_later_not_at_once() -> None:
    state = ConsumerState(["orders"], auto_commit_interval_ms=1000, now=0.0)
    assert state.commit_due(1.0)
    state.retry_commit_at(2.0)
    assert not state.commit_due(1.5)
    assert state.commit_due(2.0)


def test_a_background_commit_leaves_out_the_record_the_caller_still_holds() -> None:
    state = joined(A0, A1)
    gen0, gen1 = state.fetch_from(A0), state.fetch_from(A1)
    assert gen0 is not None and gen1 is not None
    assert state.yielded(A1, 0, gen1[0])
    state.caller_done()
    assert state.yielded(A0, 0, gen0[0])
    assert state.yielded(A0, 1, gen0[0])  # offset 1 is in the caller's hands
    assert state.to_commit(in_hand=False) == {A0: 1, A1: 1}
    assert state.to_commit() == {A0: 2, A1: 1}  # commit() / close(): the caller is done
    state.caller_done()  # it asks for the next record: offset 1 was processed
    assert state.to_commit(in_hand=False) == {A0: 2, A1: 1}


def test_a_record_in_hand_on_a_partition_given_up_and_taken_back_is_forgotten() -> None:
    state = joined(A0)
    gen = state.fetch_from(A0)
    assert gen is not None
    assert state.yielded(A0, 0, gen[0])
    state.release([A0])
    state.start(A0, 30, 30)  # back, committed further on by another member meanwhile
    assert state.to_commit(in_hand=False) == {}


def test_a_batch_is_given_past_the_position_and_held_until_the_caller_is_done() -> None:
    state = joined(A0)
    generation = state.fetch_from(A0)
    assert generation is not None
    records = [Record(offset=o, value=b"v") for o in range(5)]
    state.yielded(A0, 0, generation[0])  # offset 0 was given one by one before
    given = state.yielded_batch(A0, generation[0], records)
    assert [r.offset for r in given] == [1, 2, 3, 4]
    assert state.to_commit(in_hand=False) == {A0: 1}  # the batch is still being processed
    state.caller_done()
    assert state.to_commit(in_hand=False) == {A0: 5}
    assert state.yielded_batch(A0, generation[0] + 1, records) == []  # a stale fetch


def test_records_from_keeps_every_field_as_record_from_does() -> None:
    records = [
        Record(
            offset=3, key=b"k", value=b"v", timestamp_ms=7, headers=[Header(key="h", value=b"1")]
        ),
        Record(offset=4, value=b"w"),
    ]
    assert records_from("orders", 2, records) == [record_from("orders", 2, r) for r in records]
    got = records_from("orders", 2, records)
    assert list(got) == [record_from("orders", 2, r) for r in records]
    assert [got[0], got[1], got[-1]] == [
        record_from("orders", 2, r) for r in (*records, records[-1])
    ]


def test_consumer_records_is_a_read_only_sequence_made_on_access() -> None:
    records = [Record(offset=o, value=bytes([o])) for o in range(5)]
    got = records_from("t", 1, records)
    assert len(got) == 5 and bool(got) and not records_from("t", 1, [])
    assert got[1:3] == [record_from("t", 1, r) for r in records[1:3]]
    assert isinstance(got[1:3], ConsumerRecords) and len(got[::2]) == 3
    assert got[4].offset == 4 and got[4].topic == "t" and got[4].partition == 1
    assert [r.value for r in reversed(got)] == [bytes([o]) for o in range(4, -1, -1)]
    assert got.index(record_from("t", 1, records[2])) == 2
    assert got == tuple(got) and got != [got[0]] and got != "x"
    with pytest.raises(IndexError):
        got[5]
    with pytest.raises(TypeError):
        hash(got)
