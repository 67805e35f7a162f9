"""The consumer group coordinator (KIP-848 style), pure: members join, heartbeat and leave;
the coordinator assigns, revokes before it reassigns, expires silent members and fences
zombies. Time is a number the test passes in."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.broker.assignors import TopicPartition
from replog.broker.group_coordinator import (
    LEAVE_EPOCH,
    GroupCoordinator,
    HeartbeatAnswer,
)
from replog.errors import (
    FencedMemberError,
    InvalidArgumentError,
    NonEmptyGroupError,
    UnknownMemberError,
)

TOPICS = {"orders": 12, "payments": 4}


def _group(assignor: str = "cooperative-sticky") -> GroupCoordinator:
    ids = (f"m{i}" for i in itertools.count())
    return GroupCoordinator("billing", lambda: TOPICS, assignor, new_member_id=lambda: next(ids))


def _settle(group: GroupCoordinator, answers: dict[str, HeartbeatAnswer], now: int) -> None:
    """Every member heartbeats, reporting what it was given, until nothing changes."""
    for _ in range(10):
        before = dict(answers)
        for member_id, last in list(answers.items()):
            answers[member_id] = group.heartbeat(
                member_id, last.member_epoch, None, last.assignment, now
            )
        if answers == before:
            return
    raise AssertionError("the group did not settle")


def _join(group: GroupCoordinator, topics: list[str], now: int = 0) -> HeartbeatAnswer:
    return group.heartbeat("", 0, topics, None, now)


def test_three_consumers_of_twelve_partitions_get_four_each() -> None:
    group = _group()
    answers = {a.member_id: a for a in (_join(group, ["orders"]) for _ in range(3))}
    _settle(group, answers, 1)
    assert sorted(len(a.assignment) for a in answers.values()) == [4, 4, 4]
    owned = [tp for a in answers.values() for tp in a.assignment]
    assert sorted(owned) == [TopicPartition("orders", p) for p in range(12)]
    assert {a.member_epoch for a in answers.values()} == {group.epoch}


def test_a_partition_moves_only_after_its_owner_revoked_it() -> None:
    group = _group()
    first = _join(group, ["orders"])
    first = group.heartbeat(first.member_id, first.member_epoch, None, None, 1)
    assert len(first.assignment) == 12
    second = _join(group, ["orders"], 2)
    assert second.assignment == frozenset()  # all twelve still owned by the first
    first = group.heartbeat(first.member_id, first.member_epoch, None, first.assignment, 3)
    assert len(first.assignment) == 6  # told to revoke six, at its old epoch
    second = group.heartbeat(second.member_id, second.member_epoch, None, (), 4)
    assert second.assignment == frozenset()  # the first has not confirmed the revocation
    first = group.heartbeat(first.member_id, first.member_epoch, None, first.assignment, 5)
    second = group.heartbeat(second.member_id, second.member_epoch, None, (), 6)
    assert len(second.assignment) == 6 and not (first.assignment & second.assignment)


def test_a_member_that_leaves_frees_its_partitions_at_once() -> None:
    group = _group()
    answers = {a.member_id: a for a in (_join(group, ["orders"]) for _ in range(3))}
    _settle(group, answers, 1)
    gone = sorted(answers)[0]
    group.heartbeat(gone, answers.pop(gone).member_epoch, None, None, 2)
    assert group.heartbeat(gone, LEAVE_EPOCH, None, None, 3).member_epoch == LEAVE_EPOCH
    _settle(group, answers, 4)
    assert sorted(len(a.assignment) for a in answers.values()) == [6, 6]


def test_a_member_silent_past_its_session_timeout_is_removed() -> None:
    group = _group()
    a = group.heartbeat("", 0, ["orders"], None, 0, session_timeout_ms=10_000)
    b = group.heartbeat("", 0, ["orders"], None, 0, session_timeout_ms=10_000)
    answers = {a.member_id: a, b.member_id: b}
    _settle(group, answers, 1_000)
    del answers[b.member_id]
    _settle(group, answers, 6_000)  # only a keeps heartbeating
    _settle(group, answers, 11_500)  # b's last heartbeat was at 1,000
    assert list(group.members) == [a.member_id]
    assert len(answers[a.member_id].assignment) == 12
    with pytest.raises(UnknownMemberError):
        group.heartbeat(b.member_id, b.member_epoch, None, None, 11_600)


def test_a_zombie_with_an_old_epoch_is_fenced_and_its_commits_refused() -> None:
    group = _group()
    zombie = _join(group, ["orders"])
    zombie = group.heartbeat(zombie.member_id, zombie.member_epoch, None, None, 1)
    other = _join(group, ["orders"], 2)
    answers = {zombie.member_id: zombie, other.member_id: other}
    _settle(group, answers, 3)
    with pytest.raises(FencedMemberError):
        group.heartbeat(zombie.member_id, group.epoch + 5, None, None, 4)
    with pytest.raises(FencedMemberError):
        group.check_commit(zombie.member_id, group.epoch + 5)
    group.check_commit(zombie.member_id, answers[zombie.member_id].member_epoch)
    with pytest.raises(NonEmptyGroupError):
        group.check_commit("", 0)  # the group has members: only they commit
    empty = _group()
    empty.check_commit("", 0)  # no members: a tool may commit offsets


def test_a_changed_subscription_gets_a_new_target() -> None:
    group = _group()
    a = _join(group, ["orders"])
    answers = {a.member_id: a}
    _settle(group, answers, 1)
    last = answers[a.member_id]
    moved = group.heartbeat(a.member_id, last.member_epoch, ["payments"], last.assignment, 2)
    answers[a.member_id] = moved
    _settle(group, answers, 3)
    assert {tp.topic for tp in answers[a.member_id].assignment} == {"payments"}


def test_bad_joins_are_refused() -> None:
    group = _group()
    with pytest.raises(InvalidArgumentError):
        group.heartbeat("", 0, None, None, 0)
    with pytest.raises(InvalidArgumentError):
        group.heartbeat("", 0, ["orders"], None, 0, session_timeout_ms=0)
    with pytest.raises(InvalidArgumentError):
        GroupCoordinator("g", lambda: TOPICS, "roundrobin-ish")


steps = st.lists(
    st.tuples(st.sampled_from(["join", "beat", "leave", "silent"]), st.integers(0, 7)),
    max_size=60,
)


@settings(max_examples=200)
@given(steps, st.sampled_from(["range", "cooperative-sticky"]))
def test_no_partition_is_ever_owned_by_two_members_and_the_group_converges(
    ops: list[tuple[str, int]], name: str
) -> None:
    group = _group(name)
    answers: dict[str, HeartbeatAnswer] = {}
    now = 0
    for op, pick in ops:
        now += 100
        ids = sorted(answers)
        if op == "join" or not ids:
            answer = _join(group, ["orders", "payments"] if pick % 2 else ["orders"], now)
            answers[answer.member_id] = answer
        else:
            member_id = ids[pick % len(ids)]
            last = answers[member_id]
            if op == "beat":
                answers[member_id] = group.heartbeat(
                    member_id, last.member_epoch, None, last.assignment, now
                )
            elif op == "leave":
                group.heartbeat(member_id, LEAVE_EPOCH, None, None, now)
                del answers[member_id]
            else:  # "silent": every session but the picked member's runs out
                for at in (now + 15_000, now + 30_000):  # the picked member keeps beating
                    last = answers[member_id] = group.heartbeat(
                        member_id, last.member_epoch, None, last.assignment, at
                    )
                now += 46_000
                group.expire(now)
        owners = [tp for m in group.members.values() for tp in m.owned | m.revoking]
        assert len(owners) == len(set(owners)), "a partition held by two members"
        answers = {k: v for k, v in answers.items() if k in group.members}
    _settle(group, answers, now + 1)
    if answers:
        wanted = {
            TopicPartition(t, p)
            for m in group.members.values()
            for t in m.topics
            for p in range(TOPICS[t])
        }
        owned = [tp for a in answers.values() for tp in a.assignment]
        assert sorted(owned) == sorted(wanted)
        assert all(a.member_epoch == group.epoch for a in answers.values())
