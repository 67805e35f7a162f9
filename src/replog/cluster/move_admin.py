"""Decommission and reassignment as admin operations, and a move's completion.

The ``replog.v1.Cluster`` methods ``Decommission``, ``ReassignPartition`` (users, through
the CLI or HTTP) and ``CompleteReassignment`` (node to node: a partition leader whose
group reached its target) propose their controller command on the controller leader; on
another node they are refused as ``UNAVAILABLE`` with the leader's address
(``replog-leader``), which the CLI follows. Each returns once its command applied; the
moves themselves are ``replog.cluster.moves``'s, and ``Status`` shows their progress.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.admin import AdminError, NodeChannel, cluster_call
from replog.cluster.controller import removable
from replog.cluster.controller_commands import (
    CompleteReassignment,
    DecommissionNode,
    ReassignPartition,
)
from replog.cluster.controller_state import ControllerState
from replog.cluster.members import AddressBook
from replog.cluster.metadata import Metadata
from replog.errors import InvalidArgumentError, UnavailableError
from replog.v1 import cluster_pb2

__all__ = ["MoveAdmin", "progress"]

#: No replica set is longer (a request naming more is refused before it is proposed).
_MAX_REPLICAS = 255


class MoveAdmin:
    """The move operations of one node (see the module docstring)."""

    def __init__(
        self, metadata: Metadata, book: AddressBook, credentials: grpc.ChannelCredentials | None
    ) -> None:
        """Propose through ``metadata`` (the controller state this node applied)."""
        self.metadata = metadata
        self.book = book
        self.credentials = credentials

    # -- operations -------------------------------------------------------------------------

    async def decommission(self, node_id: str) -> list[cluster_pb2.PartitionMove]:
        """Propose ``DecommissionNode``: the moves it started (partitions listing the node)."""
        if not node_id:
            raise InvalidArgumentError("the node to decommission is required")
        state = await self.metadata.propose(DecommissionNode(node_id))
        return [m for m in moves(state) if node_id in m.replicas]

    async def reassign(
        self, topic: str, partition: int, replicas: Sequence[str]
    ) -> cluster_pb2.PartitionMove:
        """Propose ``ReassignPartition``: the partition's replicas and target afterwards."""
        if not topic:
            raise InvalidArgumentError("the topic is required")
        if not replicas:
            raise InvalidArgumentError("--replicas: a partition needs at least one replica")
        if len(replicas) > _MAX_REPLICAS:
            raise InvalidArgumentError(f"at most {_MAX_REPLICAS} replicas")
        state = await self.metadata.propose(ReassignPartition(topic, partition, tuple(replicas)))
        part = state.topics[topic].partitions[partition]
        return _move(topic, partition, part.replicas, part.target or ())

    async def complete(self, command: CompleteReassignment) -> None:
        """Propose ``CompleteReassignment`` here (the controller leader)."""
        await self.metadata.propose(command)

    async def complete_on_leader(self, command: CompleteReassignment) -> None:
        """Record a finished move through the controller leader, here or over gRPC.
        Raises ReplogError (refused, or unknown outcome: the caller looks again later)."""
        if self.metadata.is_leader:
            await self.metadata.propose(command)
            return
        lead = self.metadata.node.leader
        addr = self.book.address(lead) if lead is not None else None
        if not addr:
            raise UnavailableError("no controller leader is known yet")
        request = cluster_pb2.CompleteReassignmentRequest(
            topic=command.topic,
            partition=command.partition,
            topic_id=command.topic_id,
            replicas=list(command.replicas),
        )
        try:
            async with NodeChannel(addr, self.credentials) as channel:
                await cluster_call(
                    channel,
                    "CompleteReassignment",
                    request,
                    cluster_pb2.CompleteReassignmentResponse,
                )
        except grpc.RpcError as exc:
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise UnavailableError(f"the controller leader did not record it: {details}") from None

    def refuse_rejoin(self, node_id: str) -> None:
        """Raise AdminError (FAILED_PRECONDITION) if ``node_id``, not a member of the
        controller group, was decommissioned: it must not come back (a restart on a new
        address asks to join again)."""
        info = self.metadata.state.nodes.get(node_id)
        if info is not None and info.state != "active":
            raise AdminError(
                "FAILED_PRECONDITION",
                f"{node_id} was decommissioned; it cannot join again under that id",
            )

    # -- the gRPC methods -------------------------------------------------------------------

    def methods(self) -> dict[str, tuple[Callable[[Any], Awaitable[Any]], Any]]:
        """The Cluster service's move methods: name -> (handler, request type)."""
        pb = cluster_pb2
        return {
            "Decommission": (self._decommission_rpc, pb.DecommissionRequest),
            "ReassignPartition": (self._reassign_rpc, pb.ReassignPartitionRequest),
            "CompleteReassignment": (self._complete_rpc, pb.CompleteReassignmentRequest),
        }

    async def _decommission_rpc(
        self, request: cluster_pb2.DecommissionRequest
    ) -> cluster_pb2.DecommissionResponse:
        return cluster_pb2.DecommissionResponse(moves=await self.decommission(request.node_id))

    async def _reassign_rpc(
        self, request: cluster_pb2.ReassignPartitionRequest
    ) -> cluster_pb2.ReassignPartitionResponse:
        move = await self.reassign(request.topic, request.partition, list(request.replicas))
        return cluster_pb2.ReassignPartitionResponse(move=move)

    async def _complete_rpc(
        self, request: cluster_pb2.CompleteReassignmentRequest
    ) -> cluster_pb2.CompleteReassignmentResponse:
        command = CompleteReassignment(
            request.topic, request.partition, request.topic_id, tuple(request.replicas)
        )
        await self.complete(command)
        return cluster_pb2.CompleteReassignmentResponse()


def _move(
    topic: str, partition: int, replicas: Sequence[str], target: Sequence[str]
) -> cluster_pb2.PartitionMove:
    return cluster_pb2.PartitionMove(
        topic=topic, partition=partition, replicas=list(replicas), target=list(target)
    )


def moves(state: ControllerState) -> list[cluster_pb2.PartitionMove]:
    """Every partition being moved, by topic and partition."""
    return [
        _move(name, p, part.replicas, part.target)
        for name in sorted(state.topics)
        for p, part in enumerate(state.topics[name].partitions)
        if part.target is not None
    ]


def progress(response: cluster_pb2.StatusResponse, state: ControllerState) -> None:
    """Add the metadata's nodes (their state, how many partitions list each) and the moves
    in progress to a Status answer."""
    count: dict[str, int] = {}
    for name, topic in state.topics.items():
        if name == DEFAULT_TOPIC:
            continue
        for part in topic.partitions:
            for n in part.hosts:
                count[n] = count.get(n, 0) + 1
    for node_id in sorted(state.nodes):
        info = state.nodes[node_id]
        label = "decommissioned" if removable(state, node_id) else info.state
        response.nodes.append(
            cluster_pb2.MetadataNode(
                id=node_id, rpc_addr=info.address, state=label, partitions=count.get(node_id, 0)
            )
        )
    response.moves.extend(moves(state))
