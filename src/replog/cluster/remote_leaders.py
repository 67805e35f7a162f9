"""``RemoteLeaders``: who leads the partitions this node holds no replica of.

A node knows the leader of a partition it hosts from its own replica of the group; of the
others it knows only the replica set. Kafka's Metadata must name every partition's
leader from any broker, so this asks the replicas (``Admin/DescribeTopic`` on a live
replica node: each node names the leaders of the partitions it hosts) in the background
and keeps the answers for ``ttl_s``. A lookup never waits on the network: it answers
what is known ("" when nothing fresh is) and starts one refresh of the topic if none is
in flight, so a client's next Metadata (Kafka clients retry a partition without a
leader) finds it. A stale answer after a failover is corrected by the next refresh; the
named node meanwhile answers NOT_LEADER_OR_FOLLOWER, and clients ask again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from replog.cluster.admin import NodeChannel
from replog.cluster.controller_state import ControllerState
from replog.v1 import admin_pb2

__all__ = ["RemoteLeaders"]

log = logging.getLogger("replog.cluster.topics")

_DESCRIBE = "/replog.v1.Admin/DescribeTopic"
_CALL_TIMEOUT_S = 2.0


class RemoteLeaders:
    """Leaders of partitions hosted elsewhere, as their replicas report them."""

    def __init__(
        self,
        *,
        name: str,
        state: Callable[[], ControllerState],
        live: Callable[[str], bool],
        credentials: grpc.ChannelCredentials | None,
        ttl_s: float = 2.0,
    ) -> None:
        """``state()`` is the metadata this node applied, ``live(node)`` node liveness;
        this node is ``name`` (never asked)."""
        self.name = name
        self._state = state
        self._live = live
        self._credentials = credentials
        self.ttl_s = ttl_s
        self._known: dict[tuple[str, int], tuple[str, float]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def leader(self, topic: str, partition: int) -> str:
        """The partition's leader as its replicas last said, within ``ttl_s``; "" when no
        fresh word is known (a refresh of the topic then starts in the background)."""
        now = asyncio.get_running_loop().time()
        known = self._known.get((topic, partition))
        if known is not None and now - known[1] <= self.ttl_s:
            return known[0]
        running = self._refreshing.get(topic)
        if running is None or running.done():
            self._refreshing[topic] = asyncio.ensure_future(self._refresh(topic))
        return ""

    async def _refresh(self, topic: str) -> None:
        info = self._state().topics.get(topic)
        if info is None:
            return
        nodes = sorted(
            {n for p in info.partitions for n in p.replicas if n != self.name and self._live(n)}
        )
        answers = await asyncio.gather(*(self._ask(node, topic) for node in nodes))
        now = asyncio.get_running_loop().time()
        for described in answers:
            for part in described:
                if part.leader:
                    self._known[(topic, part.partition)] = (part.leader, now)

    async def _ask(self, node: str, topic: str) -> list[admin_pb2.PartitionInfo]:
        """What ``node`` says of ``topic``'s partitions ([] if it does not answer)."""
        info = self._state().nodes.get(node)
        if info is None:
            return []
        try:
            async with NodeChannel(info.address, self._credentials) as channel:
                call = channel.unary_unary(
                    _DESCRIBE,
                    request_serializer=admin_pb2.DescribeTopicRequest.SerializeToString,
                    response_deserializer=admin_pb2.DescribeTopicResponse.FromString,
                )
                request = admin_pb2.DescribeTopicRequest(name=topic)
                response = await call(request, timeout=_CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            log.debug("asking %s for the leaders of %s failed: %s", node, topic, exc)
            return []
        return list(response.topic.partitions)

    async def close(self) -> None:
        """Cancel the refreshes in flight."""
        for task in self._refreshing.values():
            task.cancel()
        await asyncio.gather(*self._refreshing.values(), return_exceptions=True)
        self._refreshing.clear()
