"""One consumer group of Kafka's *classic* protocol (JoinGroup, SyncGroup, Heartbeat,
LeaveGroup), as Kafka's GroupCoordinator and GroupMetadata run it: the members assign,
client-side; the coordinator only keeps time and hands the leader's assignment out. Pure:
no I/O; time comes in as ``now_ms`` and member ids from an injected ``new_uuid``.

States: ``EMPTY`` (no members) -> a join -> ``PREPARING_REBALANCE`` (the join barrier: every
known member must send JoinGroup again, or be removed when the rebalance timeout passes) ->
``COMPLETING_REBALANCE`` (a new generation: each member got its join answer, the leader with
every member's metadata; they all send SyncGroup, followers waiting for the leader's) ->
``STABLE`` (the leader synced: every member has its assignment). A join from a new member or
one whose protocols changed, a leave or an expired session starts a new rebalance. ``DEAD``:
the group is gone (deleted, or this node stopped coordinating it).

Requests that wait (a join at the barrier, a follower's sync) are registered under a
caller-given request id; every method returns the ``Completion`` list of (request id,
answer) it completed -- the caller's own answer among them when it is immediate -- so an
I/O adapter resolves its futures from them. Answers carry Kafka error codes (``ErrorCode``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum

__all__ = [
    "Answer",
    "ClassicGroup",
    "ClassicMember",
    "Completion",
    "ErrorCode",
    "GroupState",
    "HeartbeatAnswer",
    "JoinAnswer",
    "LeaveAnswer",
    "SyncAnswer",
]


class ErrorCode(IntEnum):
    """The Kafka protocol's error codes a classic group answers with."""

    NONE = 0
    UNKNOWN_TOPIC_OR_PARTITION = 3
    OFFSET_METADATA_TOO_LARGE = 12
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_COMMIT_OFFSET_SIZE = 28
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    MEMBER_ID_REQUIRED = 79


class GroupState(Enum):
    """A classic group's state (Kafka's names)."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class JoinAnswer:
    """JoinGroup's answer; ``members`` (id, metadata of the chosen protocol) for the leader
    only."""

    error: int
    generation: int = -1
    protocol_type: str = ""
    protocol_name: str = ""
    leader_id: str = ""
    member_id: str = ""
    members: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SyncAnswer:
    """SyncGroup's answer: the member's assignment (opaque bytes the leader made)."""

    error: int
    protocol_type: str = ""
    protocol_name: str = ""
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """Heartbeat's answer."""

    error: int


@dataclass(frozen=True, slots=True)
class LeaveAnswer:
    """LeaveGroup's answer: a group-level error and one per member (v3's batch)."""

    error: int
    members: tuple[tuple[str, int], ...] = ()


Answer = JoinAnswer | SyncAnswer | HeartbeatAnswer | LeaveAnswer
Completion = tuple[int, Answer]
Protocols = tuple[tuple[str, bytes], ...]


@dataclass(slots=True)
class ClassicMember:
    """One member as the coordinator sees it."""

    member_id: str
    client_id: str
    protocol_type: str
    protocols: Protocols
    session_timeout_ms: int
    rebalance_timeout_ms: int
    last_heartbeat_ms: int
    join_request: int | None = None
    """The JoinGroup waiting at the barrier, if any."""
    sync_request: int | None = None
    """The SyncGroup waiting for the leader's, if any."""
    assignment: bytes = b""

    def metadata(self, protocol: str) -> bytes:
        """The member's metadata for ``protocol`` (b"" when it has none)."""
        return next((m for name, m in self.protocols if name == protocol), b"")


