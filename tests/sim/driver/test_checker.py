"""The driver simulation's checker on fabricated histories: each rule fires when it should and
stays quiet when the history is fine."""

from __future__ import annotations

from replog.raft.membership import ConfChange, ConfChangeOp
from replog.raft.messages import Entry, EntryKind, Membership
from replog.v1.record_pb2 import Record
from tests.sim.driver.checker import check
from tests.sim.driver.history import (
    FAILED,
    OK,
    PENDING,
    UNKNOWN,
    Attempt,
    ChangeAttempt,
    History,
    Promotion,
)

ADD_4 = ConfChange(ConfChangeOp.ADD_LEARNER, 4)
REMOVE_2 = ConfChange(ConfChangeOp.REMOVE, 2)


def _attempt(id_: int, count: int, outcome: str = OK, **fields: object) -> Attempt:
    values = tuple(b"c1-%d-%d" % (id_, k) for k in range(count))
    a = Attempt(id_, 1, id_, values, node=1, incarnation=1, invoked_s=0.0, outcome=outcome)
    for name, value in fields.items():
        setattr(a, name, value)
    return a


class Log:
    """A committed log built entry by entry (index = position)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = [Entry(1, 1, EntryKind.NOOP, b"")]

    def add(self, a: Attempt, records: range | None = None, term: int = 1) -> int:
        """Append ``a``'s records (all, or the ``records`` positions); return the first offset."""
        first = len(self.entries) + 1
        for k in records if records is not None else range(len(a.values)):
            index = len(self.entries) + 1
            record = Record(key=a.tag, value=a.values[k], offset=index, term=term)
            self.entries.append(Entry(term, index, EntryKind.DATA, record.SerializeToString()))
        return first

    def add_change(self, change: ConfChange, term: int = 1) -> int:
        index = len(self.entries) + 1
        data = change.encode(Membership(frozenset({1, 2, 3})))
        self.entries.append(Entry(term, index, EntryKind.CONFIG, data))
        return index

    def add_noop(self, term: int) -> int:
        self.entries.append(Entry(term, len(self.entries) + 1, EntryKind.NOOP, b""))
        return len(self.entries)


def _kinds(history: History, log: Log) -> list[str]:
    return [v.split(":")[0] for v in check(history, log.entries)]


def test_an_acknowledged_batch_wholly_at_its_offset_passes() -> None:
    log, a = Log(), _attempt(1, 3)
    a.offset = a.node_offset = log.add(a)
    assert _kinds(History([a]), log) == []


def test_an_acknowledged_batch_elsewhere_or_missing_is_a_lost_ack() -> None:
    log, a, b = Log(), _attempt(1, 3), _attempt(2, 2)
    a.offset = log.add(a) + 1
    b.offset = 40
    assert _kinds(History([a, b]), log) == ["lost ack", "lost ack"]


def test_a_batch_with_only_some_records_committed_is_a_partial_batch_whatever_it_was_told() -> None:
    log = Log()
    told = [_attempt(1, 4, UNKNOWN), _attempt(2, 4, FAILED), _attempt(3, 4, UNKNOWN)]
    log.add(told[0], range(0, 2))
    log.add(told[1], range(0, 3))
    log.add(told[2], range(1, 4))  # the first record is missing
    kinds = _kinds(History(told), log)
    assert kinds == ["partial batch", "partial batch", "false not-applied", "partial batch"]


def test_records_out_of_order_are_not_a_whole_batch() -> None:
    log, a = Log(), _attempt(1, 3, UNKNOWN)
    log.add(a, range(2, -1, -1))
    assert _kinds(History([a]), log) == ["partial batch"]


def test_an_unknown_attempt_may_be_wholly_present_or_wholly_absent() -> None:
    log, present, absent = Log(), _attempt(1, 5, UNKNOWN), _attempt(2, 5, UNKNOWN)
    log.add(present)
    assert _kinds(History([present, absent]), log) == []


def test_a_certainly_not_applied_attempt_must_be_absent_by_the_clients_or_the_nodes_word() -> None:
    log = Log()
    absent = _attempt(1, 2, FAILED)
    by_node = _attempt(2, 2, UNKNOWN, node_outcome=FAILED, node_error="NotLeaderNodeError")
    log.add(by_node)
    assert _kinds(History([absent, by_node]), log) == ["false not-applied"]


def test_a_pending_future_is_a_violation_only_once_its_node_applied_its_records() -> None:
    log = Log()
    waiting, not_yet, absent = (_attempt(i, 2, UNKNOWN, node_outcome=PENDING) for i in (1, 2, 3))
    last = log.add(waiting) + 1
    log.add(not_yet)
    waiting.node_applied = last
    not_yet.node_applied = last  # its records come after what the node applied
    absent.node_applied = 1000  # never written: it may still be waiting for its indices
    assert _kinds(History([waiting, not_yet, absent]), log) == ["producer waits forever"]


def test_unknown_for_a_commit_in_a_term_the_node_led_throughout_is_an_unacknowledged_commit() -> (
    None
):
    log = Log()
    led = _attempt(1, 2, UNKNOWN, node_outcome=UNKNOWN, term=3, led_through=True)
    deposed = _attempt(2, 2, UNKNOWN, node_outcome=UNKNOWN, term=3, led_through=False)
    log.add(led, term=3)
    log.add(deposed, term=3)
    assert _kinds(History([led, deposed]), log) == ["unacknowledged commit"]


def test_a_membership_change_reported_applied_must_be_the_committed_entry_at_its_index() -> None:
    log = Log()
    right = ChangeAttempt(1, ADD_4, node=1, invoked_s=0.0, outcome=OK)
    right.index = log.add_change(ADD_4)
    replaced = ChangeAttempt(2, ADD_4, node=1, invoked_s=0.0, outcome=OK)
    replaced.index = log.add_change(REMOVE_2, term=2)  # another leader's change took the index
    by_noop = ChangeAttempt(3, ADD_4, node=1, invoked_s=0.0, outcome=OK)
    by_noop.index = log.add_noop(3)
    lost = ChangeAttempt(4, REMOVE_2, node=2, invoked_s=0.0, outcome=UNKNOWN, index=None)
    violations = check(History(changes=[right, replaced, by_noop, lost]), log.entries)
    assert [v.split(":")[0] for v in violations] == ["false change success"] * 2
    assert "another change, remove 2 (term 2)" in violations[0]
    assert "a leader's no-op (term 3)" in violations[1]


def test_a_learner_promoted_before_it_acknowledged_anything_is_premature() -> None:
    early = Promotion(leader=1, term=2, index=9, learner=4, match=0)
    unknown = Promotion(leader=1, term=2, index=9, learner=5, match=None)
    caught_up = Promotion(leader=1, term=2, index=12, learner=4, match=11)
    history = History(promotions=[early, unknown, caught_up])
    assert _kinds(history, Log()) == ["premature promotion"] * 2


def test_a_record_nobody_sent_or_at_the_wrong_offset_is_a_stray_record() -> None:
    log = Log()
    stray = Record(key=b"a99", value=b"nobody", offset=2)
    misplaced = Record(value=b"x", offset=7)
    log.entries.append(Entry(1, 2, EntryKind.DATA, stray.SerializeToString()))
    log.entries.append(Entry(1, 3, EntryKind.DATA, misplaced.SerializeToString()))
    assert _kinds(History(), log) == ["stray record", "stray record", "stray record"]
