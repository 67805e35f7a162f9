"""ProduceWaiters: each waiting produce request ends with the outcome its entries decide."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from replog.errors import UnavailableError
from replog.raft.messages import Entry
from replog.raft.waiters import ProduceWaiters, Waiter


class NotWrittenError(Exception):
    pass


def _waiter(first: int, last: int, term: int) -> tuple[Waiter, Future[int]]:
    future: Future[int] = Future()
    return Waiter(first, last, term, future), future


def _entries(lo: int, terms: list[int]) -> list[Entry]:
    return [Entry(t, i, 0, b"") for i, t in enumerate(terms, lo)]


def _resolve(waiters: ProduceWaiters, entries: list[Entry], stored: dict[int, int]) -> None:
    waiters.resolve(entries, stored.get, NotWrittenError)


def test_a_batch_is_written_once_its_last_entry_is_applied_with_its_term() -> None:
    waiters = ProduceWaiters()
    w, future = _waiter(5, 7, 2)
    waiters.add([w])
    _resolve(waiters, _entries(5, [2, 2]), {})
    assert not future.done() and len(waiters) == 1  # part of its own batch: wait for the rest
    _resolve(waiters, _entries(7, [2]), {5: 2, 6: 2})
    assert future.result() == 5 and len(waiters) == 0


def test_a_batch_is_not_written_as_soon_as_its_first_entry_has_another_term() -> None:
    waiters = ProduceWaiters()
    w, future = _waiter(5, 9, 2)
    waiters.add([w])
    _resolve(waiters, _entries(5, [3]), {})  # another leader's entry took index 5
    assert isinstance(future.exception(), NotWrittenError)


def test_new_waiters_below_older_ones_are_settled_first_in_index_order() -> None:
    # Lost and regained leadership: the old batch 10..14 sits above the new 12..12.
    waiters = ProduceWaiters()
    old, old_future = _waiter(10, 14, 1)
    new, new_future = _waiter(12, 12, 3)
    waiters.add([old])
    waiters.add([new])
    _resolve(waiters, _entries(10, [2, 3, 3]), {})
    assert isinstance(old_future.exception(), NotWrittenError)
    assert new_future.result() == 12


def test_an_entry_compacted_before_it_was_looked_at_gives_an_unknown_outcome() -> None:
    waiters = ProduceWaiters()
    w, future = _waiter(3, 4, 1)
    waiters.add([w])
    _resolve(waiters, _entries(8, [1]), {})  # 3..4 went by in a snapshot, then compacted
    error = future.exception()
    assert isinstance(error, UnavailableError) and not error.certainly_not_applied


def test_failing_all_ends_every_waiter() -> None:
    waiters = ProduceWaiters()
    pairs = [_waiter(i, i, 1) for i in range(1, 4)]
    waiters.add([w for w, _ in pairs])
    waiters.fail_all(UnavailableError("stopped"))
    assert len(waiters) == 0
    for _, future in pairs:
        with pytest.raises(UnavailableError):
            future.result()


def test_a_vote_gate_opens_only_once_every_reason_is_lifted() -> None:
    from replog.raft.waiters import VoteGate

    seen: list[bool] = []
    gate = VoteGate(seen.append)
    gate.block("fresh-join")
    gate.block("lost-commit")
    gate.lift("lost-commit")  # the lost entries are back, but the join is not confirmed
    assert seen[-1] is False and gate.blocked_by("fresh-join")
    gate.lift("fresh-join")
    assert seen[-1] is True


def test_an_acks_leader_batch_answers_once_the_leader_persisted_all_its_entries() -> None:
    waiters = ProduceWaiters()
    early, early_future = _waiter(5, 7, 2)
    early.early = True
    late, late_future = _waiter(8, 8, 2)
    waiters.add([early, late])
    waiters.persisted(6, 2)
    assert not early_future.done()  # entry 7 is not durable on the leader yet
    waiters.persisted(8, 2)
    assert early_future.result() == 5
    assert not late_future.done()  # acks=all: only the commit answers it
    _resolve(waiters, _entries(5, [2, 2, 2, 2]), {})
    assert late_future.result() == 8 and len(waiters) == 0


def test_an_acks_leader_batch_of_an_old_term_is_left_to_the_commit_to_decide() -> None:
    waiters = ProduceWaiters()
    early, future = _waiter(5, 5, 2)
    early.early = True
    waiters.add([early])
    waiters.persisted(9, 3)  # another term's leader wrote index 5: not this batch's entry
    assert not future.done()
    _resolve(waiters, _entries(5, [3]), {})
    assert isinstance(future.exception(), NotWrittenError)
