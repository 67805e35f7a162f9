"""Consumer groups behind every API edge: ``GroupService``.

A group's coordinator is the leader of partition ``murmur2(group) % N`` of the internal
topic ``__consumer_offsets`` (created on first use with ``offsets_partitions`` partitions);
that partition's ``GroupShard`` holds its members in memory and its committed offsets as
records (see ``server.group_shard`` and ``broker.group_log``). Written once above the
``TopicsBackend`` seam, so a single node and a cluster run the same code. A node that is
not the coordinator answers UNAVAILABLE naming the coordinator, as a follower does for
produces.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from replog.api.backend import ServerInfo
from replog.broker.assignors import ASSIGNORS, TopicPartition, assignor
from replog.broker.group_coordinator import GroupCoordinator, HeartbeatAnswer
from replog.broker.group_log import (
    MAX_METADATA_BYTES,
    OFFSETS_TOPIC,
    commit_records,
    delete_record,
    epoch_record,
)
from replog.broker.names import check_topic_name
from replog.broker.partitioner import murmur2, to_positive
from replog.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NonEmptyGroupError,
    NotFoundError,
    ReplogError,
    UnavailableError,
    UnknownMemberError,
    UnknownTopicError,
)
from replog.server.classic_groups import ClassicGroups
from replog.server.group_shard import GroupShard
from replog.server.group_upkeep import maintain
from replog.server.topics import TopicsBackend
from replog.v1.record_pb2 import Record

__all__ = ["GroupDescription", "GroupService", "PartitionOffset", "visible"]

_log = logging.getLogger("replog.groups")

DEFAULT_ASSIGNOR = "cooperative-sticky"
METADATA_CHECK_MS = 2_000
"""How often a group's subscribed topics are checked for new or deleted partitions."""
_GROUP_MAX = 255
MAX_OFFSET = 2**63 - 1
MAX_SESSION_TIMEOUT_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class PartitionOffset:
    """A group's committed offset of one partition (-1: none) and its lag (-1: unknown)."""

    topic: str
    partition: int
    committed: int
    end_offset: int
    lag: int


@dataclass(frozen=True, slots=True)
class MemberDescription:
    """One member: id, epoch, subscription and what it owns."""

    member_id: str
    member_epoch: int
    topics: tuple[str, ...]
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """A group as ``replog group describe`` shows it."""

    group: str
    state: str
    generation: int
    assignor: str
    members: tuple[MemberDescription, ...]
    offsets: tuple[PartitionOffset, ...]


def visible(d: GroupDescription, may_read: Callable[[str], bool]) -> GroupDescription:
    """``d`` without the topics ``may_read`` refuses: their offsets, lag, and the members'
    subscriptions and assignments of them (as FetchOffsets leaves them out)."""
    members = tuple(
        MemberDescription(
            m.member_id,
            m.member_epoch,
            tuple(t for t in m.topics if may_read(t)),
            tuple(tp for tp in m.assignment if may_read(tp.topic)),
        )
        for m in d.members
    )
    offsets = tuple(o for o in d.offsets if may_read(o.topic))
    return GroupDescription(d.group, d.state, d.generation, d.assignor, members, offsets)


def validate_group(name: str) -> str:
    """The group name, or InvalidArgumentError: 1..255 printable characters, no "/"."""
    if not name or len(name) > _GROUP_MAX or not name.isprintable() or "/" in name:
        raise InvalidArgumentError('a group name is 1..255 printable characters, without "/"')
    return name


