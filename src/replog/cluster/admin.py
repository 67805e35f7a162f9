"""Cluster-service plumbing: refusals of admin operations and how the gRPC service reports
them (the HTTP routes map the same statuses in ``http_app``), and node-to-node Cluster calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from replog.api.status import grpc_code_for, metadata_for
from replog.api.wire import MalformedRequest
from replog.cluster.transport import open_channel
from replog.errors import ReplogError

__all__ = [
    "identity_bytes",
    "serialize_message",
    "CLUSTER_SERVICE",
    "AdminError",
    "NodeChannel",
    "abort_admin",
    "admin_rpc",
    "cluster_call",
    "leader_hint",
]

CLUSTER_SERVICE = "replog.v1.Cluster"


class AdminError(Exception):
    """An admin operation refused: ``status`` is NOT_LEADER (``leader_addr`` says where to go),
    NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE or DEADLINE_EXCEEDED."""

    def __init__(self, status: str, message: str, *, leader_addr: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.leader_addr = leader_addr


_GRPC_ADMIN_CODES = {
    "NOT_LEADER": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
}


async def abort_admin(context: aio.ServicerContext[Any, Any], exc: AdminError) -> None:
    """End the call with the status ``exc`` maps to (NOT_LEADER names the leader)."""
    trailing = (("replog-leader", exc.leader_addr),) if exc.status == "NOT_LEADER" else ()
    await context.abort(_GRPC_ADMIN_CODES[exc.status], str(exc), trailing_metadata=trailing)


def admin_rpc(
    operation: Callable[[Any], Awaitable[Any]],
) -> Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    """A gRPC handler running ``operation(request)``; an AdminError ends the call with its
    status (see :func:`abort_admin`), a ReplogError (a refused metadata command) its
    error's status and details; bytes that did not parse (``wire.request_parser``),
    INVALID_ARGUMENT."""

    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, MalformedRequest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        try:
            return await operation(request)
        except AdminError as exc:
            await abort_admin(context, exc)
            raise
        except ReplogError as exc:
            await context.abort(grpc_code_for(exc), str(exc), trailing_metadata=metadata_for(exc))
            raise

    return handler


class NodeChannel:
    """``async with NodeChannel(addr, creds) as channel``: a short-lived channel."""

    def __init__(self, addr: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.channel = open_channel(addr, credentials)

    async def __aenter__(self) -> aio.Channel:
        return self.channel

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close(None)


async def cluster_call(channel: aio.Channel, method: str, request: Any, response: Any) -> Any:
    """One ``replog.v1.Cluster`` call over ``channel`` (15 s deadline)."""
    call = channel.unary_unary(
        f"/{CLUSTER_SERVICE}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )
    return await call(request, timeout=15)


def leader_hint(exc: grpc.RpcError) -> str | None:
    """The leader address a refused Cluster call named (``replog-leader``), if any."""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == "replog-leader" and value:
            return str(value)
    return None


def identity_bytes(data: bytes) -> bytes:
    """A request "deserializer" that keeps the bytes (the handler parses them itself)."""
    return data


def serialize_message(message: Any) -> bytes:
    """A protobuf message's bytes (a response serializer)."""
    data: bytes = message.SerializeToString()
    return data
