"""The ACL's object of a request: the topic it addresses, read from the request itself.

The policy's object is a topic name (glob patterns in the rules, see ``security/acl.py``).
A request without a topic addresses ``default``; a call about the cluster as a whole has
the object CLUSTER; a cluster-wide read any topic grant allows, ANY_TOPIC. A name that
cannot be a topic's is checked as CLUSTER, so only a rule for every object lets it through
to the handler, which refuses it (400): a crafted name never widens what a pattern grants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from replog.security.acl import ANY_TOPIC, CLUSTER, Action
from replog.server.topics import DEFAULT_TOPIC

__all__ = [
    "GRPC_OBJECTS",
    "GROUP_PREFIX",
    "group_object",
    "grpc_object",
    "http_permission",
    "topic_object",
]

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")

#: How each gRPC method names its object: the request's ``topic`` or ``name`` field, or
#: ANY_TOPIC. Methods not listed (cluster membership, Raft, unknown ones) have CLUSTER.
GRPC_OBJECTS: Mapping[str, str] = {
    "/replog.v1.Log/Produce": "topic",
    "/replog.v1.Log/ProduceBatch": "topic",
    "/replog.v1.Log/ProduceStream": "topic",  # each message's (see auth._checked_messages)
    "/replog.v1.Log/Consume": "topic",
    "/replog.v1.Log/ConsumeBatch": "topic",
    "/replog.v1.Log/ConsumeStream": "topic",
    "/replog.v1.Log/ConsumeBatchStream": "topic",
    "/replog.v1.Log/GetServers": ANY_TOPIC,
    "/replog.v1.Log/InitProducerId": ANY_TOPIC,
    "/replog.v1.Cluster/Status": ANY_TOPIC,
    "/replog.v1.Admin/CreateTopic": "name",
    "/replog.v1.Admin/DeleteTopic": "name",
    "/replog.v1.Admin/DescribeTopic": "name",
    "/replog.v1.Admin/AlterTopicConfig": "name",
    "/replog.v1.Admin/CreatePartitions": "name",
    "/replog.v1.Admin/ListTopics": ANY_TOPIC,  # the answer lists only what the caller may read
    "/replog.v1.Groups/Heartbeat": "group",
    "/replog.v1.Groups/CommitOffsets": "group",
    "/replog.v1.Groups/FetchOffsets": "group",
    "/replog.v1.Groups/DescribeGroup": "group",
    "/replog.v1.Groups/DeleteGroup": "group",
    "/replog.v1.Groups/ListGroups": ANY_TOPIC,  # the answer lists only what the caller may read
    "/replog.v1.Tlog/GetCheckpoint": "topic",
    "/replog.v1.Tlog/GetInclusionProof": "topic",
    "/replog.v1.Tlog/GetConsistencyProof": "topic",
    "/replog.v1.Tlog/GetRangeProof": "topic",
}

#: The prefix of a consumer group's ACL object: rules name groups as ``group:<pattern>``.
GROUP_PREFIX = "group:"


def group_object(name: str) -> str:
    """The ACL object of a request about consumer group ``name``."""
    if not name or len(name) > 255 or not name.isprintable() or "/" in name:
        return CLUSTER
    return GROUP_PREFIX + name


def topic_object(name: str) -> str:
    """The ACL object of a request naming topic ``name`` ("" is ``default``)."""
    if not name:
        return DEFAULT_TOPIC
    return name if _TOPIC_NAME.match(name) else CLUSTER


def _topic_view() -> type[Message]:
    """A message of ProduceBatchRequest's ``topic`` field alone: ProduceBatch's handler gets
    the request's bytes (it parses them its own way), and parsing them as this reads the
    topic at C speed, the records kept as unparsed bytes."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="replog/internal/topic_view.proto", package="replog.internal", syntax="proto3"
    )
    message = proto.message_type.add(name="TopicView")
    message.field.add(name="topic", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("replog.internal.TopicView"))


_TopicView = _topic_view()


def grpc_object(method: str, request: Any) -> str:
    """The ACL object of one gRPC request (or of one message of a request stream).

    A request that does not parse (its handler refuses it) is checked as CLUSTER.
    """
    how = GRPC_OBJECTS.get(method, CLUSTER)
    if how == "group":
        group = getattr(request, "group", None)
        return group_object(group) if isinstance(group, str) else CLUSTER
    if how not in ("topic", "name"):
        return how
    if isinstance(request, bytes):  # ProduceBatch: the handler parses the bytes itself
        try:
            return topic_object(_TopicView.FromString(request).topic)  # type: ignore[attr-defined]
        except DecodeError:
            return CLUSTER
    value = getattr(request, how, None)
    return topic_object(value) if isinstance(value, str) else CLUSTER


#: (action, object) of the HTTP routes that are not about one topic.
_HTTP_ROUTES: Mapping[tuple[str, str], tuple[Action, str]] = {
    ("POST", "/v1/topics"): (Action.ADMIN, ANY_TOPIC),  # the handler checks the body's name
    ("GET", "/v1/topics"): (Action.CONSUME, ANY_TOPIC),  # lists only what the caller may read
    ("GET", "/v1/servers"): (Action.CONSUME, ANY_TOPIC),
    ("POST", "/v1/producers"): (Action.PRODUCE, ANY_TOPIC),
    ("GET", "/v1/cluster"): (Action.CONSUME, ANY_TOPIC),
    ("GET", "/v1/groups"): (Action.CONSUME, ANY_TOPIC),  # lists only what the caller may read
}


def http_permission(method: str, route: str | None, name: str | None) -> tuple[Action, str]:
    """The (action, object) an HTTP request needs, from its method, its route's canonical
    path (None when no route matched: the answer is 404 or 405) and its ``{name}``."""
    if route is None:
        return Action.CONSUME, ANY_TOPIC
    known = _HTTP_ROUTES.get((method, route))
    if known is not None:
        return known
    writes = method not in ("GET", "HEAD")
    if route.startswith("/v1/records"):
        return (Action.PRODUCE if writes else Action.CONSUME), DEFAULT_TOPIC
    if route.startswith("/v1/topics/{name}"):
        obj = topic_object(name or "")
        if "/records" in route:
            return (Action.PRODUCE if writes else Action.CONSUME), obj
        return (Action.ADMIN if writes else Action.CONSUME), obj
    if route.startswith("/v1/groups/{name}"):
        return (Action.ADMIN if method == "DELETE" else Action.CONSUME), group_object(name or "")
    if route.startswith("/v1/cluster"):
        return (Action.ADMIN if writes else Action.CONSUME), CLUSTER
    return Action.CONSUME, ANY_TOPIC
