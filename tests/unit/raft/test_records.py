"""What a leader proposes: produce requests grouped by size, and records built at their offsets
(with ``codec.encode_records``, as the node does)."""

from __future__ import annotations

import pytest

from replog.errors import RecordTooLargeError
from replog.raft.records import proposal_groups, turn_share
from replog.storage.codec import encode_records
from replog.v1.record_pb2 import Header, Record


def test_records_get_their_offset_term_and_timestamp_and_always_type_zero() -> None:
    keyed = Record(value=b"b", key=b"k", headers=[Header(key="h", value=b"1")], type=3)
    built = encode_records([b"a", keyed], 10, 99, 1000, term=4)
    records = [Record.FromString(p) for p in built]
    assert [(r.offset, r.term, r.timestamp_ms, r.type) for r in records] == [
        (10, 4, 99, 0),
        (11, 4, 99, 0),  # a control type never reaches the log as user data
    ]
    assert (records[0].value, records[1].key, records[1].headers[0].key) == (b"a", b"k", "h")
    assert keyed.type == 3  # the caller's record is left as it was


def test_a_record_over_the_limit_is_refused() -> None:
    with pytest.raises(RecordTooLargeError):
        encode_records([b"x" * 100], 1, 1, 50, term=1)


def test_proposals_are_cut_into_groups_of_about_max_bytes_in_order() -> None:
    queued = [([b"x" * 40], i) for i in range(5)]
    groups = list(proposal_groups(queued, 100, 1 << 30))
    assert [[tag for _, tag in g] for g in groups] == [[0, 1, 2], [3, 4]]
    assert list(proposal_groups([], 100, 1 << 30)) == []


def test_proposals_are_cut_by_record_count_too_and_a_request_is_never_split() -> None:
    queued = [([b"x"] * n, i) for i, n in enumerate((3, 3, 10, 1))]
    groups = list(proposal_groups(queued, 1 << 30, 5))
    assert [[tag for _, tag in g] for g in groups] == [[0, 1], [2], [3]]


def test_a_turn_takes_requests_up_to_its_record_budget_but_at_least_one() -> None:
    queued = [([b"x"] * n, i) for i, n in enumerate((3, 3, 10, 1))]
    assert turn_share(queued, 6) == 2
    assert turn_share(queued, 5) == 1
    assert turn_share(queued[2:], 5) == 1  # one request over the budget still goes alone
    assert turn_share([], 5) == 0


def test_a_produced_record_never_keeps_a_batch_continues_flag_of_its_own() -> None:
    # The flag marks an atomic batch's entries on disk; one set by a client (a pipeline
    # re-producing records it consumed) would make a restarted node take an acknowledged
    # record for the start of an incomplete batch, and drop it when elected.
    keyed = Record(value=b"v", key=b"k", batch_continues=True)
    built = encode_records([keyed, b"bare"], 10, 99, 1000, term=4)
    assert [Record.FromString(p).batch_continues for p in built] == [False, False]
    assert keyed.batch_continues  # the caller's record is left as it was
