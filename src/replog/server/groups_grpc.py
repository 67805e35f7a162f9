"""The ``replog.v1.Groups`` gRPC service (grpc.aio) over a ``GroupService``.

Errors map as the other services' do: a stale member is FAILED_PRECONDITION
(FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID), a group with members NON_EMPTY_GROUP, a node
that is not the group's coordinator UNAVAILABLE with ``replog-leader`` naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from replog.api.wire import request_parser
from replog.broker.assignors import TopicPartition
from replog.security.acl import Action
from replog.server.acl_objects import group_object, topic_object
from replog.server.auth import CURRENT_ACCESS
from replog.server.group_service import GroupDescription, GroupService, visible
from replog.server.grpc_unary import UnaryHandler, unary_handler
from replog.server.metrics import ServerMetrics
from replog.v1 import group_pb2 as pb

__all__ = ["GROUPS_SERVICE_NAME", "GroupsGrpc", "assignment_message", "description_message"]

GROUPS_SERVICE_NAME = "replog.v1.Groups"

log = logging.getLogger("replog.server.groups")


def assignment_message(partitions: Iterable[TopicPartition]) -> pb.Assignment:
    """An Assignment message: the partitions grouped by topic, in order."""
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return pb.Assignment(
        topics=[pb.TopicPartitions(topic=t, partitions=ps) for t, ps in by_topic.items()]
    )


def _partitions(topics: Iterable[pb.TopicPartitions]) -> list[TopicPartition]:
    return [TopicPartition(t.topic, p) for t in topics for p in t.partitions]


def description_message(d: GroupDescription) -> pb.GroupDescription:
    """A GroupDescription message."""
    return pb.GroupDescription(
        group=d.group,
        state=d.state,
        generation=d.generation,
        assignor=d.assignor,
        members=[
            pb.GroupMember(
                member_id=m.member_id,
                member_epoch=m.member_epoch,
                topics=list(m.topics),
                assignment=assignment_message(m.assignment),
            )
            for m in d.members
        ],
        offsets=[
            pb.PartitionLag(
                topic=o.topic,
                partition=o.partition,
                committed=o.committed,
                end_offset=o.end_offset,
                lag=o.lag,
            )
            for o in d.offsets
        ],
    )


def _require_topics(topics: Iterable[str]) -> None:
    """``consume`` on each topic, when an ACL is on (the interceptor checked the group)."""
    access = CURRENT_ACCESS.get()
    if access is not None:
        for topic in sorted(set(topics)):
            access.require(Action.CONSUME, topic_object(topic))


class GroupsGrpc:
    """Handlers of the Groups service; ``draining`` makes new calls fail with UNAVAILABLE."""

    def __init__(self, groups: GroupService, metrics: ServerMetrics) -> None:
        self.groups = groups
        self.metrics = metrics
        self.draining = False

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The method handlers to add to a grpc.aio server."""
        table: dict[str, tuple[UnaryHandler, Any]] = {
            "Heartbeat": (self._heartbeat, pb.GroupHeartbeatRequest),
            "CommitOffsets": (self._commit, pb.CommitOffsetsRequest),
            "FetchOffsets": (self._fetch, pb.FetchOffsetsRequest),
            "DescribeGroup": (self._describe, pb.DescribeGroupRequest),
            "ListGroups": (self._list, pb.ListGroupsRequest),
            "DeleteGroup": (self._delete, pb.DeleteGroupRequest),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._unary(name, fn),
                request_deserializer=request_parser(message),
                response_serializer=_serialize,
            )
            for name, (fn, message) in table.items()
        }
        return grpc.method_handlers_generic_handler(GROUPS_SERVICE_NAME, handlers)

    def _unary(self, method: str, fn: UnaryHandler) -> UnaryHandler:
        draining: Callable[[], bool] = lambda: self.draining  # noqa: E731
        return unary_handler(method, fn, self.metrics, draining, log)

    async def _heartbeat(
        self, request: pb.GroupHeartbeatRequest, context: Any
    ) -> pb.GroupHeartbeatResponse:
        topics = list(request.subscription.topics) if request.HasField("subscription") else None
        _require_topics(topics or ())
        owned = _partitions(request.owned.topics) if request.HasField("owned") else None
        answer = await self.groups.heartbeat(
            request.group,
            request.member_id,
            request.member_epoch,
            topics,
            owned,
            request.session_timeout_ms,
            request.assignor,
        )
        return pb.GroupHeartbeatResponse(
            member_id=answer.member_id,
            member_epoch=answer.member_epoch,
            assignment=assignment_message(answer.assignment),
            heartbeat_interval_ms=answer.heartbeat_interval_ms,
        )

    async def _commit(
        self, request: pb.CommitOffsetsRequest, context: Any
    ) -> pb.CommitOffsetsResponse:
        _require_topics(o.topic for o in request.offsets)
        offsets = {
            TopicPartition(o.topic, o.partition): (o.offset, o.metadata) for o in request.offsets
        }
        await self.groups.commit(request.group, request.member_id, request.member_epoch, offsets)
        return pb.CommitOffsetsResponse()

    async def _fetch(
        self, request: pb.FetchOffsetsRequest, context: Any
    ) -> pb.FetchOffsetsResponse:
        wanted = _partitions(request.topics) if request.topics else None
        found = await self.groups.fetch(request.group, wanted)
        access = CURRENT_ACCESS.get()
        return pb.FetchOffsetsResponse(
            offsets=[
                pb.CommittedOffset(topic=tp.topic, partition=tp.partition, offset=o, metadata=m)
                for tp, (o, m) in sorted(found.items())
                if access is None or access.may(Action.CONSUME, topic_object(tp.topic))
            ]
        )

    async def _describe(
        self, request: pb.DescribeGroupRequest, context: Any
    ) -> pb.DescribeGroupResponse:
        description = await self.groups.describe(request.group)
        access = CURRENT_ACCESS.get()
        if access is not None:
            description = visible(
                description, lambda topic: access.may(Action.CONSUME, topic_object(topic))
            )
        return pb.DescribeGroupResponse(group=description_message(description))

    async def _list(self, request: pb.ListGroupsRequest, context: Any) -> pb.ListGroupsResponse:
        access = CURRENT_ACCESS.get()
        return pb.ListGroupsResponse(
            groups=[
                pb.GroupListing(group=name, state=state, members=members)
                for name, state, members in await self.groups.list_groups()
                if access is None or access.may(Action.CONSUME, group_object(name))
            ]
        )

    async def _delete(self, request: pb.DeleteGroupRequest, context: Any) -> pb.DeleteGroupResponse:
        await self.groups.delete(request.group)
        return pb.DeleteGroupResponse()


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
