"""The ACL on the Kafka port: each request checked for the identity of its connection,
with the same actions and objects as the gRPC and HTTP ports (``server/acl_objects.py``).

- Produce needs ``produce`` on each topic; Fetch, ListOffsets, OffsetCommit and
  OffsetFetch ``consume``; CreateTopics, DeleteTopics and DescribeConfigs ``admin``. A
  topic refused answers TOPIC_AUTHORIZATION_FAILED (29) on each of its partitions and is
  never handed to the handler (nothing of it is appended or committed); the other topics
  of the request are served as usual.
- Metadata lists only the topics the identity may consume, produce to or administer (a
  producer must learn its topic's leader); one named but refused answers
  TOPIC_AUTHORIZATION_FAILED.
- The group APIs need ``consume`` on ``group:<name>`` (GROUP_AUTHORIZATION_FAILED, 30);
  InitProducerId needs ``produce`` on some topic (CLUSTER_AUTHORIZATION_FAILED, 31), as
  gRPC's InitProducerId does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from replog.security.acl import ANY_TOPIC, Action
from replog.server.acl_objects import group_object, topic_object
from replog.server.auth import Access
from replog.server.kafka.codec import RequestHeader
from replog.server.kafka.groups import GROUP_APIS, error_response
from replog.server.kafka.responses import make, nested
from replog.server.kafka.security import KafkaSession

__all__ = ["guarded"]

log = logging.getLogger("replog.security")
Call = Callable[[Any], Awaitable[Any]]
_METADATA, _INIT_PRODUCER_ID, _FIND_COORDINATOR, _DESCRIBE_CONFIGS = 3, 22, 10, 32
_TOPIC_RESOURCE = 2
#: Any of these lets Metadata name a topic (Kafka's Describe, implied by Read, Write, Alter).
_DESCRIBE = (Action.CONSUME, Action.PRODUCE, Action.ADMIN)
_DENIED = ErrorCode.topic_authorization_failed
#: What a refused partition answers beside its error code (names its class lacks are dropped).
_REFUSED_PARTITION: dict[str, Any] = {
    "base_offset": -1,
    "log_append_time": None,
    "log_start_offset": -1,
    "record_errors": (),
    "error_message": None,
    "high_watermark": -1,
    "last_stable_offset": -1,
    "aborted_transactions": (),
    "preferred_read_replica": -1,
    "records": b"",
    "timestamp": -1,
    "offset": -1,
    "leader_epoch": -1,
    "committed_offset": -1,
    "committed_leader_epoch": -1,
    "metadata": "",
}


@dataclass(frozen=True, slots=True)
class _Shape:
    """Where an API's request and response name their topics and partitions ("" for a
    topic-level API, or a list of plain names or indexes)."""

    action: Action
    items: str
    name: str
    parts: str
    index: str
    out: str
    out_topic: str
    out_parts: str
    out_part: str
    out_index: str


_SHAPES: dict[int, _Shape] = {
    0: _Shape(
        Action.PRODUCE, "topic_data", "name", "partition_data", "index",
        "responses", "TopicProduceResponse", "partition_responses", "PartitionProduceResponse",
        "index",
    ),
    1: _Shape(
        Action.CONSUME, "topics", "topic", "partitions", "partition",
        "responses", "FetchableTopicResponse", "partitions", "PartitionData", "partition_index",
    ),
    2: _Shape(
        Action.CONSUME, "topics", "name", "partitions", "partition_index",
        "topics", "ListOffsetsTopicResponse", "partitions", "ListOffsetsPartitionResponse",
        "partition_index",
    ),
    8: _Shape(
        Action.CONSUME, "topics", "name", "partitions", "partition_index",
        "topics", "OffsetCommitResponseTopic", "partitions", "OffsetCommitResponsePartition",
        "partition_index",
    ),
    9: _Shape(
        Action.CONSUME, "topics", "name", "partition_indexes", "",
        "topics", "OffsetFetchResponseTopic", "partitions", "OffsetFetchResponsePartition",
        "partition_index",
    ),
    19: _Shape(
        Action.ADMIN, "topics", "name", "", "", "topics", "CreatableTopicResult", "", "", "",
    ),
    20: _Shape(
        Action.ADMIN, "topic_names", "", "", "", "responses", "DeletableTopicResult", "", "", "",
    ),
    _DESCRIBE_CONFIGS: _Shape(
        Action.ADMIN, "resources", "resource_name", "", "", "results", "DescribeConfigsResult",
        "", "", "",
    ),
}  # fmt: skip


async def guarded(
    session: KafkaSession, header: RequestHeader, cls: type[Any], body: Any, call: Call
) -> Any:
    """The answer to a request from ``session``: ``call(body)`` on what the identity may
    touch, and the Kafka authorization error codes for the rest."""
    access, key = session.access(), header.api_key
    if key == _METADATA:
        return _visible(access, body, await call(body))
    if key == _INIT_PRODUCER_ID and not access.may(Action.PRODUCE, ANY_TOPIC):
        _log(session, Action.PRODUCE, ANY_TOPIC)
        return make(
            cls,
            error_code=ErrorCode.cluster_authorization_failed,
            producer_id=-1,
            producer_epoch=-1,
        )
    if key in GROUP_APIS:
        group = _group(key, body)
        if group is not None and not access.may(Action.CONSUME, group_object(group)):
            _log(session, Action.CONSUME, group_object(group))
            return error_response(cls, header, body, ErrorCode.group_authorization_failed)
    shape = _SHAPES.get(key)
    if shape is None or getattr(body, shape.items) is None:
        response = await call(body)
        return response if shape is None else _visible_offsets(access, response)
    allowed: list[Any] = []
    refused: list[Any] = []
    for item in getattr(body, shape.items):
        name = getattr(item, shape.name) if shape.name else item
        checked = key != _DESCRIBE_CONFIGS or item.resource_type == _TOPIC_RESOURCE
        may = not checked or access.may(shape.action, topic_object(name))
        (allowed if may else refused).append(item)
    if not refused:
        return await call(body)
    for item in refused:
        _log(session, shape.action, getattr(item, shape.name) if shape.name else item)
    response = await call(dataclasses.replace(body, **{shape.items: tuple(allowed)}))
    if response is None:  # acks=0
        return None
    extra = tuple(_refused(cls, shape, item) for item in refused)
    return dataclasses.replace(response, **{shape.out: (*getattr(response, shape.out), *extra)})


def _group(key: int, body: Any) -> str | None:
    if key == _FIND_COORDINATOR:
        return str(body.key) if getattr(body, "key_type", 0) == 0 else None
    return str(body.group_id)


def _refused(cls: type[Any], shape: _Shape, item: Any) -> Any:
    """The answer for one refused topic (or DescribeConfigs resource)."""
    topic_cls = nested(cls, shape.out_topic)
    name = getattr(item, shape.name) if shape.name else item
    if not shape.parts:
        message = "not authorized"
        return make(
            topic_cls,
            name=name,
            error_code=_DENIED,
            error_message=message,
            num_partitions=-1,
            replication_factor=-1,
            resource_type=getattr(item, "resource_type", 0),
            resource_name=name,
            configs=(),
        )
    part_cls = nested(cls, shape.out_part)
    indexes = [getattr(p, shape.index) if shape.index else p for p in getattr(item, shape.parts)]
    parts = tuple(
        make(part_cls, **{shape.out_index: index}, error_code=_DENIED, **_REFUSED_PARTITION)
        for index in indexes
    )
    return make(topic_cls, name=name, topic=name, **{shape.out_parts: parts})


def _visible(access: Access, body: Any, response: Any) -> Any:
    """A Metadata answer without the topics the identity may not describe (all asked for)
    or with TOPIC_AUTHORIZATION_FAILED for them (named)."""
    topics = []
    for topic in response.topics:
        obj = topic_object(topic.name)
        if any(access.may(action, obj) for action in _DESCRIBE):
            topics.append(topic)
        elif body.topics is not None:
            topics.append(dataclasses.replace(topic, error_code=_DENIED, partitions=()))
    return dataclasses.replace(response, topics=tuple(topics))


def _visible_offsets(access: Access, response: Any) -> Any:
    """An OffsetFetch of every committed offset, without the topics the identity may not
    consume."""
    topics = getattr(response, "topics", None)
    if topics is None:
        return response
    kept = tuple(t for t in topics if access.may(Action.CONSUME, topic_object(t.name)))
    return dataclasses.replace(response, topics=kept)


def _log(session: KafkaSession, action: Action, obj: str) -> None:
    log.warning(
        "denied: subject=%s action=%s peer=%s object=%s (kafka)",
        session.subject,
        action,
        session.peer,
        obj,
    )
