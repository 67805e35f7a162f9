"""The Kafka group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch): the one place they are handled.

Classic groups (client-side assignors) run on the same coordinator and the same committed
offsets as replog's own groups (``GroupService.classic``), so ``replog group describe``
shows what a Kafka consumer committed. FindCoordinator names the node that coordinates
the group (the leader of its offsets partition) as that node's Kafka broker; a node that
does not coordinate a group answers its requests NOT_COORDINATOR."""

from __future__ import annotations

import datetime
from typing import Any

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from replog.broker.assignors import TopicPartition
from replog.errors import InvalidArgumentError, ReplogError, UnavailableError
from replog.server.kafka.codec import RequestHeader
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.errors import kafka_error
from replog.server.kafka.responses import blank_response, make, nested

__all__ = ["GROUP_APIS", "error_response", "handle_group_request"]

GROUP_APIS: dict[int, tuple[int, int]] = {
    10: (0, 2),  # FindCoordinator
    11: (0, 5),  # JoinGroup
    14: (0, 3),  # SyncGroup
    12: (0, 3),  # Heartbeat
    13: (0, 3),  # LeaveGroup
    8: (2, 7),  # OffsetCommit
    9: (1, 5),  # OffsetFetch
}
"""API key -> the (lowest, highest) version advertised."""

_NO_TIME = datetime.timedelta(0)
_JOIN_V4 = 4  # from JoinGroup v4 a new member is first told its id (MEMBER_ID_REQUIRED)
_LEAVE_BATCH_V3 = 3  # LeaveGroup v3 names a batch of members


