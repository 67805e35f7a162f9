"""The classic (JoinGroup/SyncGroup) group state machine, pure: members join at a barrier,
the first is the leader and assigns, followers wait for its sync; heartbeats, leaves,
expired sessions and stale generations behave as Kafka's coordinator answers them. Time
is a number the test passes in; request ids are the test's own."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from replog.broker.classic_group import (
    Answer,
    ClassicGroup,
    Completion,
    ErrorCode,
    GroupState,
    HeartbeatAnswer,
    JoinAnswer,
    LeaveAnswer,
    SyncAnswer,
)

SESSION_MS = 10_000
REBALANCE_MS = 30_000
PROTOCOLS = (("range", b"meta-range"), ("roundrobin", b"meta-rr"))


def _group() -> ClassicGroup:
    ids = (f"u{i}" for i in itertools.count())
    return ClassicGroup("billing", lambda: next(ids), min_session_timeout_ms=1)


def _join(
    group: ClassicGroup,
    request: int,
    member_id: str = "",
    now: int = 0,
    protocols: tuple[tuple[str, bytes], ...] = PROTOCOLS,
    **kwargs: object,
) -> dict[int, Answer]:
    return dict(
        group.join(
            request, member_id, "client", "consumer", protocols, SESSION_MS, REBALANCE_MS, now,
            **kwargs,  # type: ignore[arg-type]
        )
    )  # fmt: skip


def _join_answer(done: dict[int, Answer], request: int) -> JoinAnswer:
    answer = done[request]
    assert isinstance(answer, JoinAnswer)
    return answer


def _sync_answer(done: list[Completion], request: int) -> SyncAnswer:
    answer = dict(done)[request]
    assert isinstance(answer, SyncAnswer)
    return answer


def _two_members(group: ClassicGroup) -> tuple[JoinAnswer, JoinAnswer]:
    """a joins (a rebalance of one completes), then b: a rejoins and both get generation 2."""
    a = _join_answer(_join(group, 1), 1)
    group.sync(2, a.member_id, a.generation, {a.member_id: b"all"}, 1)
    assert 3 not in _join(group, 3, now=2)  # b waits at the barrier for a
    assert group.heartbeat(4, a.member_id, a.generation, 3) == [
        (4, HeartbeatAnswer(ErrorCode.REBALANCE_IN_PROGRESS))
    ]
    done = _join(group, 5, a.member_id, now=4)
    return _join_answer(done, 5), _join_answer(done, 3)


def test_two_members_join_the_leader_gets_their_metadata_and_both_sync_their_assignments() -> None:
    group = _group()
    a, b = _two_members(group)
    assert a.generation == b.generation == 2
    assert a.leader_id == b.leader_id == a.member_id  # the first to join leads
    assert a.protocol_name == b.protocol_name == "range"  # the members' first preference
    assert a.members == ((a.member_id, b"meta-range"), (b.member_id, b"meta-range"))
    assert b.members == ()  # only the leader gets the metadata
    assert b.member_id.startswith("client-")
    assert group.sync(6, b.member_id, 2, {}, 5) == []  # the follower waits for the leader
    done = group.sync(7, a.member_id, 2, {a.member_id: b"p0", b.member_id: b"p1"}, 6)
    assert _sync_answer(done, 7).assignment == b"p0"
    assert _sync_answer(done, 6).assignment == b"p1"
    assert group.state is GroupState.STABLE
    assert group.heartbeat(8, b.member_id, 2, 7) == [(8, HeartbeatAnswer(ErrorCode.NONE))]


def test_the_protocol_is_the_one_most_members_prefer_among_those_all_support() -> None:
    group = _group()
    a = _join_answer(_join(group, 1, protocols=(("sticky", b""), ("range", b"r"))), 1)
    group.sync(2, a.member_id, a.generation, {}, 0)
    _join(group, 3, protocols=(("roundrobin", b""), ("range", b"r2")))
    done = _join(group, 4, a.member_id, protocols=(("sticky", b""), ("range", b"r")))
    assert _join_answer(done, 4).protocol_name == "range"
    assert _join_answer(done, 3).protocol_name == "range"


def test_a_member_with_no_protocol_in_common_is_refused() -> None:
    group = _group()
    _join(group, 1)
    done = _join(group, 2, protocols=(("cooperative-sticky", b""),))
    assert _join_answer(done, 2).error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_a_member_that_misses_the_rebalance_timeout_is_removed() -> None:
    group = _group()
    a, b = _two_members(group)
    group.sync(6, a.member_id, 2, {a.member_id: b"x", b.member_id: b"y"}, 5)
    done = _join(group, 7, now=10)  # c joins: a and b must rejoin
    done.update(_join(group, 8, a.member_id, now=11))
    assert 7 not in done and 8 not in done
    for now in range(10, REBALANCE_MS, SESSION_MS // 2):  # b heartbeats but never rejoins
        assert dict(group.heartbeat(0, b.member_id, 2, now))[0] == HeartbeatAnswer(
            ErrorCode.REBALANCE_IN_PROGRESS
        )
    assert group.tick(10 + REBALANCE_MS - 1) == []
    done = dict(group.tick(10 + REBALANCE_MS))
    assert {_join_answer(done, 7).generation, _join_answer(done, 8).generation} == {3}
    assert b.member_id not in group.members
    assert len(group.members) == 2
    assert group.heartbeat(9, b.member_id, 2, 10 + REBALANCE_MS) == [
        (9, HeartbeatAnswer(ErrorCode.UNKNOWN_MEMBER_ID))
    ]


def test_a_stale_generations_commit_is_refused_and_the_current_one_lands() -> None:
    group = _group()
    a, _ = _two_members(group)
    group.sync(6, a.member_id, 2, {}, 5)
    assert group.check_commit(a.member_id, 1, 6) == ErrorCode.ILLEGAL_GENERATION
    assert group.check_commit(a.member_id, 2, 6) == ErrorCode.NONE
    assert group.check_commit("someone", 2, 6) == ErrorCode.UNKNOWN_MEMBER_ID
    assert group.check_commit("", -1, 6) == ErrorCode.UNKNOWN_MEMBER_ID  # not Empty


def test_a_simple_commit_lands_only_while_the_group_is_empty() -> None:
    group = _group()
    assert group.check_commit("", -1, 0) == ErrorCode.NONE
    a = _join_answer(_join(group, 1), 1)
    assert group.check_commit("", -1, 1) == ErrorCode.UNKNOWN_MEMBER_ID
    # Between the join answer and the leader's sync, a commit waits for the assignment.
    assert group.check_commit(a.member_id, a.generation, 1) == ErrorCode.REBALANCE_IN_PROGRESS


def test_an_expired_session_starts_a_rebalance_the_survivor_rejoins_alone() -> None:
    group = _group()
    a, b = _two_members(group)
    group.sync(6, b.member_id, 2, {}, 5)
    group.sync(7, a.member_id, 2, {}, 5)
    assert group.next_deadline_ms() == 5 + SESSION_MS + 1
    group.heartbeat(8, a.member_id, 2, SESSION_MS)
    assert group.tick(SESSION_MS + 6) == []
    assert b.member_id not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    assert group.heartbeat(9, a.member_id, 2, SESSION_MS + 7) == [
        (9, HeartbeatAnswer(ErrorCode.REBALANCE_IN_PROGRESS))
    ]
    again = _join_answer(_join(group, 10, a.member_id, now=SESSION_MS + 8), 10)
    assert again.generation == 3 and again.members == ((a.member_id, b"meta-range"),)


def test_a_leave_of_the_leader_makes_the_next_member_lead_the_next_generation() -> None:
    group = _group()
    a, b = _two_members(group)
    group.sync(6, a.member_id, 2, {}, 5)
    done = group.leave(7, [a.member_id, "nobody"], 6)
    assert dict(done)[7] == LeaveAnswer(
        ErrorCode.NONE, ((a.member_id, ErrorCode.NONE), ("nobody", ErrorCode.UNKNOWN_MEMBER_ID))
    )
    answer = _join_answer(_join(group, 8, b.member_id, now=7), 8)
    assert answer.leader_id == b.member_id and answer.generation == 3


def test_when_the_last_member_leaves_the_group_is_empty_at_a_new_generation() -> None:
    group = _group()
    a = _join_answer(_join(group, 1), 1)
    group.leave(2, [a.member_id], 1)
    assert group.state is GroupState.EMPTY and group.generation == 2
    assert group.check_commit("", -1, 2) == ErrorCode.NONE


def test_a_v4_join_first_answers_member_id_required_with_the_id_to_join_with() -> None:
    group = _group()
    first = _join_answer(_join(group, 1, require_known_member=True), 1)
    assert first.error == ErrorCode.MEMBER_ID_REQUIRED
    assert first.member_id == "client-u0"
    assert group.members == {}
    second = _join_answer(_join(group, 2, first.member_id, require_known_member=True), 2)
    assert second.error == ErrorCode.NONE and second.leader_id == first.member_id


def test_an_unused_member_id_required_id_expires_and_no_longer_holds_the_barrier() -> None:
    group = _group()
    a = _join_answer(_join(group, 1), 1)
    group.sync(2, a.member_id, a.generation, {}, 0)
    _join(group, 3, require_known_member=True)  # b is told its id and never comes back
    done = _join(group, 4, a.member_id, now=1)
    assert 4 not in done  # the barrier waits for b's id
    done = dict(group.tick(SESSION_MS))
    assert _join_answer(done, 4).generation == 2


def test_a_cancelled_waiting_join_does_not_hold_the_barrier() -> None:
    group = _group()
    a, b = _two_members(group)
    group.sync(6, a.member_id, 2, {}, 5)
    _join(group, 7, now=6)  # c arrives; b rejoins, then its caller hangs up
    _join(group, 9, b.member_id, now=6)
    assert group.cancel(9, 7) == []
    assert b.member_id not in group.members
    done = _join(group, 8, a.member_id, now=8)  # a's rejoin completes it: b is not awaited
    assert _join_answer(done, 8).generation == 3 and 9 not in done


def test_a_rebalance_tells_a_waiting_follower_sync_to_rejoin() -> None:
    group = _group()
    _, b = _two_members(group)
    group.sync(6, b.member_id, 2, {}, 5)
    done = _join(group, 7, now=6)
    assert done[6] == SyncAnswer(ErrorCode.REBALANCE_IN_PROGRESS)


def test_a_shutdown_answers_every_waiting_request_not_coordinator() -> None:
    group = _group()
    _join_answer(_join(group, 1), 1)
    _join(group, 2)
    assert dict(group.shutdown())[2] == JoinAnswer(ErrorCode.NOT_COORDINATOR)
    assert group.state is GroupState.DEAD
    assert _join_answer(_join(group, 3), 3).error == ErrorCode.COORDINATOR_NOT_AVAILABLE


def test_a_session_timeout_outside_the_bounds_is_refused() -> None:
    group = ClassicGroup("billing", lambda: "u", min_session_timeout_ms=SESSION_MS + 1)
    assert _join_answer(_join(group, 1), 1).error == ErrorCode.INVALID_SESSION_TIMEOUT


# -- random histories ------------------------------------------------------------------------


class _Client:
    """A classic consumer as the history drives it: its id, generation and next action."""

    def __init__(self) -> None:
        self.member_id = ""
        self.generation = -1
        self.phase = "join"  # join -> joining -> sync -> syncing -> stable
        self.request: int | None = None


class _History:
    """Random interleavings of clients' natural next steps and faults, checked after every
    answer: one leader per generation (a member of it), and a successful sync hands out
    exactly what that generation's leader assigned to that member."""

    def __init__(self) -> None:
        self.group = _group()
        self.now = 0
        self.ids = itertools.count()
        self.clients = [_Client() for _ in range(3)]
        self.owner: dict[int, tuple[_Client, int]] = {}  # request -> (client, generation)
        self.leaders: dict[int, str] = {}
        self.members_of: dict[int, set[str]] = {}

    def step(self, kind: str, who: int, elapsed: int) -> None:
        self.now += elapsed
        client, rid = self.clients[who], next(self.ids)
        self.owner[rid] = (client, client.generation)
        group, now = self.group, self.now
        if kind == "act" and client.phase == "join":
            client.phase, client.request = "joining", rid
            v4 = who == 0
            fields = (client.member_id, "c", "consumer", PROTOCOLS, SESSION_MS, REBALANCE_MS)
            self._check(group.join(rid, *fields, now, require_known_member=v4))
        elif kind == "act" and client.phase == "sync":
            client.phase, client.request = "syncing", rid
            plan = {m: f"{client.generation}:{m}".encode() for m in group.members}
            self._check(group.sync(rid, client.member_id, client.generation, plan, now))
        elif kind == "act" and client.phase == "stable":
            client.request = rid
            self._check(group.heartbeat(rid, client.member_id, client.generation, now))
        elif kind == "stale":
            self.owner[rid] = (client, client.generation - 1)
            self._check(group.sync(rid, client.member_id, client.generation - 1, {}, now))
            error = group.check_commit(client.member_id, client.generation - 1, now)
            assert error != ErrorCode.NONE or client.generation < 0
        elif kind == "leave":
            self._check(group.leave(rid, [client.member_id], now))
        elif kind == "cancel" and client.request is not None:
            self._check(group.cancel(client.request, now))
            client.phase, client.request = "join", None
        else:
            self._check(group.tick(now))

    def _check(self, done: list[Completion]) -> None:
        for rid, answer in done:
            client, generation = self.owner[rid]
            if isinstance(answer, JoinAnswer):
                self._joined(client, answer)
            elif isinstance(answer, SyncAnswer) and answer.error == ErrorCode.NONE:
                assert answer.assignment == f"{generation}:{client.member_id}".encode()
                client.phase = "stable"
            elif answer.error != ErrorCode.NONE and rid == client.request:
                client.phase = "join"  # a failed sync or heartbeat: rejoin
            if answer.error == ErrorCode.UNKNOWN_MEMBER_ID and rid == client.request:
                client.member_id = ""

    def _joined(self, client: _Client, answer: JoinAnswer) -> None:
        if answer.error == ErrorCode.NONE:
            generation = answer.generation
            assert self.leaders.setdefault(generation, answer.leader_id) == answer.leader_id
            self.members_of.setdefault(generation, set()).add(answer.member_id)
            client.member_id, client.generation, client.phase = answer.member_id, generation, "sync"
        elif answer.error == ErrorCode.MEMBER_ID_REQUIRED:
            client.member_id, client.phase = answer.member_id, "join"
        else:
            client.phase = "join"


_STEP = st.tuples(
    st.sampled_from(["act"] * 6 + ["stale", "leave", "cancel", "tick"]),
    st.integers(0, 2),  # which client
    st.one_of(st.integers(0, 50), st.just(SESSION_MS // 2), st.just(REBALANCE_MS)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, min_size=10, max_size=100))
def test_random_histories_never_give_a_generation_two_leaders_nor_a_foreign_assignment(
    steps: list[tuple[str, int, int]],
) -> None:
    history = _History()
    for step in steps:
        history.step(*step)
    for generation, leader in history.leaders.items():
        assert leader in history.members_of[generation]
