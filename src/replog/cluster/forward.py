"""Forwarding a produce to another node (``Raft/Forward``), as the node itself.

A follower forwards to its group's leader, a node without a replica to the partition's
replicas. The call is authorised as this node (``replicate``). An error tells whether the
records certainly did not reach the log (the leader was never connected, or it said so)
and, when the other node knew one, the leader's address.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc import aio

from replog.api.backend import NO_CONDITIONS, AppendValue, Conditions, DuplicateOffset
from replog.api.wire import set_conditions
from replog.cluster.transport import open_channel
from replog.errors import (
    InvalidArgumentError,
    UnavailableError,
    UnsupportedError,
    precondition_error,
)
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["FORWARD_TIMEOUT_S", "TOPIC_ID_KEY", "Forwarder"]

FORWARD_TIMEOUT_S = 10.0
#: Call metadata naming the topic incarnation a forwarded produce is for: a topic deleted
#: and created again has the same name, and a node still running the old one's group must
#: not take records meant for the new one.
TOPIC_ID_KEY = "replog-topic-id"
_CONNECT_FAILURES = ("failed to connect", "connection refused", "no route to host")


class Forwarder:
    """Forwards produce requests over one channel per node address."""

    def __init__(self, credentials: grpc.ChannelCredentials | None) -> None:
        """Open channels lazily, with ``credentials`` (None: plaintext)."""
        self._credentials = credentials
        self._channels: dict[str, aio.Channel] = {}

    async def forward(
        self,
        addr: str,
        values: Sequence[AppendValue],
        topic: str,
        partition: int,
        *,
        topic_id: int | None = None,
        conditions: Conditions = NO_CONDITIONS,
    ) -> int:
        """Append ``values`` to ``topic``/``partition`` (of the incarnation ``topic_id``,
        when given: a node whose group is of another one refuses) through the node at
        ``addr``, with ``conditions``; the first offset (a DuplicateOffset for a producer's
        retry). Raises InvalidArgumentError, UnsupportedError, the PreconditionFailedError
        the leader raised, or UnavailableError."""
        channel = self._channels.get(addr)
        if channel is None:
            channel = self._channels[addr] = open_channel(addr, self._credentials)
        records = [Record(value=v) if isinstance(v, bytes) else v for v in values]
        call = channel.unary_unary(
            "/replog.v1.Raft/Forward",
            request_serializer=log_pb2.ProduceBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        request = log_pb2.ProduceBatchRequest(records=records, topic=topic, partition=partition)
        set_conditions(request, conditions)
        try:
            metadata = None if topic_id is None else ((TOPIC_ID_KEY, str(topic_id)),)
            response = await call(request, timeout=FORWARD_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as exc:
            raise _error(addr, exc) from None
        if response.duplicate:
            return DuplicateOffset(response.base_offset)
        return int(response.base_offset)

    async def close(self) -> None:
        """Close the channels."""
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)


def _error(addr: str, exc: grpc.RpcError) -> Exception:
    aio_error = exc if isinstance(exc, aio.AioRpcError) else None
    code = aio_error.code() if aio_error is not None else None
    if code is grpc.StatusCode.INVALID_ARGUMENT and aio_error is not None:
        return InvalidArgumentError(str(aio_error.details()))
    if code is grpc.StatusCode.UNIMPLEMENTED and aio_error is not None:
        return UnsupportedError(str(aio_error.details()))
    trailing = tuple(aio_error.trailing_metadata() or ()) if aio_error is not None else ()
    if code is grpc.StatusCode.FAILED_PRECONDITION and aio_error is not None:
        meta = {str(k): str(v) for k, v in trailing}
        return precondition_error(
            meta.get("replog-error-code", ""),
            str(aio_error.details()),
            meta.get("replog-precondition", ""),
        )
    said = str(aio_error.details() if aio_error is not None else exc)
    details = said.lower()
    never_connected = code is grpc.StatusCode.UNAVAILABLE and any(
        s in details for s in _CONNECT_FAILURES
    )  # a dead leader: nothing reached it
    not_applied = never_connected or ("replog-not-applied", "1") in trailing
    leader = next((str(v) for k, v in trailing if k == "replog-leader"), "")
    return UnavailableError(
        f"forwarding to the node at {addr} failed: {said}",
        certainly_not_applied=not_applied,
        leader_addr=leader,
    )