class GroupService:
    """Consumer groups on this node (see the module docstring)."""

    def __init__(
        self,
        topics: TopicsBackend,
        *,
        is_me: Callable[[ServerInfo], bool],
        offsets_partitions: int,
        offsets_replication: Callable[[], int],
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 500,
        offsets_retention_ms: int = 7 * 24 * 3600 * 1000,
        now_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
    ) -> None:
        """``is_me`` tells this node among a partition's servers; ``offsets_replication()``
        the replication factor the offsets topic is created with."""
        self._topics = topics
        self._is_me = is_me
        self._partitions = offsets_partitions
        self._replication = offsets_replication
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._now_ms = now_ms
        self._shards: dict[int, GroupShard] = {}
        self.offsets_retention_ms = offsets_retention_ms
        self._maintainer: asyncio.Task[None] | None = None
        self._known_partitions = 0
        self._creating = asyncio.Lock()
        self._metadata: dict[str, tuple[int, dict[str, int]]] = {}
        count = self._topics.describe_topic
        self.classic = ClassicGroups(self._shard, lambda t: len(count(t).partitions), now_ms)

    # -- routing -----------------------------------------------------------------------------

    async def _offsets_partitions(self) -> int:
        """The offsets topic's partition count (it never changes once made: a group must
        map to the same partition for good), creating the topic on first use."""
        if self._known_partitions:
            return self._known_partitions
        self._known_partitions = await self._find_or_create()
        return self._known_partitions

    def _find(self) -> int:
        self._known_partitions = len(self._topics.describe_topic(OFFSETS_TOPIC).partitions)
        return self._known_partitions

    async def _find_or_create(self) -> int:
        async with self._creating:  # racing first requests of this node make it once
            try:
                return self._find()
            except UnknownTopicError:
                pass
            try:
                created = await self._topics.create_topic(
                    OFFSETS_TOPIC, self._partitions, self._replication(), self._offsets_config()
                )
            except AlreadyExistsError:  # another node is making it, and it is not here yet
                try:
                    return self._find()
                except UnknownTopicError:
                    raise UnavailableError(
                        f"{OFFSETS_TOPIC} is being made: retry", certainly_not_applied=True
                    ) from None
            return len(created.partitions)

    def _offsets_config(self) -> dict[str, str]:
        """Time retention, with segments small enough to go: compaction (``group_upkeep``)
        copies the live state forward four times per retention period."""
        retention = self.offsets_retention_ms
        return {
            "retention_ms": str(retention),
            "segment_ms": str(max(1, retention // 8)),
            "segment_bytes": str(16 << 20),
        }

    def start(self) -> None:
        """Start compacting the offsets partitions this node leads (call on its loop)."""
        if self._maintainer is None:
            self._maintainer = asyncio.ensure_future(maintain(self))

    def led_shards(self) -> list[GroupShard]:
        """The shards of the offsets partitions this node leads (none before the topic)."""
        count = self._known_partitions
        if not count:
            try:
                count = self._find()
            except ReplogError:
                return []  # no groups yet (the topic is made on first use), or no leader
        shards = [self._shard_of(index) for index in range(count)]
        return [s for s in shards if (leader := s.leader()) is not None and self._is_me(leader)]

    def offsets_retention_now(self) -> int:
        """The offsets topic's retention as it is (not as the setting says: the topic keeps
        the one it was made with, and compaction must run within that)."""
        config = self._topics.describe_topic(OFFSETS_TOPIC).config
        try:
            retention = int(config.get("retention_ms", "-1"))
        except ValueError:
            retention = -1
        return retention if retention > 0 else self.offsets_retention_ms

    def _shard_of(self, index: int) -> GroupShard:
        shard = self._shards.get(index)
        if shard is None:
            shard = self._shards[index] = GroupShard(
                index,
                lambda: self._topics.partition(OFFSETS_TOPIC, index),
                self._is_me,
                self._new_group,
            )
        return shard

    async def _shard(self, group: str) -> GroupShard:
        count = await self._offsets_partitions()
        shard = self._shard_of(to_positive(murmur2(validate_group(group).encode())) % count)
        await shard.ready()
        return shard

    async def coordinator(self, group_id: str) -> ServerInfo | None:
        """The server coordinating ``group_id`` in either protocol (its offsets partition's
        leader; None: none yet), for Kafka's FindCoordinator. Raises InvalidArgumentError."""
        count = await self._offsets_partitions()
        return self._shard_of(
            to_positive(murmur2(validate_group(group_id).encode())) % count
        ).leader()

    def _new_group(self, name: str, epoch: int, assignor_name: str) -> GroupCoordinator:
        return GroupCoordinator(
            name,
            self._topic_partitions,
            assignor_name=assignor_name,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            epoch=epoch,
        )

    def _topic_partitions(self) -> dict[str, int]:
        return {t.name: len(t.partitions) for t in self._topics.list_topics()}

    def _existing(self, shard: GroupShard, name: str) -> GroupCoordinator | None:
        """The group's coordinator if it has one in memory (members, or had them), its
        expired members removed; never made for a lookup."""
        group = shard.groups.get(name)
        if group is not None:
            group.expire(self._now_ms())
        return group

    def _group(self, shard: GroupShard, name: str, assignor_name: str = "") -> GroupCoordinator:
        group = shard.groups.get(name)
        if group is None:
            chosen = assignor_name or _recorded_assignor(shard, name)
            assignor(chosen)  # InvalidArgumentError naming the known ones
            group = shard.groups[name] = self._new_group(
                name, shard.state.epochs.get(name, 0), chosen
            )
        group.expire(self._now_ms())
        return group

    # -- the group protocol --------------------------------------------------------------------

    async def heartbeat(  # noqa: PLR0917  (the heartbeat's fields, in the request's order)
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        topics: Sequence[str] | None,
        owned: Iterable[TopicPartition] | None,
        session_timeout_ms: int = 0,
        assignor_name: str = "",
    ) -> HeartbeatAnswer:
        """One KIP-848 heartbeat (see ``GroupCoordinator.heartbeat``); a new epoch is
        recorded before the answer. Raises FencedMemberError, UnknownMemberError,
        InvalidArgumentError, UnavailableError (not the coordinator)."""
        if topics is not None:
            for topic in topics:
                check_topic_name(topic)
        shard = await self._shard(group_id)
        self.classic.refuse(group_id, shard, "join it over Kafka's protocol")
        group = self._group(shard, group_id, assignor_name)
        if session_timeout_ms > MAX_SESSION_TIMEOUT_MS:
            raise InvalidArgumentError(
                f"session_timeout_ms must be at most {MAX_SESSION_TIMEOUT_MS}"
            )
        self._watch_metadata(group_id, group)
        before = group.target_epoch
        answer = group.heartbeat(
            member_id,
            member_epoch,
            topics,
            owned,
            self._now_ms(),
            session_timeout_ms or self.session_timeout_ms,
        )
        if group.target_epoch != before:
            # The target was computed now: what the subscribed topics hold now is its base.
            self._metadata[group_id] = (self._now_ms(), self._counts(group.subscribed_topics()))
        if not group.members and group_id not in shard.state.groups():
            shard.groups.pop(group_id, None)  # the last member left a group that kept nothing
        # No answer carries an epoch the log does not hold: a new coordinator starts past it.
        while shard.state.epochs.get(group_id, 0) < group.epoch:
            await self._record_epoch(shard, group)
        return answer

    def _watch_metadata(self, group_id: str, group: GroupCoordinator) -> None:
        """Every ``METADATA_CHECK_MS``, see whether the subscribed topics' partition counts
        changed since the group's target was computed (a consumer that subscribed before
        its topic existed gets it once created); if so, a new epoch."""
        now = self._now_ms()
        checked_at, seen = self._metadata.get(group_id, (None, None))
        if checked_at is not None and now - checked_at < METADATA_CHECK_MS:
            return
        counts = self._counts(group.subscribed_topics())
        self._metadata[group_id] = (now, counts)
        if seen is not None and counts != seen and group.members:
            group.metadata_changed()

    def _counts(self, topics: Iterable[str]) -> dict[str, int]:
        counts = {}
        for topic in topics:
            try:
                counts[topic] = len(self._topics.describe_topic(topic).partitions)
            except UnknownTopicError:
                counts[topic] = 0
        return counts

    async def _record_epoch(self, shard: GroupShard, group: GroupCoordinator) -> None:
        name, assignor_name = group.group_id, group.assignor_name
        # The epoch is read as the record is built: the latest, whatever came meanwhile.
        await shard.write(lambda inc: [epoch_record(inc, name, group.epoch, assignor_name)])

    async def commit(
        self,
        group_id: str,
        member_id: str,
        member_epoch: int,
        offsets: Mapping[TopicPartition, tuple[int, str]],
    ) -> None:
        """Commit offsets (all or none) as a member at its epoch, or as a tool ("") while
        the group has no members. Raises FencedMemberError, UnknownMemberError,
        NonEmptyGroupError, NotFoundError (a topic or partition that does not exist),
        InvalidArgumentError, UnavailableError."""
        if not offsets:
            raise InvalidArgumentError("a commit needs at least one offset")
        for tp, (offset, metadata) in offsets.items():
            if not 0 <= offset <= MAX_OFFSET:
                raise InvalidArgumentError(f"offset must be in [0, {MAX_OFFSET}], got {offset}")
            if len(metadata.encode()) > MAX_METADATA_BYTES:
                raise InvalidArgumentError(
                    f"metadata of {tp.topic}/{tp.partition} is over {MAX_METADATA_BYTES} bytes"
                )
        shard = await self._shard(group_id)
        self._check_partitions(offsets)
        rows = [(tp.topic, tp.partition, o, m) for tp, (o, m) in sorted(offsets.items())]

        def records(incarnation: str) -> list[Record]:
            # Checked as the records are built, with the shard's writes serialized: a member
            # fenced by a write before this one cannot land this commit.
            if not member_id:
                self.classic.refuse(group_id, shard, "commit as one of them")
            group = self._existing(shard, group_id)
            if group is not None:
                group.check_commit(member_id, member_epoch)
            elif member_id:
                raise UnknownMemberError(f"group {group_id!r} has no member {member_id!r}")
            return commit_records(incarnation, group_id, rows)

        await shard.write(records)

    def _check_partitions(self, offsets: Iterable[TopicPartition]) -> None:
        counts: dict[str, int] = {}
        for tp in offsets:
            if tp.topic not in counts:
                counts[tp.topic] = len(self._topics.describe_topic(tp.topic).partitions)
            if not 0 <= tp.partition < counts[tp.topic]:
                raise NotFoundError(f"topic {tp.topic!r} has no partition {tp.partition}")

    async def fetch(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, tuple[int, str]]:
        """Committed (offset, metadata) per partition: those asked for (-1 where none), or
        every one the group committed."""
        shard = await self._shard(group_id)
        mine = shard.state.offsets.get(group_id, {})
        if partitions is None:
            return {TopicPartition(t, p): v for (t, p), v in mine.items()}
        return {tp: mine.get((tp.topic, tp.partition), (-1, "")) for tp in partitions}

    async def describe(self, group_id: str) -> GroupDescription:
        """Members, assignment, committed offsets and lag. Raises NotFoundError for a group
        that has neither members nor offsets."""
        shard = await self._shard(group_id)
        if (classic := self.classic.view(group_id, shard)) is not None:
            members = tuple(MemberDescription(*m) for m in classic.members)
            owned = [tp for m in members for tp in m.assignment]
            offsets = self._lags(shard.state.offsets.get(group_id, {}), owned)
            return GroupDescription(group_id, *classic.group, members, offsets)
        group = self._existing(shard, group_id)
        if group is None or not group.members:
            if group_id not in shard.state.groups():
                raise NotFoundError(f"no consumer group {group_id!r}")
            group = self._new_group(  # a description of an empty group: not kept
                group_id,
                shard.state.epochs.get(group_id, 0),
                _recorded_assignor(shard, group_id),
            )
        members = tuple(
            MemberDescription(m.member_id, m.epoch, tuple(sorted(m.topics)), tuple(sorted(m.owned)))
            for m in sorted(group.members.values(), key=lambda m: m.member_id)
        )
        return GroupDescription(
            group_id,
            _state(group),
            group.epoch,
            group.assignor_name,
            members,
            self._lags(shard.state.offsets.get(group_id, {}), group.owners()),
        )

    def _lags(
        self, committed: Mapping[tuple[str, int], tuple[int, str]], owned: Iterable[TopicPartition]
    ) -> tuple[PartitionOffset, ...]:
        wanted = set(committed) | {(tp.topic, tp.partition) for tp in owned}
        out = []
        for topic, partition in sorted(wanted):
            offset = committed.get((topic, partition), (-1, ""))[0]
            low, end = self._bounds(topic, partition)
            lag = -1 if end < 0 else max(0, end - (offset if offset >= 0 else low))
            out.append(PartitionOffset(topic, partition, offset, end, lag))
        return tuple(out)

    def _bounds(self, topic: str, partition: int) -> tuple[int, int]:
        try:
            backend = self._topics.partition(topic, partition)
            return backend.lowest_offset, backend.high_watermark
        except ReplogError:  # a partition this node cannot see: lag unknown
            return -1, -1

    async def list_groups(self) -> list[tuple[str, str, int]]:
        """(group, state, members) of every group this node coordinates."""
        count = await self._offsets_partitions()
        out: list[tuple[str, str, int]] = []
        for index in range(count):
            shard = self._shard_of(index)
            leader = shard.leader()
            if leader is None or not self._is_me(leader):
                continue
            await shard.ready()
            live = {name for name, group in shard.groups.items() if group.members}
            live |= set(self.classic.live_groups(shard))
            for name in sorted(shard.state.groups() | live):
                group = self._existing(shard, name)
                if (classic := self.classic.view(name, shard)) is not None:
                    out.append((name, classic.group[0], len(classic.members)))
                elif group is None or not group.members:
                    out.append((name, "empty", 0))
                else:
                    out.append((name, _state(group), len(group.members)))
        return sorted(out)

    async def delete(self, group_id: str) -> None:
        """Delete a group with no members (its offsets go). Raises NonEmptyGroupError,
        NotFoundError."""
        shard = await self._shard(group_id)

        def records(incarnation: str) -> list[Record]:
            # Checked with the shard's writes serialized: a member that joined meanwhile
            # (its epoch record is written after this) keeps the group.
            group = self._existing(shard, group_id)
            self.classic.refuse(group_id, shard, "they must leave first")
            if group is not None and group.members:
                raise NonEmptyGroupError(f"group {group_id!r} has members: they must leave first")
            if group_id not in shard.state.groups():
                raise NotFoundError(f"no consumer group {group_id!r}")
            return [delete_record(incarnation, group_id)]

        await shard.write(records)
        group = shard.groups.get(group_id)
        if group is None or not group.members:
            shard.groups.pop(group_id, None)
            self._metadata.pop(group_id, None)
        self.classic.forget(group_id)

    async def close(self) -> None:
        """Stop compacting, answer waiting classic requests, stop every shard's reader."""
        await self.classic.close()
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.gather(self._maintainer, return_exceptions=True)
        for shard in self._shards.values():
            await shard.close()


def _recorded_assignor(shard: GroupShard, name: str) -> str:
    """The group's recorded assignor; the default for a classic ``classic:<protocol>``."""
    recorded = shard.state.assignors.get(name, "")
    return recorded if recorded in ASSIGNORS else DEFAULT_ASSIGNOR


def _state(group: GroupCoordinator) -> str:
    if not group.members:
        return "empty"
    if all(m.epoch == group.epoch and not m.revoking for m in group.members.values()):
        return "stable"
    return "reconciling"
