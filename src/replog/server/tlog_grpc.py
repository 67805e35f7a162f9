"""The ``replog.v1.Tlog`` gRPC service: a partition's signed checkpoint and its inclusion and
consistency proofs (the twins of ``http_tlog``'s routes; tiles are HTTP only, as C2SP has
them), and range proofs, one for a batch of records (what ``Client(verify_key=...)`` reads
with). Consume permission on the topic (the interceptor checks it from ``topic``). On a
cluster each node answers from its own replica (``tlog_source``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc

from replog.api.wire import request_parser
from replog.errors import InvalidArgumentError, NotFoundError, UnsupportedError
from replog.server.grpc_unary import UnaryHandler, unary_handler
from replog.server.http_tlog import TlogState, check_held
from replog.server.metrics import ServerMetrics
from replog.server.tlog_source import TlogPartition
from replog.server.topics import DEFAULT_TOPIC
from replog.tlog.proof import consistency_proof, inclusion_proof, range_proof
from replog.tlog.tile_files import TileDirectory
from replog.v1 import tlog_pb2 as pb

__all__ = ["TLOG_SERVICE_NAME", "TlogGrpc"]

TLOG_SERVICE_NAME = "replog.v1.Tlog"

log = logging.getLogger("replog.server.tlog")


class TlogGrpc:
    """Handlers of the Tlog service; ``draining`` makes new calls fail with UNAVAILABLE."""

    def __init__(self, state: TlogState, metrics: ServerMetrics) -> None:
        self.state = state
        self.metrics = metrics
        self.draining = False

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The method handlers to add to a grpc.aio server."""
        table: dict[str, tuple[UnaryHandler, Any]] = {
            "GetCheckpoint": (self._checkpoint, pb.GetCheckpointRequest),
            "GetInclusionProof": (self._inclusion, pb.GetInclusionProofRequest),
            "GetConsistencyProof": (self._consistency, pb.GetConsistencyProofRequest),
            "GetRangeProof": (self._range, pb.GetRangeProofRequest),
        }
        draining: Callable[[], bool] = lambda: self.draining  # noqa: E731
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                unary_handler(name, fn, self.metrics, draining, log),
                request_deserializer=request_parser(message),
                response_serializer=lambda m: m.SerializeToString(),
            )
            for name, (fn, message) in table.items()
        }
        return grpc.method_handlers_generic_handler(TLOG_SERVICE_NAME, handlers)

    def _partition(self, topic: str, partition: int) -> TlogPartition:
        if self.state.source is None:
            raise UnsupportedError("this server does not serve the verifiable log")
        return self.state.source.partition(topic or DEFAULT_TOPIC, partition)

    async def _checkpoint(
        self, request: pb.GetCheckpointRequest, context: Any
    ) -> pb.GetCheckpointResponse:
        store = self._partition(request.topic, request.partition).checkpoints
        if store is None:
            raise NotFoundError("this server signs no checkpoints (no --signing-key)")
        try:
            note = await asyncio.to_thread(store.read, request.size or None)
        except InvalidArgumentError as exc:
            raise NotFoundError(str(exc)) from None
        return pb.GetCheckpointResponse(note=note)

    async def _inclusion(
        self, request: pb.GetInclusionProofRequest, context: Any
    ) -> pb.ProofResponse:
        part = self._partition(request.topic, request.partition)
        await part.hold(request.tree_size)

        def prove(tiles: TileDirectory) -> list[bytes]:
            check_held(part, tiles, request.tree_size)
            return inclusion_proof(tiles, request.offset, request.tree_size)

        return pb.ProofResponse(hashes=await asyncio.to_thread(part.tree.read, prove))

    async def _consistency(
        self, request: pb.GetConsistencyProofRequest, context: Any
    ) -> pb.ProofResponse:
        part = self._partition(request.topic, request.partition)
        await part.hold(request.new_size)

        def prove(tiles: TileDirectory) -> list[bytes]:
            check_held(part, tiles, request.new_size)
            return consistency_proof(tiles, request.old_size, request.new_size)

        return pb.ProofResponse(hashes=await asyncio.to_thread(part.tree.read, prove))

    async def _range(self, request: pb.GetRangeProofRequest, context: Any) -> pb.ProofResponse:
        part = self._partition(request.topic, request.partition)
        start, count, size = request.first_offset, request.count, request.tree_size
        if count < 1:
            raise InvalidArgumentError("a range proof needs count >= 1")
        await part.hold(size)

        def prove(tiles: TileDirectory) -> list[bytes]:
            check_held(part, tiles, size)
            return range_proof(tiles, start, start + count, size)

        return pb.ProofResponse(hashes=await asyncio.to_thread(part.tree.read, prove))
