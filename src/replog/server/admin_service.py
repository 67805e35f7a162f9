"""The ``replog.v1.Admin`` gRPC service (grpc.aio): topic administration over a TopicsBackend.

Errors map as the Log service's do (``status``): a bad name, count or config key is
INVALID_ARGUMENT, a duplicate topic ALREADY_EXISTS, an unknown one NOT_FOUND, each with the
trailing metadata a client rebuilds the exact error from; the backend changes nothing then.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from replog.api.wire import request_parser
from replog.broker.model import TopicDescription
from replog.errors import InvalidArgumentError, UnsupportedError
from replog.server.grpc_unary import unary_handler
from replog.server.metrics import ServerMetrics
from replog.server.routing import check_writable_topic
from replog.server.topics import TopicsBackend
from replog.v1 import admin_pb2, cluster_pb2

__all__ = [
    "ADMIN_SERVICE_NAME",
    "CLUSTER_SERVICE_NAME",
    "AdminService",
    "SingleNodeCluster",
    "topic_info",
]

ADMIN_SERVICE_NAME = "replog.v1.Admin"
CLUSTER_SERVICE_NAME = "replog.v1.Cluster"
SINGLE_NODE = (
    "this server runs as a single node, not a replicated cluster: it has no membership or "
    "leadership to change (start nodes with --bootstrap and --join for a cluster)"
)

log = logging.getLogger("replog.server.admin")

_Handler = Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]


def topic_info(topic: TopicDescription) -> admin_pb2.TopicInfo:
    """The TopicInfo message of a topic's description."""
    return admin_pb2.TopicInfo(
        name=topic.name,
        config=dict(topic.config),
        replication_factor=topic.replication_factor,
        partitions=[
            admin_pb2.PartitionInfo(
                partition=p.partition,
                leader=p.leader,
                replicas=list(p.replicas),
                in_sync=list(p.in_sync),
                lowest_offset=p.lowest_offset,
                next_offset=p.next_offset,
                size_bytes=p.size_bytes,
            )
            for p in topic.partitions
        ],
    )


class AdminService:
    """Handlers of the Admin service; ``draining`` makes new calls fail with UNAVAILABLE."""

    def __init__(self, topics: TopicsBackend, metrics: ServerMetrics) -> None:
        self.topics = topics
        self.metrics = metrics
        self.draining = False

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The method handlers to add to a grpc.aio server."""
        pb = admin_pb2
        table: dict[str, tuple[_Handler, Any]] = {
            "CreateTopic": (self._create, pb.CreateTopicRequest),
            "DeleteTopic": (self._delete, pb.DeleteTopicRequest),
            "ListTopics": (self._list, pb.ListTopicsRequest),
            "DescribeTopic": (self._describe, pb.DescribeTopicRequest),
            "AlterTopicConfig": (self._alter, pb.AlterTopicConfigRequest),
            "CreatePartitions": (self._grow, pb.CreatePartitionsRequest),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._unary(name, fn),
                request_deserializer=request_parser(message),  # malformed: INVALID_ARGUMENT
                response_serializer=_serialize,
            )
            for name, (fn, message) in table.items()
        }
        return grpc.method_handlers_generic_handler(ADMIN_SERVICE_NAME, handlers)

    def _unary(self, method: str, fn: _Handler) -> _Handler:
        return unary_handler(method, fn, self.metrics, lambda: self.draining, log)

    async def _create(
        self, request: admin_pb2.CreateTopicRequest, context: Any
    ) -> admin_pb2.CreateTopicResponse:
        topic = await self.topics.create_topic(
            request.name,
            request.partitions or 1,
            request.replication_factor,  # 0: the backend's default
            dict(request.config),
        )
        return admin_pb2.CreateTopicResponse(topic=topic_info(topic))

    async def _delete(
        self, request: admin_pb2.DeleteTopicRequest, context: Any
    ) -> admin_pb2.DeleteTopicResponse:
        await self.topics.delete_topic(check_writable_topic(request.name))
        return admin_pb2.DeleteTopicResponse()

    async def _list(
        self, request: admin_pb2.ListTopicsRequest, context: Any
    ) -> admin_pb2.ListTopicsResponse:
        topics = self.topics.list_topics()
        return admin_pb2.ListTopicsResponse(topics=[topic_info(t) for t in topics])

    async def _describe(
        self, request: admin_pb2.DescribeTopicRequest, context: Any
    ) -> admin_pb2.DescribeTopicResponse:
        return admin_pb2.DescribeTopicResponse(
            topic=topic_info(self.topics.describe_topic(request.name))
        )

    async def _alter(
        self, request: admin_pb2.AlterTopicConfigRequest, context: Any
    ) -> admin_pb2.AlterTopicConfigResponse:
        both = sorted(set(request.set) & set(request.delete))
        if both:
            raise InvalidArgumentError(
                f"config key {both[0]!r} is both set and deleted; give it once"
            )
        topic = await self.topics.alter_topic_config(
            check_writable_topic(request.name), dict(request.set), list(request.delete)
        )
        return admin_pb2.AlterTopicConfigResponse(topic=topic_info(topic))

    async def _grow(
        self, request: admin_pb2.CreatePartitionsRequest, context: Any
    ) -> admin_pb2.CreatePartitionsResponse:
        topic = await self.topics.create_partitions(
            check_writable_topic(request.name), request.count
        )
        return admin_pb2.CreatePartitionsResponse(topic=topic_info(topic))


class SingleNodeCluster:
    """The ``replog.v1.Cluster`` service of a single node: Status answers as a one-node
    cluster this node leads; membership and leadership changes are refused (UNIMPLEMENTED,
    one line saying why)."""

    def __init__(
        self,
        servers: Callable[[], list[Any]],
        commit_index: Callable[[], int],
        metrics: ServerMetrics,
    ) -> None:
        """``servers()``: the node's ServerInfo list (one); ``commit_index()``: its last
        offset."""
        self.servers = servers
        self.commit_index = commit_index
        self.metrics = metrics
        self.draining = False

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The method handlers to add to a grpc.aio server."""
        pb = cluster_pb2
        table: dict[str, tuple[_Handler, Any]] = {
            "Status": (self._status, pb.StatusRequest),
            "Remove": (self._refuse, pb.RemoveRequest),
            "TransferLeader": (self._refuse, pb.TransferLeaderRequest),
            "Decommission": (self._refuse, pb.DecommissionRequest),
            "ReassignPartition": (self._refuse, pb.ReassignPartitionRequest),
        }
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                unary_handler(name, fn, self.metrics, lambda: self.draining, log),
                request_deserializer=request_parser(message),
                response_serializer=_serialize,
            )
            for name, (fn, message) in table.items()
        }
        return grpc.method_handlers_generic_handler(CLUSTER_SERVICE_NAME, handlers)

    async def _status(
        self, request: cluster_pb2.StatusRequest, context: Any
    ) -> cluster_pb2.StatusResponse:
        me, commit = self.servers()[0], max(0, self.commit_index())
        member = cluster_pb2.Member(
            id=me.id,
            rpc_addr=me.rpc_addr,
            role="leader",
            voter=True,
            is_leader=True,
            match_index=commit,
            last_contact_s=-1.0,
        )
        return cluster_pb2.StatusResponse(
            node_id=me.id, leader_id=me.id, role="leader", commit_index=commit, members=[member]
        )

    async def _refuse(self, request: Any, context: Any) -> Any:
        raise UnsupportedError(SINGLE_NODE)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
