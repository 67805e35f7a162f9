"""Topic changes asked of a node that is not the controller leader go to the leader.

Kafka brokers forward admin requests to their controller (KIP-590); so does replog: the
node that received the request (and authorised it for the caller) hands the encoded
command to the controller leader over ``Cluster/ProposeMetadata``, node to node (the
node's identity holds ``replicate``), and waits until it applied the entry itself. Only
topic commands and a node's own Kafka and HTTP addresses (``SetKafkaAddress``,
``SetHttpAddress``) are accepted that way; moves and node changes have calls of their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from replog.broker.names import check_replication_factor
from replog.client.core import error_from_status
from replog.cluster.admin import NodeChannel, cluster_call, leader_hint
from replog.cluster.controller_commands import (
    AlterTopicConfig,
    Command,
    CreatePartitions,
    CreateTopic,
    DeleteTopic,
    SetHttpAddress,
    SetKafkaAddress,
    decode,
)
from replog.cluster.controller_state import active_nodes
from replog.cluster.members import AddressBook
from replog.cluster.metadata import Metadata
from replog.errors import InvalidArgumentError, UnavailableError
from replog.v1 import cluster_pb2

__all__ = ["MetadataForwarding"]

_FORWARDED = (
    CreateTopic,
    DeleteTopic,
    AlterTopicConfig,
    CreatePartitions,
    SetKafkaAddress,
    SetHttpAddress,
)
_ATTEMPTS = 3


class MetadataForwarding:
    """Both ends of ``Cluster/ProposeMetadata`` on one node."""

    def __init__(
        self,
        metadata: Metadata,
        book: AddressBook,
        credentials: grpc.ChannelCredentials | None,
        before_create: Callable[[], Awaitable[None]],
    ) -> None:
        """``before_create()`` runs on the leader before a CreateTopic is proposed (it
        registers the voters not registered yet, so placement sees them)."""
        self.metadata = metadata
        self.book = book
        self.credentials = credentials
        self._before_create = before_create

    async def propose(self, command: Command) -> int:
        """Propose ``command`` here if this node leads the controller, else through the
        leader; the index it applied at. A CreateTopic's replication factor 0 becomes
        min(3, nodes) there, and a factor above the node count is refused. Raises the
        command's error, or UnavailableError (``certainly_not_applied`` only when it
        certainly was not)."""
        if self.metadata.is_leader:
            if isinstance(command, CreateTopic):
                command = await self._placed(command)
            return await self.metadata.propose_at(command)
        lead = self.metadata.node.leader
        addr = self.book.address(lead) if lead is not None else None
        request = cluster_pb2.ProposeMetadataRequest(command=command.encode())
        for _ in range(_ATTEMPTS):
            if not addr:
                raise UnavailableError(
                    "no controller leader is known yet", certainly_not_applied=True
                )
            try:
                async with NodeChannel(addr, self.credentials) as channel:
                    response = await cluster_call(
                        channel, "ProposeMetadata", request, cluster_pb2.ProposeMetadataResponse
                    )
            except grpc.RpcError as exc:
                error = _error(exc)
                hint = leader_hint(exc)
                if isinstance(error, UnavailableError) and error.certainly_not_applied and hint:
                    addr = hint  # leadership moved: ask the new leader
                    continue
                raise error from None
            return int(response.index)
        raise UnavailableError("the controller leader kept moving", certainly_not_applied=True)

    async def _placed(self, command: CreateTopic) -> CreateTopic:
        """``command`` with its replication factor resolved against the registered nodes
        (0: min(3, nodes)). A voter becomes a node of the metadata a moment after it joined
        (or bootstrapped): until then a default or larger factor would be judged against
        too few nodes (refused as invalid, or placed on fewer replicas), so the caller is
        asked to retry (UNAVAILABLE, certainly not applied)."""
        await self._before_create()
        state = self.metadata.state
        active = len(active_nodes(state))
        voters = self.metadata.node.raft.config.voters
        unregistered = [v for v in voters if self.book.name(v) not in state.nodes]
        factor = command.replication_factor
        if unregistered and type(factor) is int and (factor == 0 or factor > active):
            raise UnavailableError(
                "not every node of the cluster is registered yet; retry",
                certainly_not_applied=True,
            )
        resolved = check_replication_factor(factor, active)
        return dataclasses.replace(command, replication_factor=resolved)

    def methods(self) -> dict[str, tuple[Callable[[Any], Awaitable[Any]], Any]]:
        """The Cluster service's method for this: name -> (handler, request type)."""
        return {"ProposeMetadata": (self._serve, cluster_pb2.ProposeMetadataRequest)}

    async def _serve(
        self, request: cluster_pb2.ProposeMetadataRequest
    ) -> cluster_pb2.ProposeMetadataResponse:
        command = decode(request.command)
        if not isinstance(command, _FORWARDED):
            raise InvalidArgumentError(f"{command.kind} cannot be forwarded")
        self.metadata.require_leader()  # never forwarded twice
        return cluster_pb2.ProposeMetadataResponse(index=await self.propose(command))


def _error(exc: grpc.RpcError) -> Exception:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return error_from_status(code.name if code is not None else "UNKNOWN", details or "", trailing)
