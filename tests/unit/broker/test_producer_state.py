"""The producer state of a partition: Kafka's sequence rules, the leader's overlay, the
stamped records it is rebuilt from, and its checkpoint beside a real Log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.api.backend import Conditions
from replog.broker.admission import admit
from replog.broker.producer_log import PartitionProducers
from replog.broker.producer_records import producer_fields, stamp
from replog.broker.producer_state import (
    KEEP_BATCHES,
    SEQUENCE_MODULUS,
    BatchMeta,
    Overlay,
    ProducerStates,
)
from replog.errors import (
    ExpectedOffsetError,
    OutOfOrderSequenceError,
    ProducerFencedError,
    UnknownProducerError,
    UnsupportedError,
)
from replog.storage import Log
from replog.storage.codec import encode_records
from replog.v1.record_pb2 import Header, Record

PID = 2**62 + 17


def _states_with(*batches: tuple[int, int, int]) -> ProducerStates:
    states = ProducerStates()
    for seq, count, offset in batches:
        states.record(PID, 0, BatchMeta(seq, count, offset), 1_000)
    return states


def test_a_new_producer_starts_at_sequence_0_and_anything_else_is_unknown() -> None:
    states = ProducerStates()
    assert states.check(PID, 0, 0, 5) is None
    with pytest.raises(UnknownProducerError) as raised:
        states.check(PID, 0, 5, 5)
    assert raised.value.producer_id == PID


def test_the_next_batch_follows_the_last_sequence_and_a_gap_names_the_expected_one() -> None:
    states = _states_with((0, 5, 100))
    assert states.check(PID, 0, 5, 3) is None
    with pytest.raises(OutOfOrderSequenceError) as raised:
        states.check(PID, 0, 8, 3)
    assert (raised.value.expected, raised.value.got) == (5, 8)


def test_a_retry_of_any_of_the_last_five_batches_is_a_duplicate_with_its_offsets() -> None:
    states = _states_with(*[(i * 2, 2, 100 + i * 2) for i in range(KEEP_BATCHES + 2)])
    kept = [(i * 2, 100 + i * 2) for i in range(2, KEEP_BATCHES + 2)]
    for seq, offset in kept:
        duplicate = states.check(PID, 0, seq, 2)
        assert duplicate is not None and duplicate.base_offset == offset
    with pytest.raises(OutOfOrderSequenceError):  # older than the five kept
        states.check(PID, 0, 0, 2)


def test_a_batch_with_a_kept_start_but_another_length_is_out_of_order() -> None:
    states = _states_with((0, 5, 100))
    with pytest.raises(OutOfOrderSequenceError):
        states.check(PID, 0, 0, 4)


def test_an_older_epoch_is_fenced_and_a_newer_one_restarts_at_0() -> None:
    states = ProducerStates()
    states.record(PID, 3, BatchMeta(0, 5, 100), 1_000)
    with pytest.raises(ProducerFencedError) as raised:
        states.check(PID, 2, 5, 1)
    assert (raised.value.epoch, raised.value.current) == (2, 3)
    assert states.check(PID, 4, 0, 1) is None
    with pytest.raises(OutOfOrderSequenceError):
        states.check(PID, 4, 5, 1)
    states.record(PID, 4, BatchMeta(0, 1, 105), 1_001)
    entry = states.entry(PID)
    assert entry is not None and entry.epoch == 4 and len(entry.batches) == 1


def test_sequences_wrap_at_2_to_the_31() -> None:
    states = _states_with((SEQUENCE_MODULUS - 2, 2, 100))
    assert states.check(PID, 0, 0, 1) is None


def test_a_producer_silent_past_the_expiration_is_forgotten_by_record_time() -> None:
    states = ProducerStates(expiration_ms=1_000)
    states.record(PID, 0, BatchMeta(0, 1, 0), 10_000)
    states.record(7, 0, BatchMeta(0, 1, 1), 10_999)
    assert states.entry(PID) is not None
    states.record(7, 0, BatchMeta(1, 1, 2), 11_001)  # "now" moves with the records
    assert states.entry(PID) is None
    with pytest.raises(UnknownProducerError):
        states.check(PID, 0, 1, 1)
    assert states.sweep() == 1 and len(states) == 1


def test_forgetting_a_cut_suffix_drops_its_batches_and_empty_producers() -> None:
    states = _states_with((0, 2, 10), (2, 2, 12))
    states.record(7, 0, BatchMeta(0, 1, 20), 1_000)
    states.forget_after(12)
    entry = states.entry(PID)
    assert entry is not None and [b.base_offset for b in entry.batches] == [10]
    assert states.entry(7) is None


def test_the_overlay_sees_pending_batches_without_changing_the_applied_state() -> None:
    states = _states_with((0, 2, 10))
    overlay = Overlay(states)
    overlay.record(PID, 0, BatchMeta(2, 2, 12, term=4), 1_000)
    assert overlay.check(PID, 0, 4, 1) is None  # pipelined after the pending batch
    pending = overlay.check(PID, 0, 2, 2)
    assert pending is not None and pending.term == 4
    assert states.check(PID, 0, 2, 2) is None  # the applied state does not know it yet
    states.record(PID, 0, BatchMeta(2, 2, 12, term=4), 1_000)
    overlay.prune(12)  # its last record, 13, is not applied yet
    assert len(overlay) == 1
    overlay.prune(13)
    assert len(overlay) == 0
    overlay.record(PID, 0, BatchMeta(4, 1, 14), 1_000)
    overlay.commit_into_base()
    assert states.check(PID, 0, 5, 1) is None and len(overlay) == 0


def test_admission_answers_duplicates_before_conditions_and_stamps_the_first_record() -> None:
    states = _states_with((0, 2, 10))
    overlay = Overlay(states)
    dup = admit(
        [b"a", b"b"],
        Conditions(PID, 0, 0, 999, None),  # held when the batch was first appended
        overlay=overlay,
        next_offset=20,
    )
    assert isinstance(dup, BatchMeta) and dup.base_offset == 10
    with pytest.raises(ExpectedOffsetError) as raised:
        admit(
            [b"c"],
            Conditions(PID, 0, 2, 19, None),
            overlay=overlay,
            next_offset=20,
        )
    assert (raised.value.expected, raised.value.actual) == (19, 20)
    values = admit(
        [b"c", b"d"],
        Conditions(PID, 0, 2, 20, None),
        overlay=overlay,
        next_offset=20,
    )
    assert not isinstance(values, BatchMeta)
    first = values[0]
    assert isinstance(first, Record) and (first.producer_id, first.sequence) == (PID, 2)
    assert first.batch_records == 2 and values[1] == b"d"
    assert len(overlay) == 0  # the caller records what it appends


def test_a_per_key_condition_is_refused_as_unsupported_not_ignored() -> None:
    with pytest.raises(UnsupportedError):
        admit(
            [b"a"],
            Conditions(0, 0, 0, None, -1),
            overlay=Overlay(ProducerStates()),
            next_offset=0,
        )


values = st.binary(max_size=64)
keys = st.none() | st.binary(min_size=1, max_size=16)


@given(
    st.lists(st.tuples(values, keys), min_size=1, max_size=5),
    st.integers(1, 2**63 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, SEQUENCE_MODULUS - 1),
    st.booleans(),
)
def test_a_stamped_first_record_reads_back_exactly_and_no_other_record_does(
    batch: list[tuple[bytes, bytes | None]],
    producer_id: int,
    epoch: int,
    sequence: int,
    continues: bool,
) -> None:
    inputs: list[bytes | Record] = [
        v if k is None else Record(value=v, key=k, headers=[Header(key="h", value=v)])
        for v, k in batch
    ]
    payloads = encode_records(stamp(inputs, producer_id, epoch, sequence), 7, 123, 1 << 20, term=2)
    suffix = b"\x40\x01" if continues else b""
    fields = producer_fields(payloads[0] + suffix)
    assert fields == (producer_id, epoch, sequence, len(batch), 123, 2)
    assert all(producer_fields(p + suffix) is None for p in payloads[1:])


# -- beside a real Log ---------------------------------------------------------------------


def _append(log: Log, producers: PartitionProducers, producer_id: int, seq: int, n: int) -> int:
    values = stamp([b"v%d" % i for i in range(n)], producer_id, 0, seq)
    base = log.append_batch(values)
    return base


def _read(log: Log):  # type: ignore[no-untyped-def]
    return lambda offset, n: log.read_payloads(offset, max_records=n)


def test_a_partition_rebuilds_its_producers_from_the_log_alone(tmp_path: Path) -> None:
    log = Log(tmp_path / "p")
    producers = PartitionProducers(Path(log.directory))
    for i in range(10):
        _append(log, producers, PID, i * 3, 3)
    _append(log, producers, 5, 0, 1)
    assert producers.rebuild(_read(log), log.lowest_offset, log.next_offset) == 31
    duplicate = producers.states.check(PID, 0, 27, 3)
    assert duplicate is not None and duplicate.base_offset == 27
    assert producers.states.check(PID, 0, 30, 1) is None
    assert producers.states.check(5, 0, 1, 1) is None
    log.close()


def test_a_checkpoint_limits_the_replay_and_gives_the_same_state(tmp_path: Path) -> None:
    log = Log(tmp_path / "p")
    first = PartitionProducers(Path(log.directory))
    for i in range(4):
        _append(log, first, PID, i, 1)
    first.rebuild(_read(log), log.lowest_offset, log.next_offset)
    first.write(first.snapshot())
    assert (Path(log.directory) / "producers.json").stat().st_mode & 0o777 == 0o600
    for i in range(4, 6):
        _append(log, first, PID, i, 1)
    second = PartitionProducers(Path(log.directory))
    assert second.rebuild(_read(log), log.lowest_offset, log.next_offset) == 2
    assert second.states.check(PID, 0, 6, 1) is None
    dup = second.states.check(PID, 0, 5, 1)
    assert dup is not None and dup.base_offset == 5
    log.close()


@pytest.mark.parametrize(
    "damage",
    [b"{not json", b'{"version": 1, "offset": 3}', b'{"version": 99}', "past-the-end"],
    ids=["garbage", "fields-missing", "other-version", "past-the-end"],
)
def test_a_damaged_or_stale_checkpoint_is_ignored_and_the_log_replayed(
    tmp_path: Path, damage: bytes | str
) -> None:
    log = Log(tmp_path / "p")
    producers = PartitionProducers(Path(log.directory))
    for i in range(3):
        _append(log, producers, PID, i, 1)
    path = Path(log.directory) / "producers.json"
    if damage == "past-the-end":  # a checkpoint of records the log no longer has
        doc = {"version": 1, "offset": 50, "newest_timestamp_ms": 0, "producers": []}
        path.write_text(json.dumps(doc))
    else:
        assert isinstance(damage, bytes)
        path.write_bytes(damage)
    again = PartitionProducers(Path(log.directory))
    assert again.rebuild(_read(log), log.lowest_offset, log.next_offset) == 3
    assert again.states.check(PID, 0, 3, 1) is None
    log.close()
