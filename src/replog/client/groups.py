"""Consumer group calls from the clients: the ``replog.v1.Groups`` service and its results.

``Client`` and ``AsyncClient`` get these methods from ``GroupMethods`` and
``AsyncGroupMethods``. A group's calls go to its coordinator (the leader of one partition
of ``__consumer_offsets``): first to the produce leader the client knows, then wherever an
UNAVAILABLE answer's ``replog-leader`` points, which the client remembers per group. Reads
(fetch, describe, list) are retried like reads; a heartbeat, a commit and a delete only
when the server said it certainly did not apply them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from replog.client.core import DEFAULT_TIMEOUT, check_offset, check_partition
from replog.errors import InvalidArgumentError
from replog.v1 import group_pb2 as pb

__all__ = [
    "GROUP_METHODS",
    "AsyncGroupMethods",
    "GroupDescription",
    "GroupListing",
    "GroupMember",
    "GroupMethods",
    "HeartbeatAnswer",
    "PartitionLag",
    "TopicPartition",
]

_PREFIX = "/replog.v1.Groups/"
HEARTBEAT, COMMIT, FETCH, DESCRIBE_GROUP, LIST_GROUPS, DELETE_GROUP = (
    _PREFIX + name
    for name in (
        "Heartbeat",
        "CommitOffsets",
        "FetchOffsets",
        "DescribeGroup",
        "ListGroups",
        "DeleteGroup",
    )
)


def _method(request: Any, response: Any) -> tuple[str, Callable[[Any], bytes], Any]:
    return ("uu", request.SerializeToString, response.FromString)


#: path -> (kind, request serializer, response deserializer), as ``client._METHODS``.
GROUP_METHODS: dict[str, tuple[str, Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    HEARTBEAT: _method(pb.GroupHeartbeatRequest, pb.GroupHeartbeatResponse),
    COMMIT: _method(pb.CommitOffsetsRequest, pb.CommitOffsetsResponse),
    FETCH: _method(pb.FetchOffsetsRequest, pb.FetchOffsetsResponse),
    DESCRIBE_GROUP: _method(pb.DescribeGroupRequest, pb.DescribeGroupResponse),
    LIST_GROUPS: _method(pb.ListGroupsRequest, pb.ListGroupsResponse),
    DELETE_GROUP: _method(pb.DeleteGroupRequest, pb.DeleteGroupResponse),
}

#: A (topic, partition) pair.
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    """A heartbeat's answer: the member's id and epoch, what it may own now (it releases
    everything else), and how long to wait before the next heartbeat."""

    member_id: str
    member_epoch: int
    assignment: frozenset[TopicPartition]
    heartbeat_interval_ms: int


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One member of a group: id, epoch, subscribed topics and the partitions it owns."""

    member_id: str
    member_epoch: int
    topics: tuple[str, ...]
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """A group's committed offset of one partition (-1: none), the partition's end offset
    and the lag (-1: unknown)."""

    topic: str
    partition: int
    committed: int
    end_offset: int
    lag: int


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """A group: its state ("empty", "stable", "reconciling"), generation (the group
    epoch), assignor, members and committed offsets with their lag."""

    group: str
    state: str
    generation: int
    assignor: str
    members: tuple[GroupMember, ...]
    offsets: tuple[PartitionLag, ...]


@dataclass(frozen=True, slots=True)
class GroupListing:
    """One group as ``list_groups`` gives it: name, state and member count."""

    group: str
    state: str
    members: int


