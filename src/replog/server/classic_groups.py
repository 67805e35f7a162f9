"""Kafka classic-protocol groups (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit)
on the same coordinator as replog's own groups: ``ClassicGroups``, an asyncio adapter
around ``broker.classic_group.ClassicGroup``.

- The coordinator of group ``g`` is the same node, and ``g`` lives in the same
  ``__consumer_offsets`` partition (``GroupShard``), whichever protocol it speaks.
- A waiting request (a join at the barrier, a follower's sync) is a future resolved when
  the machine's answer comes out; one timer per group drives ``tick`` at the machine's next
  deadline (no polling). A cancelled waiting join makes its member leave, so the barrier
  does not wait for a member whose caller is gone.
- A completed generation is recorded (``epoch_record``, assignor ``classic:<protocol>``)
  before its join answers go out, so a new coordinator, which starts the group at the last
  recorded generation, hands out only generations above any member ever saw.
- Offsets are the replog group's own (the same ``commit`` records): ``replog group
  describe`` and the gRPC/HTTP fetch show what Kafka consumers committed, and back.
- One protocol at a time: while a group has classic members a replog heartbeat (or a
  tool's commit, or a delete) is refused with NonEmptyGroupError; while it has replog
  members, a JoinGroup answers INCONSISTENT_GROUP_PROTOCOL and an OffsetCommit
  UNKNOWN_MEMBER_ID (no such classic member).

Errors come back as Kafka error codes (``ErrorCode``): NOT_COORDINATOR when another node
coordinates the group, INVALID_GROUP_ID for a bad name.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from replog.broker.assignors import TopicPartition
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
from replog.broker.consumer_protocol import decode_assignment, decode_subscription_topics
from replog.broker.group_log import MAX_METADATA_BYTES, commit_records, epoch_record
from replog.errors import (
    InvalidArgumentError,
    NonEmptyGroupError,
    NotFoundError,
    ReplogError,
    UnavailableError,
)
from replog.server.group_shard import GroupShard
from replog.v1.record_pb2 import Record

__all__ = ["CLASSIC_ASSIGNOR_PREFIX", "ClassicGroups", "ClassicView", "MemberRow"]

CLASSIC_ASSIGNOR_PREFIX = "classic:"
"""Epoch records of classic generations name the chosen protocol after this prefix."""
MAX_OFFSET = 2**63 - 1


MemberRow = tuple[str, int, tuple[str, ...], tuple[TopicPartition, ...]]
"""A classic member as ``describe`` shows it: (member id, generation, topics, partitions),
decoded from the ConsumerProtocol when the protocol type is "consumer" (else, or when the
bytes do not parse, none)."""


@dataclass(frozen=True, slots=True)
class ClassicView:
    """A classic group with members, for ``describe`` and ``list`` (members by id)."""

    state: str
    generation: int
    assignor: str
    members: tuple[MemberRow, ...]

    @property
    def group(self) -> tuple[str, int, str]:
        """(state, generation, assignor), as ``GroupDescription`` has them."""
        return self.state, self.generation, self.assignor


@dataclass(slots=True)
class _Entry:
    machine: ClassicGroup
    shard: GroupShard
    tenure: int
    """The shard's ``tenure`` it was made under: members do not outlive a takeover."""
    futures: dict[int, asyncio.Future[Answer]] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class ClassicGroups:
    """Classic groups on this node (see the module docstring)."""

    def __init__(
        self,
        shard_of: Callable[[str], Awaitable[GroupShard]],
        partition_count: Callable[[str], int],
        now_ms: Callable[[], int],
        *,
        new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
        min_session_timeout_ms: int = 6_000,
        max_session_timeout_ms: int = 1_800_000,
    ) -> None:
        """``shard_of(group)`` gives the group's shard once this node coordinates it (else
        raises UnavailableError); ``partition_count(topic)`` raises NotFoundError for a
        topic that does not exist."""
        self._shard_of = shard_of
        self._partition_count = partition_count
        self._now_ms = now_ms
        self._new_uuid = new_uuid
        self._session_bounds = (min_session_timeout_ms, max_session_timeout_ms)
        self._entries: dict[str, _Entry] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the protocol -----------------------------------------------------------------------

    async def join(  # noqa: PLR0917  (JoinGroup's fields, in its order)
        self,
        group_id: str,
        member_id: str,
        client_id: str,
        protocol_type: str,
        protocols: Iterable[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        require_known_member: bool = False,
    ) -> JoinAnswer:
        """JoinGroup; returns once the rebalance completes (or at once when it can answer).
        ``require_known_member`` for v4+ (MEMBER_ID_REQUIRED first); v0, which has no
        rebalance timeout, passes the session timeout as Kafka does."""
        entry = await self._entry(group_id)
        if isinstance(entry, ErrorCode):
            return JoinAnswer(int(entry), member_id=member_id)
        if self._replog_members(entry, group_id):
            return JoinAnswer(int(ErrorCode.INCONSISTENT_GROUP_PROTOCOL), member_id=member_id)
        wanted = tuple(protocols)
        answer = await self._run(
            entry,
            lambda rid, now: entry.machine.join(
                rid,
                member_id,
                client_id,
                protocol_type,
                wanted,
                session_timeout_ms,
                rebalance_timeout_ms,
                now,
                require_known_member,
            ),
        )
        assert isinstance(answer, JoinAnswer)
        return answer

    async def sync(
        self, group_id: str, member_id: str, generation: int, assignments: Mapping[str, bytes]
    ) -> SyncAnswer:
        """SyncGroup; a follower's returns once the leader synced."""
        entry = await self._entry(group_id)
        if isinstance(entry, ErrorCode):
            return SyncAnswer(int(entry))
        plan = dict(assignments)
        answer = await self._run(
            entry, lambda rid, now: entry.machine.sync(rid, member_id, generation, plan, now)
        )
        assert isinstance(answer, SyncAnswer)
        return answer

    async def heartbeat(self, group_id: str, member_id: str, generation: int) -> HeartbeatAnswer:
        """Heartbeat."""
        entry = await self._entry(group_id)
        if isinstance(entry, ErrorCode):
            return HeartbeatAnswer(int(entry))
        answer = await self._run(
            entry, lambda rid, now: entry.machine.heartbeat(rid, member_id, generation, now)
        )
        assert isinstance(answer, HeartbeatAnswer)
        return answer

    async def leave(self, group_id: str, member_ids: Iterable[str]) -> LeaveAnswer:
        """LeaveGroup of one member (v0-2) or a batch (v3)."""
        entry = await self._entry(group_id)
        if isinstance(entry, ErrorCode):
            return LeaveAnswer(int(entry))
        leaving = list(member_ids)
        answer = await self._run(entry, lambda rid, now: entry.machine.leave(rid, leaving, now))
        assert isinstance(answer, LeaveAnswer)
        return answer

    async def commit(
        self,
        group_id: str,
        member_id: str,
        generation: int,
        offsets: Mapping[TopicPartition, tuple[int, str]],
    ) -> dict[TopicPartition, int]:
        """OffsetCommit (v2-7): an error code per partition. The group's check (generation,
        member) applies to all; then an unknown partition or oversized metadata to each;
        the rest land at once, as one record."""
        entry = await self._entry(group_id)
        if isinstance(entry, ErrorCode):
            return dict.fromkeys(offsets, int(entry))
        before = entry.machine.generation
        self._settle(entry, entry.machine.tick(self._now_ms()), before)
        results = {tp: int(self._check_offset(tp, o, m)) for tp, (o, m) in offsets.items()}
        rows = [
            (tp.topic, tp.partition, offset, metadata)
            for tp, (offset, metadata) in sorted(offsets.items())
            if results[tp] == ErrorCode.NONE
        ]

        def checked(incarnation: str) -> list[Record]:
            # Checked as the records are built, with the shard's writes serialized.
            error = entry.machine.check_commit(member_id, generation, self._now_ms())
            if self._replog_members(entry, group_id):
                error = ErrorCode.UNKNOWN_MEMBER_ID
            if error is not ErrorCode.NONE:
                raise _RefusedError(error)
            return commit_records(incarnation, group_id, rows)

        if rows:
            error = await self._write(entry, checked)
        else:
            try:
                checked("")
                error = ErrorCode.NONE
            except _RefusedError as refused:
                error = refused.error
        self._schedule(entry)  # a commit counts as a heartbeat
        return results if error is ErrorCode.NONE else dict.fromkeys(offsets, int(error))

    def _check_offset(self, tp: TopicPartition, offset: int, metadata: str) -> ErrorCode:
        if not 0 <= offset <= MAX_OFFSET:
            return ErrorCode.INVALID_COMMIT_OFFSET_SIZE
        if len(metadata.encode()) > MAX_METADATA_BYTES:  # Kafka's default limit too
            return ErrorCode.OFFSET_METADATA_TOO_LARGE
        try:
            count = self._partition_count(tp.topic)
        except (NotFoundError, InvalidArgumentError):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ErrorCode.NONE if 0 <= tp.partition < count else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION

    # -- what the replog side asks -------------------------------------------------------------

    def in_use(self, group_id: str, shard: GroupShard) -> bool:
        """True while the group has classic members (or MEMBER_ID_REQUIRED ids out) under
        this node's current tenure as the coordinator."""
        entry = self._current(group_id, shard)
        return entry is not None and not entry.machine.is_empty()

    def refuse(self, group_id: str, shard: GroupShard, hint: str) -> None:
        """Raise NonEmptyGroupError (saying ``hint``) while the group has classic members:
        the replog protocol's joins, tools' commits and deletes are refused then."""
        if self.in_use(group_id, shard):
            raise NonEmptyGroupError(f"group {group_id!r} has Kafka classic members: {hint}")

    def view(self, group_id: str, shard: GroupShard) -> ClassicView | None:
        """The group's classic members and state, or None when it has none."""
        entry = self._current(group_id, shard)
        if entry is None or not entry.machine.members:
            return None
        machine = entry.machine
        consumer = machine.protocol_type == "consumer"
        members: list[MemberRow] = []
        for member in sorted(machine.members.values(), key=lambda m: m.member_id):
            topics = decode_subscription_topics(member.metadata(machine.protocol_name))
            assigned = decode_assignment(member.assignment)
            members.append((
                member.member_id,
                machine.generation,
                (topics or ()) if consumer else (),
                (assigned or ()) if consumer else (),
            ))  # fmt: skip
        return ClassicView(
            _STATE_NAMES[machine.state],
            machine.generation,
            CLASSIC_ASSIGNOR_PREFIX + machine.protocol_name,
            tuple(members),
        )

    def live_groups(self, shard: GroupShard) -> list[str]:
        """The groups of ``shard`` that have classic members now."""
        return [name for name in self._entries if self.view(name, shard) is not None]

    def forget(self, group_id: str) -> None:
        """The group was deleted: its (empty) classic state goes."""
        entry = self._entries.pop(group_id, None)
        if entry is not None:
            self._drop(entry)

    async def close(self) -> None:
        """Answer every waiting request NOT_COORDINATOR and stop the timers."""
        for entry in list(self._entries.values()):
            self._drop(entry)
        self._entries.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the machinery --------------------------------------------------------------------------

    def _current(self, group_id: str, shard: GroupShard) -> _Entry | None:
        entry = self._entries.get(group_id)
        if entry is None or entry.shard is not shard or not shard.active:
            return None
        return entry if entry.tenure == shard.tenure else None

    async def _entry(self, group_id: str) -> _Entry | ErrorCode:
        """The group's entry of this node's current tenure as coordinator (a new coordinator's
        group starts at the last recorded generation), or why there is none."""
        try:
            shard = await self._shard_of(group_id)
        except UnavailableError:
            return ErrorCode.NOT_COORDINATOR
        except InvalidArgumentError:
            return ErrorCode.INVALID_GROUP_ID
        entry = self._entries.get(group_id)
        stale = entry is not None and (
            entry.tenure != shard.tenure or entry.machine.state is GroupState.DEAD
        )
        if entry is not None and stale:
            self._drop(entry)
            entry = None
        recorded = shard.state.epochs.get(group_id, 0)
        if entry is None:
            low, high = self._session_bounds
            machine = ClassicGroup(group_id, self._new_uuid, recorded, low, high)
            entry = self._entries[group_id] = _Entry(machine, shard, shard.tenure)
        elif entry.machine.is_empty() and recorded > entry.machine.generation:
            entry.machine.generation = recorded  # the replog protocol used the name since
        return entry

    def _replog_members(self, entry: _Entry, group_id: str) -> bool:
        group = entry.shard.groups.get(group_id)
        if group is None:
            return False
        group.expire(self._now_ms())
        return bool(group.members)

    async def _run(self, entry: _Entry, call: Callable[[int, int], list[Completion]]) -> Answer:
        """Register a future, make the call, resolve what it completed, await ours."""
        rid = next(self._ids)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        entry.futures[rid] = future
        before = entry.machine.generation
        self._settle(entry, call(rid, self._now_ms()), before)
        try:
            return await future
        except asyncio.CancelledError:
            if entry.futures.pop(rid, None) is not None:  # still waiting in the machine
                before = entry.machine.generation
                self._settle(entry, entry.machine.cancel(rid, self._now_ms()), before)
            raise

    def _settle(self, entry: _Entry, done: list[Completion], before: int) -> None:
        """Resolve the completed answers; a new generation is recorded first."""
        if entry.machine.generation != before:
            task = asyncio.ensure_future(self._record(entry, done, entry.machine.generation))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._deliver(entry, done)
        self._schedule(entry)

    async def _record(self, entry: _Entry, done: list[Completion], generation: int) -> None:
        group_id = entry.machine.group_id
        assignor = CLASSIC_ASSIGNOR_PREFIX + entry.machine.protocol_name
        error = await self._write(
            entry, lambda inc: [epoch_record(inc, group_id, generation, assignor)]
        )
        if error is not ErrorCode.NONE:
            done = [(rid, _failed(answer, error)) for rid, answer in done]
        replog = entry.shard.groups.get(group_id)
        if replog is not None and not replog.members:
            del entry.shard.groups[group_id]  # so it starts again above this generation
        self._deliver(entry, done)

    async def _write(self, entry: _Entry, records: Callable[[str], list[Record]]) -> ErrorCode:
        """Write what ``records(incarnation)`` builds, in the entry's tenure only."""

        def build(incarnation: str) -> list[Record]:
            if entry.tenure != entry.shard.tenure:
                raise _RefusedError(ErrorCode.NOT_COORDINATOR)
            return records(incarnation)

        try:
            await entry.shard.write(build)
        except _RefusedError as refused:
            return refused.error
        except UnavailableError:
            return ErrorCode.NOT_COORDINATOR
        except ReplogError:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE

    def _deliver(self, entry: _Entry, done: list[Completion]) -> None:
        for rid, answer in done:
            future = entry.futures.pop(rid, None)
            if future is not None and not future.done():
                future.set_result(answer)

    def _schedule(self, entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        deadline = entry.machine.next_deadline_ms()
        if deadline is None:
            return
        delay_s = max(0, deadline - self._now_ms() + 1) / 1000
        entry.timer = asyncio.get_running_loop().call_later(delay_s, self._on_timer, entry)

    def _on_timer(self, entry: _Entry) -> None:
        entry.timer = None
        if self._entries.get(entry.machine.group_id) is not entry:
            return
        if not entry.shard.active or entry.shard.tenure != entry.tenure:
            del self._entries[entry.machine.group_id]
            self._drop(entry)
            return
        before = entry.machine.generation
        self._settle(entry, entry.machine.tick(self._now_ms()), before)

    def _drop(self, entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        # Answers already out of the machine (a generation being recorded) still arrive.
        self._deliver(entry, entry.machine.shutdown())


# In the words ``replog group describe`` already uses (the API's documented states): a
# rebalance in progress is the classic protocol's "reconciling".
class _RefusedError(Exception):
    """A check made as records are built failed: nothing is written."""

    def __init__(self, error: ErrorCode) -> None:
        super().__init__(error.name)
        self.error = error


_STATE_NAMES = {
    GroupState.EMPTY: "empty",
    GroupState.PREPARING_REBALANCE: "reconciling",
    GroupState.COMPLETING_REBALANCE: "reconciling",
    GroupState.STABLE: "stable",
    GroupState.DEAD: "empty",
}


def _failed(answer: Answer, error: ErrorCode) -> Answer:
    """The same kind of answer, carrying ``error`` instead."""
    if isinstance(answer, JoinAnswer):
        return JoinAnswer(int(error), member_id=answer.member_id)
    if isinstance(answer, SyncAnswer):
        return SyncAnswer(int(error))
    if isinstance(answer, LeaveAnswer):
        return LeaveAnswer(int(error))
    return HeartbeatAnswer(int(error))