def _ms(value: Any) -> int:
    """Milliseconds of a kio duration field (a timedelta) or an int."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)


def _code(value: int) -> ErrorCode:
    return ErrorCode(value)


async def handle_group_request(ctx: KafkaContext, header: RequestHeader, body: Any) -> Any:
    """The answer to a group API request."""
    cls = load_response_schema(header.api_key, header.api_version)
    groups = ctx.groups
    if groups is None:
        return error_response(cls, header, body, ErrorCode.coordinator_not_available)
    handler = _HANDLERS[header.api_key]
    try:
        return await handler(ctx, cls, body, header)
    except InvalidArgumentError:
        return error_response(cls, header, body, ErrorCode.invalid_group_id)
    except UnavailableError:  # another node coordinates it, or none does yet
        return error_response(cls, header, body, ErrorCode.not_coordinator)
    except ReplogError as exc:
        return error_response(cls, header, body, kafka_error(exc))


_OFFSET_COMMIT = 8
_OFFSET_FETCH = 9
_OFFSET_FETCH_GROUP_ERROR_V2 = 2  # from OffsetFetch v2 on, a group's error is top-level


def error_response(cls: type[Any], header: RequestHeader, body: Any, error: ErrorCode) -> Any:
    """The answer to a group request refused whole with ``error``, where Kafka puts it:
    OffsetCommit (every version) and OffsetFetch v1 have no top-level error code, so each
    partition asked about carries it; the other APIs and versions answer it top-level."""
    key = header.api_key
    if key == _OFFSET_COMMIT:
        asked = [(t.name, [p.partition_index for p in t.partitions]) for t in body.topics]
        return _per_partition(cls, "OffsetCommitResponse", asked, error)
    if key == _OFFSET_FETCH and header.api_version < _OFFSET_FETCH_GROUP_ERROR_V2:
        asked = [(t.name, list(t.partition_indexes)) for t in body.topics or ()]
        return _per_partition(cls, "OffsetFetchResponse", asked, error)
    return blank_response(cls, error)


def _per_partition(
    cls: type[Any], prefix: str, asked: list[tuple[str, list[int]]], error: ErrorCode
) -> Any:
    topic_cls = nested(cls, f"{prefix}Topic")
    partition_cls = nested(cls, f"{prefix}Partition")
    topics = tuple(
        make(
            topic_cls,
            name=name,
            partitions=tuple(
                make(
                    partition_cls,
                    partition_index=index,
                    error_code=error,
                    committed_offset=-1,
                    committed_leader_epoch=-1,
                    metadata="",
                )
                for index in indexes
            ),
        )
        for name, indexes in asked
    )
    return make(cls, throttle_time=_NO_TIME, topics=topics)


def _no_coordinator(cls: type[Any], why: str) -> Any:
    """A FindCoordinator answer of COORDINATOR_NOT_AVAILABLE saying ``why``."""
    return make(
        cls,
        throttle_time=_NO_TIME,
        error_code=ErrorCode.coordinator_not_available,
        error_message=why,
        node_id=-1,
        host="",
        port=-1,
    )


async def _find_coordinator(
    ctx: KafkaContext, cls: type[Any], body: Any, header: RequestHeader
) -> Any:
    if getattr(body, "key_type", 0) != 0:  # 1: a transaction coordinator, not served
        return _no_coordinator(cls, "transactions are not supported")
    assert ctx.groups is not None
    leader = await ctx.groups.coordinator(body.key)  # validates the name, makes the topic
    if leader is None and ctx.cluster is None:
        broker = ctx.broker("")  # a single node coordinates every group
    else:
        broker = ctx.broker(leader.id) if leader is not None else None
    if broker is None:  # an election, or a listener not advertised yet: clients retry
        return _no_coordinator(cls, "the group's coordinator is not known yet")
    return make(
        cls,
        throttle_time=_NO_TIME,
        error_code=ErrorCode.none,
        error_message=None,
        node_id=broker.node_id,
        host=broker.host,
        port=broker.port,
    )


async def _join(ctx: KafkaContext, cls: type[Any], body: Any, header: RequestHeader) -> Any:
    assert ctx.groups is not None
    session_ms = _ms(body.session_timeout)
    rebalance = getattr(body, "rebalance_timeout", None)
    rebalance_ms = session_ms if rebalance is None else _ms(rebalance)
    answer = await ctx.groups.classic.join(
        body.group_id,
        body.member_id,
        header.client_id or "",
        body.protocol_type,
        [(p.name, p.metadata) for p in body.protocols],
        session_ms,
        rebalance_ms,
        header.api_version >= _JOIN_V4,
    )
    member_cls = nested(cls, "JoinGroupResponseMember")
    members = tuple(
        make(member_cls, member_id=m, group_instance_id=None, metadata=meta)
        for m, meta in answer.members
    )
    return make(
        cls,
        throttle_time=_NO_TIME,
        error_code=_code(answer.error),
        generation_id=answer.generation,
        protocol_name=answer.protocol_name,
        leader=answer.leader_id,
        member_id=answer.member_id,
        members=members,
    )


async def _sync(ctx: KafkaContext, cls: type[Any], body: Any, header: RequestHeader) -> Any:
    assert ctx.groups is not None
    plan = {a.member_id: a.assignment for a in body.assignments}
    answer = await ctx.groups.classic.sync(body.group_id, body.member_id, body.generation_id, plan)
    return make(
        cls, throttle_time=_NO_TIME, error_code=_code(answer.error), assignment=answer.assignment
    )


async def _heartbeat(ctx: KafkaContext, cls: type[Any], body: Any, header: RequestHeader) -> Any:
    assert ctx.groups is not None
    answer = await ctx.groups.classic.heartbeat(body.group_id, body.member_id, body.generation_id)
    return make(cls, throttle_time=_NO_TIME, error_code=_code(answer.error))


async def _leave(ctx: KafkaContext, cls: type[Any], body: Any, header: RequestHeader) -> Any:
    assert ctx.groups is not None
    if header.api_version >= _LEAVE_BATCH_V3:
        ids = [m.member_id for m in body.members]
    else:
        ids = [body.member_id]
    answer = await ctx.groups.classic.leave(body.group_id, ids)
    if header.api_version < _LEAVE_BATCH_V3:
        error = answer.error or (answer.members[0][1] if answer.members else 0)
        return make(cls, throttle_time=_NO_TIME, error_code=_code(error))
    member_cls = nested(cls, "MemberResponse")
    members = tuple(
        make(member_cls, member_id=m, group_instance_id=None, error_code=_code(e))
        for m, e in answer.members
    )
    return make(cls, throttle_time=_NO_TIME, error_code=_code(answer.error), members=members)


async def _commit(ctx: KafkaContext, cls: type[Any], body: Any, header: RequestHeader) -> Any:
    assert ctx.groups is not None
    generation = int(
        getattr(body, "generation_id_or_member_epoch", getattr(body, "generation_id", -1))
    )
    offsets = {
        TopicPartition(t.name, p.partition_index): (p.committed_offset, p.committed_metadata or "")
        for t in body.topics
        for p in t.partitions
    }
    errors = await ctx.groups.classic.commit(body.group_id, body.member_id, generation, offsets)
    topic_cls = nested(cls, "OffsetCommitResponseTopic")
    partition_cls = nested(cls, "OffsetCommitResponsePartition")
    topics = tuple(
        make(
            topic_cls,
            name=t.name,
            partitions=tuple(
                make(
                    partition_cls,
                    partition_index=p.partition_index,
                    error_code=_code(errors.get(TopicPartition(t.name, p.partition_index), 0)),
                )
                for p in t.partitions
            ),
        )
        for t in body.topics
    )
    return make(cls, throttle_time=_NO_TIME, topics=topics)


async def _fetch(ctx: KafkaContext, cls: type[Any], body: Any, header: RequestHeader) -> Any:
    assert ctx.groups is not None
    if body.topics is None:  # every committed offset of the group
        found = await ctx.groups.fetch(body.group_id)
        wanted: dict[str, list[int]] = {}
        for tp in sorted(found):
            wanted.setdefault(tp.topic, []).append(tp.partition)
    else:
        wanted = {t.name: list(t.partition_indexes) for t in body.topics}
        asked = [TopicPartition(t, p) for t, ps in wanted.items() for p in ps]
        found = await ctx.groups.fetch(body.group_id, asked)
    topic_cls = nested(cls, "OffsetFetchResponseTopic")
    partition_cls = nested(cls, "OffsetFetchResponsePartition")
    topics = tuple(
        make(
            topic_cls,
            name=name,
            partitions=tuple(
                make(
                    partition_cls,
                    partition_index=p,
                    committed_offset=found.get(TopicPartition(name, p), (-1, ""))[0],
                    committed_leader_epoch=-1,
                    metadata=found.get(TopicPartition(name, p), (-1, ""))[1],
                    error_code=ErrorCode.none,
                )
                for p in partitions
            ),
        )
        for name, partitions in wanted.items()
    )
    return make(cls, throttle_time=_NO_TIME, topics=topics, error_code=ErrorCode.none)


_HANDLERS = {
    10: _find_coordinator,
    11: _join,
    14: _sync,
    12: _heartbeat,
    13: _leave,
    8: _commit,
    9: _fetch,
}
