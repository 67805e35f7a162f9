"""A consumer group's coordinator, as Kafka's KIP-848 protocol has it: members heartbeat,
the coordinator assigns. Pure: no I/O; time comes in as ``now_ms``.

State: the group's *epoch* grows whenever its membership or a member's subscription
changes (a join, a leave, an expired session, a new subscription); each time, the group's
assignor (``broker.assignors``) computes a *target assignment* at that epoch. Every member
has its own *member epoch*, the target epoch it has caught up with, and what it may own
now. Reconciliation moves each member to its target without a partition ever being
owned by two members:

1. A member that owns partitions its target does not hold is told to keep only
   ``owned & target`` (its assignment shrinks: it must revoke the rest); its epoch stays.
2. Once a heartbeat reports it owns no partition outside its target, it moves to the
   target epoch and is given those target partitions no other member still owns; the
   others (still being revoked elsewhere) follow in a later heartbeat, once released.

A member that misses ``session_timeout_ms`` of heartbeats is removed (its partitions are
free at once); one that leaves says so (``LEAVE_EPOCH``). A heartbeat carrying an epoch
other than the member's own (a zombie, or a member that missed a step) is fenced with
``FencedMemberError``; the member rejoins with epoch 0 as a new member. Offset commits
carry the member id and epoch and are refused from anyone but a current member at its
current epoch (``check_commit``), so a fenced zombie's commit never lands.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from replog.broker.assignors import MemberSubscription, TopicPartition, assignor
from replog.errors import (
    FencedMemberError,
    InvalidArgumentError,
    NonEmptyGroupError,
    UnknownMemberError,
)

__all__ = [
    "JOIN_EPOCH",
    "LEAVE_EPOCH",
    "GroupCoordinator",
    "HeartbeatAnswer",
    "MemberState",
]

JOIN_EPOCH = 0
"""A heartbeat with member epoch 0 joins (or rejoins) the group."""
LEAVE_EPOCH = -1
"""A heartbeat with member epoch -1 leaves the group."""


@dataclass(slots=True)
class MemberState:
    """One member as the coordinator sees it."""

    member_id: str
    epoch: int
    topics: frozenset[str]
    session_timeout_ms: int
    last_heartbeat_ms: int
    owned: frozenset[TopicPartition] = frozenset()
    """What the member may own now (its last answer's assignment)."""
    revoking: frozenset[TopicPartition] = frozenset()
    """What it was told to give up and has not yet reported released: still its own, so
    nobody else is given them."""


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """What a heartbeat answers: the member's id and epoch, and what it may own now."""

    member_id: str
    member_epoch: int
    assignment: frozenset[TopicPartition]
    heartbeat_interval_ms: int


@dataclass(slots=True)
class GroupCoordinator:
    """One consumer group (see the module docstring). ``partitions`` gives each existing
    topic's partition count (topic -> count)."""

    group_id: str
    partitions: Callable[[], Mapping[str, int]]
    assignor_name: str = "cooperative-sticky"
    heartbeat_interval_ms: int = 3_000
    new_member_id: Callable[[], str] = field(default=lambda: secrets.token_hex(8))
    epoch: int = 0
    members: dict[str, MemberState] = field(default_factory=dict)
    target: dict[str, frozenset[TopicPartition]] = field(default_factory=dict)
    target_epoch: int = 0

    def __post_init__(self) -> None:
        assignor(self.assignor_name)  # InvalidArgumentError naming the known ones

    # -- heartbeats -----------------------------------------------------------------------

    def heartbeat(  # noqa: PLR0917  (KIP-848's heartbeat fields, in its order)
        self,
        member_id: str,
        member_epoch: int,
        topics: Iterable[str] | None,
        owned: Iterable[TopicPartition] | None,
        now_ms: int,
        session_timeout_ms: int = 45_000,
    ) -> HeartbeatAnswer:
        """Join (``member_epoch`` 0; ``member_id`` "" to be given one), heartbeat, or
        leave (``LEAVE_EPOCH``). ``topics``: the subscription (None: unchanged);
        ``owned``: what the member holds now (None: what it was last given). Raises
        FencedMemberError, UnknownMemberError, InvalidArgumentError."""
        self.expire(now_ms)
        if member_epoch == LEAVE_EPOCH:
            self.leave(member_id)
            return HeartbeatAnswer(member_id, LEAVE_EPOCH, frozenset(), self.heartbeat_interval_ms)
        if member_epoch == JOIN_EPOCH:
            member = self._join(member_id, topics, session_timeout_ms, now_ms)
        else:
            member = self._member(member_id, member_epoch)
            member.last_heartbeat_ms = now_ms
            if topics is not None and frozenset(topics) != member.topics:
                member.topics = frozenset(topics)
                self._bump()
        if owned is not None:
            # What a member no longer reports holding it has released.
            held = frozenset(owned)
            member.owned &= held
            member.revoking &= held
        self._reconcile(member)
        return HeartbeatAnswer(
            member.member_id, member.epoch, member.owned, self.heartbeat_interval_ms
        )

    def _join(
        self, member_id: str, topics: Iterable[str] | None, session_ms: int, now_ms: int
    ) -> MemberState:
        if topics is None:
            raise InvalidArgumentError("a member joins with the topics it subscribes to")
        if session_ms <= 0:
            raise InvalidArgumentError("session_timeout_ms must be positive")
        if member_id in self.members:  # a rejoin: its old incarnation is gone
            self._remove(member_id)
        member_id = member_id or self.new_member_id()
        self.members[member_id] = MemberState(member_id, 0, frozenset(topics), session_ms, now_ms)
        self._bump()
        return self.members[member_id]

    def _member(self, member_id: str, member_epoch: int) -> MemberState:
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(f"group {self.group_id!r} has no member {member_id!r}")
        if member_epoch != member.epoch:
            raise FencedMemberError(
                f"member {member_id!r} of group {self.group_id!r} is at epoch {member.epoch}, "
                f"not {member_epoch}: rejoin"
            )
        return member

    def leave(self, member_id: str) -> None:
        """The member leaves: its partitions are free at once."""
        if member_id in self.members:
            self._remove(member_id)

    def expire(self, now_ms: int) -> list[str]:
        """Remove the members whose session ran out; return their ids."""
        gone = [
            m.member_id
            for m in self.members.values()
            if now_ms - m.last_heartbeat_ms > m.session_timeout_ms
        ]
        for member_id in gone:
            self._remove(member_id)
        return gone

    def _remove(self, member_id: str) -> None:
        del self.members[member_id]
        self._bump()

    # -- assignment ------------------------------------------------------------------------

    def _bump(self) -> None:
        """Membership or subscriptions changed: a new epoch and its target assignment."""
        self.epoch += 1
        self.refresh_target()

    def subscribed_topics(self) -> frozenset[str]:
        """Every topic some member subscribes to."""
        return frozenset().union(*(m.topics for m in self.members.values()))

    def metadata_changed(self) -> None:
        """The subscribed topics' partitions changed (a topic was created, grown or
        deleted): a new epoch, whose target assignment covers them."""
        self._bump()

    def refresh_target(self) -> None:
        """Compute the target assignment at the group's epoch (also after topics grew)."""
        subscriptions = [
            MemberSubscription(m.member_id, m.topics, self.target.get(m.member_id, m.owned))
            for m in sorted(self.members.values(), key=lambda m: m.member_id)
        ]
        self.target = assignor(self.assignor_name).assign(subscriptions, self.partitions())
        self.target_epoch = self.epoch

    def _reconcile(self, member: MemberState) -> None:
        target = self.target.get(member.member_id, frozenset())
        if member.revoking or member.owned - target:  # step 1: revoke first, old epoch
            member.revoking |= member.owned - target
            member.owned &= target
            return
        member.epoch = self.target_epoch  # step 2: at the target; take what is free
        held_elsewhere: set[TopicPartition] = set()
        for other in self.members.values():
            if other is not member:
                held_elsewhere |= other.owned | other.revoking
        member.owned = frozenset(tp for tp in target if tp not in held_elsewhere)

    # -- offsets -----------------------------------------------------------------------------

    def check_commit(self, member_id: str, member_epoch: int) -> None:
        """Whether a commit may land: from a current member at its epoch, or from a caller
        outside the group protocol (``member_id`` "") while the group has no members.
        Raises FencedMemberError or UnknownMemberError."""
        if not member_id:
            if self.members:
                raise NonEmptyGroupError(
                    f"group {self.group_id!r} has members: commit as one of them"
                )
            return
        self._member(member_id, member_epoch)

    def owners(self) -> dict[TopicPartition, str]:
        """Which member holds each assigned partition now (being revoked included)."""
        return {tp: m.member_id for m in self.members.values() for tp in m.owned | m.revoking}