@dataclass(slots=True)
class ClassicGroup:
    """One classic group (see the module docstring). ``generation`` starts at the last
    recorded one: the first rebalance hands out the next."""

    group_id: str
    new_uuid: Callable[[], str]
    generation: int = 0
    min_session_timeout_ms: int = 6_000
    max_session_timeout_ms: int = 1_800_000
    state: GroupState = GroupState.EMPTY
    protocol_type: str = ""
    protocol_name: str = ""
    leader_id: str = ""
    members: dict[str, ClassicMember] = field(default_factory=dict)
    """In join order: the first is the leader when the leader goes."""
    pending: dict[str, int] = field(default_factory=dict)
    """Member ids given by MEMBER_ID_REQUIRED, not yet joined: id -> expiry (ms)."""
    rebalance_deadline_ms: int = 0

    # -- JoinGroup ---------------------------------------------------------------------------

    def join(  # noqa: PLR0917  (JoinGroup's fields, in its order)
        self,
        request_id: int,
        member_id: str,
        client_id: str,
        protocol_type: str,
        protocols: Iterable[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        now_ms: int,
        require_known_member: bool = False,
    ) -> list[Completion]:
        """JoinGroup (``member_id`` "" for a new member; ``require_known_member`` for v4+,
        which first answers MEMBER_ID_REQUIRED with the id to join with). Waits at the
        join barrier unless it can answer at once."""
        done = self._expire(now_ms)
        wanted = tuple(protocols)

        def answer(error: ErrorCode, member: str = member_id) -> list[Completion]:
            return [*done, (request_id, JoinAnswer(int(error), member_id=member))]

        if self.state is GroupState.DEAD:
            return answer(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if not self.min_session_timeout_ms <= session_timeout_ms <= self.max_session_timeout_ms:
            return answer(ErrorCode.INVALID_SESSION_TIMEOUT)
        if not wanted or not self._compatible(member_id, protocol_type, wanted):
            return answer(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if not member_id:
            member_id = f"{client_id}-{self.new_uuid()}"
            if require_known_member:
                self.pending[member_id] = now_ms + session_timeout_ms
                return answer(ErrorCode.MEMBER_ID_REQUIRED, member_id)
        elif member_id not in self.members and member_id not in self.pending:
            return answer(ErrorCode.UNKNOWN_MEMBER_ID)
        member = self.members.get(member_id)
        if member is None:
            self.pending.pop(member_id, None)
            member = ClassicMember(
                member_id, client_id, protocol_type, wanted, session_timeout_ms,
                rebalance_timeout_ms, now_ms,
            )  # fmt: skip
            self.members[member_id] = member
            self.leader_id = self.leader_id or member_id
        elif self._rejoin_unchanged(member, wanted):
            member.last_heartbeat_ms = now_ms
            return [*done, (request_id, self._join_answer(member))]
        member.protocols = wanted
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.last_heartbeat_ms = now_ms
        if member.join_request is not None:  # a retried join replaces the old one
            done.append((member.join_request, JoinAnswer(int(ErrorCode.UNKNOWN_MEMBER_ID))))
        member.join_request = request_id
        done += self._prepare_rebalance(now_ms)
        return done + self._try_complete_join(now_ms)

    def _compatible(self, member_id: str, protocol_type: str, protocols: Protocols) -> bool:
        """Whether the protocols share one with every other member (and its type)."""
        others = [m for m in self.members.values() if m.member_id != member_id]
        if not protocol_type:
            return False
        if not others:
            return True
        names = {name for name, _ in protocols}
        same_type = all(m.protocol_type == protocol_type for m in others)
        return same_type and bool(names & self._candidates(others))

    def _candidates(self, members: Iterable[ClassicMember] | None = None) -> set[str]:
        chosen = list(self.members.values() if members is None else members)
        if not chosen:
            return set()
        common = {name for name, _ in chosen[0].protocols}
        for member in chosen[1:]:
            common &= {name for name, _ in member.protocols}
        return common

    def _rejoin_unchanged(self, member: ClassicMember, protocols: Protocols) -> bool:
        """A known member rejoining with the same protocols outside a rebalance is answered
        with the current generation (a follower's; the leader's join starts a rebalance in
        Stable, as Kafka does, so it can reassign)."""
        if member.protocols != protocols:
            return False
        if self.state is GroupState.COMPLETING_REBALANCE:
            return True
        return self.state is GroupState.STABLE and member.member_id != self.leader_id

    def _join_answer(self, member: ClassicMember) -> JoinAnswer:
        leader = member.member_id == self.leader_id
        everyone = tuple(
            (m.member_id, m.metadata(self.protocol_name)) for m in self.members.values()
        )
        return JoinAnswer(
            int(ErrorCode.NONE),
            self.generation,
            self.protocol_type,
            self.protocol_name,
            self.leader_id,
            member.member_id,
            everyone if leader else (),
        )

    # -- the rebalance -------------------------------------------------------------------------

    def _prepare_rebalance(self, now_ms: int) -> list[Completion]:
        """Start the join barrier (once per rebalance); syncs waiting for the old
        generation's assignment are told a rebalance is in progress."""
        if self.state is GroupState.PREPARING_REBALANCE:
            return []
        done: list[Completion] = []
        for member in self.members.values():
            if member.sync_request is not None:
                error = int(ErrorCode.REBALANCE_IN_PROGRESS)
                done.append((member.sync_request, SyncAnswer(error)))
                member.sync_request = None
            member.assignment = b""
        self.state = GroupState.PREPARING_REBALANCE
        timeout = max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
        self.rebalance_deadline_ms = now_ms + timeout
        return done

    def _try_complete_join(self, now_ms: int, timed_out: bool = False) -> list[Completion]:
        """Complete the rebalance when every member rejoined and no MEMBER_ID_REQUIRED id
        is outstanding, or the rebalance timeout passed (removing those that did not)."""
        if self.state is not GroupState.PREPARING_REBALANCE:
            return []
        waiting = [m for m in self.members.values() if m.join_request is None]
        if (waiting or self.pending) and not timed_out:
            return []
        for member in waiting:
            del self.members[member.member_id]
        self.generation += 1
        if not self.members:
            self.state, self.protocol_type, self.protocol_name = GroupState.EMPTY, "", ""
            self.leader_id = ""
            return []
        if self.leader_id not in self.members:
            self.leader_id = next(iter(self.members))
        self.state = GroupState.COMPLETING_REBALANCE
        first = next(iter(self.members.values()))
        self.protocol_type, self.protocol_name = first.protocol_type, self._select_protocol()
        done: list[Completion] = []
        for member in self.members.values():
            assert member.join_request is not None
            done.append((member.join_request, self._join_answer(member)))
            member.join_request = None
            member.last_heartbeat_ms = now_ms
        return done

    def _select_protocol(self) -> str:
        """Kafka's vote: each member votes for the first protocol it prefers among those
        every member supports; most votes wins, ties to the leader's preference."""
        candidates = self._candidates()
        votes: dict[str, int] = {}
        for member in self.members.values():
            vote = next(name for name, _ in member.protocols if name in candidates)
            votes[vote] = votes.get(vote, 0) + 1
        leader = self.members[self.leader_id]
        order = [name for name, _ in leader.protocols if name in candidates]
        return max(order, key=lambda name: (votes.get(name, 0), -order.index(name)))

    # -- SyncGroup ------------------------------------------------------------------------------

    def sync(
        self,
        request_id: int,
        member_id: str,
        generation: int,
        assignments: Mapping[str, bytes],
        now_ms: int,
    ) -> list[Completion]:
        """SyncGroup: the leader's ``assignments`` (member id -> bytes) go to every member;
        a follower waits for them (or gets them at once in Stable)."""
        done = self._expire(now_ms)
        error = self._check_member(member_id, generation)
        if error is ErrorCode.NONE and self.state is GroupState.PREPARING_REBALANCE:
            error = ErrorCode.REBALANCE_IN_PROGRESS
        if error is not ErrorCode.NONE:
            return [*done, (request_id, SyncAnswer(int(error)))]
        member = self.members[member_id]
        member.last_heartbeat_ms = now_ms
        if self.state is GroupState.STABLE:
            return [*done, (request_id, self._sync_answer(member))]
        if member.sync_request is not None:
            retried = SyncAnswer(int(ErrorCode.REBALANCE_IN_PROGRESS))  # replaced by this one
            done.append((member.sync_request, retried))
        member.sync_request = request_id
        if member_id == self.leader_id:
            for other in self.members.values():
                other.assignment = assignments.get(other.member_id, b"")
            self.state = GroupState.STABLE
            for other in self.members.values():
                if other.sync_request is not None:
                    done.append((other.sync_request, self._sync_answer(other)))
                    other.sync_request = None
        return done

    def _sync_answer(self, member: ClassicMember) -> SyncAnswer:
        error = int(ErrorCode.NONE)
        return SyncAnswer(error, self.protocol_type, self.protocol_name, member.assignment)

    def _check_member(self, member_id: str, generation: int) -> ErrorCode:
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation != self.generation:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    # -- Heartbeat, LeaveGroup, OffsetCommit ------------------------------------------------------

    def heartbeat(
        self, request_id: int, member_id: str, generation: int, now_ms: int
    ) -> list[Completion]:
        """Heartbeat: NONE, REBALANCE_IN_PROGRESS (rejoin), ILLEGAL_GENERATION or
        UNKNOWN_MEMBER_ID."""
        done = self._expire(now_ms)
        error = self._check_member(member_id, generation)
        if error is ErrorCode.NONE:
            self.members[member_id].last_heartbeat_ms = now_ms
            if self.state is GroupState.PREPARING_REBALANCE:
                error = ErrorCode.REBALANCE_IN_PROGRESS
        return [*done, (request_id, HeartbeatAnswer(int(error)))]

    def leave(self, request_id: int, member_ids: Iterable[str], now_ms: int) -> list[Completion]:
        """LeaveGroup of one member (v0-2) or a batch (v3): each is removed, and the others
        rebalance."""
        done = self._expire(now_ms)
        if self.state is GroupState.DEAD:
            error = int(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return [*done, (request_id, LeaveAnswer(error))]
        results: list[tuple[str, int]] = []
        for member_id in member_ids:
            if member_id in self.pending:
                del self.pending[member_id]
                results.append((member_id, int(ErrorCode.NONE)))
                done += self._try_complete_join(now_ms)
            elif member_id in self.members:
                done += self._remove(member_id, now_ms)
                results.append((member_id, int(ErrorCode.NONE)))
            else:
                results.append((member_id, int(ErrorCode.UNKNOWN_MEMBER_ID)))
        return [*done, (request_id, LeaveAnswer(int(ErrorCode.NONE), tuple(results)))]

    def check_commit(self, member_id: str, generation: int, now_ms: int) -> ErrorCode:
        """Whether an OffsetCommit may land: from a member at the current generation (it
        counts as a heartbeat), or a "simple" commit (generation -1, member "") while the
        group is Empty. REBALANCE_IN_PROGRESS while the new generation's assignment is
        not out yet. Call ``tick`` first: this does not expire sessions (it has no answers
        to return)."""
        if generation < 0 and not member_id:
            if self.state is GroupState.DEAD:
                return ErrorCode.COORDINATOR_NOT_AVAILABLE
            return ErrorCode.NONE if self.state is GroupState.EMPTY else ErrorCode.UNKNOWN_MEMBER_ID
        error = self._check_member(member_id, generation)
        if error is ErrorCode.NONE and self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        if error is ErrorCode.NONE:
            self.members[member_id].last_heartbeat_ms = now_ms
        return error

    # -- time ------------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Completion]:
        """Expire sessions and MEMBER_ID_REQUIRED ids, and end a rebalance whose timeout
        passed."""
        done = self._expire(now_ms)
        if self.state is GroupState.PREPARING_REBALANCE and now_ms >= self.rebalance_deadline_ms:
            done += self._try_complete_join(now_ms, timed_out=True)
        return done

    def next_deadline_ms(self) -> int | None:
        """When ``tick`` next has something to do (None: nothing is timed)."""
        deadlines = list(self.pending.values())
        deadlines += [
            m.last_heartbeat_ms + m.session_timeout_ms + 1
            for m in self.members.values()
            if not self._kept_alive(m)
        ]
        if self.state is GroupState.PREPARING_REBALANCE:
            deadlines.append(self.rebalance_deadline_ms)
        return min(deadlines, default=None)

    def _kept_alive(self, member: ClassicMember) -> bool:
        """A member with a request waiting is alive: that request is its heartbeat."""
        return member.join_request is not None or member.sync_request is not None

    def _expire(self, now_ms: int) -> list[Completion]:
        done: list[Completion] = []
        for member_id, expiry in list(self.pending.items()):
            if now_ms >= expiry:
                del self.pending[member_id]
                done += self._try_complete_join(now_ms)
        for member in list(self.members.values()):
            silent = now_ms - member.last_heartbeat_ms > member.session_timeout_ms
            if silent and not self._kept_alive(member) and member.member_id in self.members:
                done += self._remove(member.member_id, now_ms)
        return done

    def _remove(self, member_id: str, now_ms: int) -> list[Completion]:
        member = self.members.pop(member_id)
        done: list[Completion] = []
        if member.join_request is not None:
            done.append((member.join_request, JoinAnswer(int(ErrorCode.UNKNOWN_MEMBER_ID))))
        if member.sync_request is not None:
            done.append((member.sync_request, SyncAnswer(int(ErrorCode.UNKNOWN_MEMBER_ID))))
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), "")
        if self.state in {GroupState.STABLE, GroupState.COMPLETING_REBALANCE}:
            done += self._prepare_rebalance(now_ms)
        return done + self._try_complete_join(now_ms)

    # -- requests that went away, and the end ------------------------------------------------

    def cancel(self, request_id: int, now_ms: int) -> list[Completion]:
        """The caller gave up on a waiting request (its connection closed): a waiting join's
        member leaves (so the barrier does not wait for it); a waiting sync is dropped."""
        for member in list(self.members.values()):
            if member.join_request == request_id:
                member.join_request = None
                return self._remove(member.member_id, now_ms)
            if member.sync_request == request_id:
                member.sync_request = None
        return []

    def shutdown(self, error: ErrorCode = ErrorCode.NOT_COORDINATOR) -> list[Completion]:
        """The group is gone from this coordinator (``DEAD``): every waiting request is
        answered with ``error``."""
        done: list[Completion] = []
        for member in self.members.values():
            if member.join_request is not None:
                done.append((member.join_request, JoinAnswer(int(error))))
            if member.sync_request is not None:
                done.append((member.sync_request, SyncAnswer(int(error))))
        self.members.clear()
        self.pending.clear()
        self.state = GroupState.DEAD
        return done

    def is_empty(self) -> bool:
        """True when the group has no members and no outstanding MEMBER_ID_REQUIRED ids."""
        return not self.members and not self.pending