def _group(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a group name must be a non-empty str, got {name!r}")
    return name


def assignment_message(partitions: Iterable[TopicPartition]) -> pb.Assignment:
    """An Assignment message: the partitions grouped by topic, in order."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(check_partition(partition))
    return pb.Assignment(
        topics=[pb.TopicPartitions(topic=t, partitions=ps) for t, ps in by_topic.items()]
    )


def partitions_of(assignment: pb.Assignment) -> frozenset[TopicPartition]:
    """The (topic, partition) pairs an Assignment message holds."""
    return frozenset((t.topic, int(p)) for t in assignment.topics for p in t.partitions)


def heartbeat_request(  # noqa: PLR0917  (the heartbeat's fields)
    group: str,
    member_id: str,
    member_epoch: int,
    topics: Sequence[str] | None = None,
    owned: Iterable[TopicPartition] | None = None,
    session_timeout_ms: int = 0,
    assignor: str = "",
) -> pb.GroupHeartbeatRequest:
    """A checked GroupHeartbeatRequest (``topics`` None: keep the subscription; ``owned``
    None: what the member was last given)."""
    if not isinstance(member_epoch, int) or not -1 <= member_epoch < 2**31:
        raise InvalidArgumentError(f"a member epoch is -1 or more, got {member_epoch!r}")
    if not isinstance(session_timeout_ms, int) or not 0 <= session_timeout_ms < 2**32:
        raise InvalidArgumentError("session_timeout_ms must be a 32-bit unsigned integer")
    request = pb.GroupHeartbeatRequest(
        group=_group(group),
        member_id=member_id,
        member_epoch=member_epoch,
        session_timeout_ms=session_timeout_ms,
        assignor=assignor,
    )
    if topics is not None:
        if isinstance(topics, str) or not all(isinstance(t, str) and t for t in topics):
            raise InvalidArgumentError("topics must be a list of topic names")
        request.subscription.CopyFrom(pb.Subscription(topics=list(topics)))
    if owned is not None:
        request.owned.CopyFrom(assignment_message(owned))
    return request


def answer_from(response: pb.GroupHeartbeatResponse) -> HeartbeatAnswer:
    """The HeartbeatAnswer a GroupHeartbeatResponse holds."""
    return HeartbeatAnswer(
        response.member_id,
        int(response.member_epoch),
        partitions_of(response.assignment),
        int(response.heartbeat_interval_ms),
    )


def commit_request(
    group: str,
    offsets: Mapping[TopicPartition, int],
    metadata: Mapping[TopicPartition, str] | str,
    member_id: str,
    member_epoch: int,
) -> pb.CommitOffsetsRequest:
    """A checked CommitOffsetsRequest (``metadata``: one string for all, or per partition)."""
    entries = []
    for (topic, partition), offset in sorted(offsets.items()):
        note = metadata if isinstance(metadata, str) else metadata.get((topic, partition), "")
        entries.append(
            pb.OffsetCommit(
                topic=topic,
                partition=check_partition(partition),
                offset=check_offset(offset),
                metadata=note,
            )
        )
    return pb.CommitOffsetsRequest(
        group=_group(group), member_id=member_id, member_epoch=member_epoch, offsets=entries
    )


def fetch_request(
    group: str, partitions: Iterable[TopicPartition] | None
) -> pb.FetchOffsetsRequest:
    """A FetchOffsetsRequest for ``partitions`` (None: every committed one)."""
    wanted = [] if partitions is None else list(assignment_message(partitions).topics)
    return pb.FetchOffsetsRequest(group=_group(group), topics=wanted)


def offsets_from(response: pb.FetchOffsetsResponse) -> dict[TopicPartition, int]:
    """(topic, partition) -> committed offset (-1: none) from a FetchOffsetsResponse."""
    return {(o.topic, int(o.partition)): int(o.offset) for o in response.offsets}


def description_from(message: pb.GroupDescription) -> GroupDescription:
    """The GroupDescription a GroupDescription message holds."""
    members = tuple(
        GroupMember(
            m.member_id,
            int(m.member_epoch),
            tuple(m.topics),
            tuple(sorted(partitions_of(m.assignment))),
        )
        for m in message.members
    )
    offsets = tuple(
        PartitionLag(o.topic, int(o.partition), int(o.committed), int(o.end_offset), int(o.lag))
        for o in message.offsets
    )
    return GroupDescription(
        message.group,
        message.state,
        int(message.generation),
        message.assignor,
        members,
        offsets,
    )


def merge_listings(answers: Iterable[pb.ListGroupsResponse]) -> list[GroupListing]:
    """Every server's groups, by name; a group two servers report (a coordinator moving)
    is given as the one with more members says."""
    best: dict[str, GroupListing] = {}
    for answer in answers:
        for g in answer.groups:
            listing = GroupListing(g.group, g.state, int(g.members))
            known = best.get(g.group)
            if known is None or listing.members > known.members:
                best[g.group] = listing
    return [best[name] for name in sorted(best)]


class GroupMethods:
    """The consumer group calls of ``Client`` (blocking)."""

    def _group_call(
        self, method: str, request: Any, group: str, *, idempotent: bool, timeout: Any
    ) -> Any:
        raise NotImplementedError  # the client's own

    def _each_server(self, method: str, request: Any, timeout: Any) -> list[Any]:
        raise NotImplementedError  # the client's own

    def group_heartbeat(
        self,
        group: str,
        member_id: str = "",
        member_epoch: int = 0,
        *,
        topics: Sequence[str] | None = None,
        owned: Iterable[TopicPartition] | None = None,
        session_timeout_ms: int = 0,
        assignor: str = "",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> HeartbeatAnswer:
        """One heartbeat of a group member (epoch 0 with member_id "" joins, -1 leaves);
        FencedMemberError or UnknownMemberError when the member must rejoin."""
        request = heartbeat_request(
            group, member_id, member_epoch, topics, owned, session_timeout_ms, assignor
        )
        idempotent = member_epoch > 0  # a join or leave is sent once unless certainly lost
        return answer_from(
            self._group_call(HEARTBEAT, request, group, idempotent=idempotent, timeout=timeout)
        )

    def commit_offsets(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        *,
        metadata: Mapping[TopicPartition, str] | str = "",
        member_id: str = "",
        member_epoch: int = 0,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        """Commit ``offsets`` ((topic, partition) -> the next offset to consume) at once;
        from outside the group (member_id "") only while it has no members
        (NonEmptyGroupError); FencedMemberError / UnknownMemberError from a stale member."""
        request = commit_request(group, offsets, metadata, member_id, member_epoch)
        self._group_call(COMMIT, request, group, idempotent=True, timeout=timeout)

    def fetch_offsets(
        self,
        group: str,
        partitions: Iterable[TopicPartition] | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets (of ``partitions``, -1 where none; default every
        committed one)."""
        request = fetch_request(group, partitions)
        response = self._group_call(FETCH, request, group, idempotent=True, timeout=timeout)
        return offsets_from(response)

    def describe_group(
        self, group: str, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> GroupDescription:
        """The group's members, assignment, committed offsets and lag; NotFoundError for a
        group with neither members nor offsets."""
        request = pb.DescribeGroupRequest(group=_group(group))
        response = self._group_call(
            DESCRIBE_GROUP, request, group, idempotent=True, timeout=timeout
        )
        return description_from(response.group)

    def list_groups(self, *, timeout: float | None = DEFAULT_TIMEOUT) -> list[GroupListing]:
        """Every group of the cluster (each server lists those it coordinates), by name."""
        answers = self._each_server(LIST_GROUPS, pb.ListGroupsRequest(), timeout)
        return merge_listings(answers)

    def delete_group(self, group: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Delete a group and its offsets; NonEmptyGroupError while it has members,
        NotFoundError if there is none."""
        request = pb.DeleteGroupRequest(group=_group(group))
        self._group_call(DELETE_GROUP, request, group, idempotent=False, timeout=timeout)


class AsyncGroupMethods:
    """The consumer group calls of ``AsyncClient`` (awaited; see ``GroupMethods``)."""

    async def _group_call(
        self, method: str, request: Any, group: str, *, idempotent: bool, timeout: Any
    ) -> Any:
        raise NotImplementedError  # the client's own

    async def _each_server(self, method: str, request: Any, timeout: Any) -> list[Any]:
        raise NotImplementedError  # the client's own

    async def group_heartbeat(
        self,
        group: str,
        member_id: str = "",
        member_epoch: int = 0,
        *,
        topics: Sequence[str] | None = None,
        owned: Iterable[TopicPartition] | None = None,
        session_timeout_ms: int = 0,
        assignor: str = "",
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> HeartbeatAnswer:
        """One heartbeat of a group member (see ``GroupMethods.group_heartbeat``)."""
        request = heartbeat_request(
            group, member_id, member_epoch, topics, owned, session_timeout_ms, assignor
        )
        idempotent = member_epoch > 0
        response = await self._group_call(
            HEARTBEAT, request, group, idempotent=idempotent, timeout=timeout
        )
        return answer_from(response)

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int],
        *,
        metadata: Mapping[TopicPartition, str] | str = "",
        member_id: str = "",
        member_epoch: int = 0,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        """Commit offsets (see ``GroupMethods.commit_offsets``)."""
        request = commit_request(group, offsets, metadata, member_id, member_epoch)
        await self._group_call(COMMIT, request, group, idempotent=True, timeout=timeout)

    async def fetch_offsets(
        self,
        group: str,
        partitions: Iterable[TopicPartition] | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets (see ``GroupMethods.fetch_offsets``)."""
        request = fetch_request(group, partitions)
        response = await self._group_call(FETCH, request, group, idempotent=True, timeout=timeout)
        return offsets_from(response)

    async def describe_group(
        self, group: str, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> GroupDescription:
        """The group's members, offsets and lag (see ``GroupMethods.describe_group``)."""
        request = pb.DescribeGroupRequest(group=_group(group))
        response = await self._group_call(
            DESCRIBE_GROUP, request, group, idempotent=True, timeout=timeout
        )
        return description_from(response.group)

    async def list_groups(self, *, timeout: float | None = DEFAULT_TIMEOUT) -> list[GroupListing]:
        """Every group of the cluster, by name."""
        answers = await self._each_server(LIST_GROUPS, pb.ListGroupsRequest(), timeout)
        return merge_listings(answers)

    async def delete_group(self, group: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Delete a group (see ``GroupMethods.delete_group``)."""
        request = pb.DeleteGroupRequest(group=_group(group))
        await self._group_call(DELETE_GROUP, request, group, idempotent=False, timeout=timeout)
