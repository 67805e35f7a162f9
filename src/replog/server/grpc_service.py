"""The ``replog.v1.Log`` gRPC service (grpc.aio) over a TopicsBackend.

Each request's (topic, partition) is resolved to that partition's LogBackend (see
``routing``: an empty topic is ``default``; a produce without a partition goes where its
keys map, or to the sticky partition); responses to produces name the partition.

Read responses are built as bytes straight from the Log's serialized records (see ``wire``),
so the service is registered with hand-made method handlers whose serializers pass bytes
through; clients see ordinary protobuf messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc import aio

from replog.api.backend import (
    STALL_S,
    DuplicateOffset,
    LogBackend,
    ReadResult,
    ServerInfo,
    new_producer_id,
)
from replog.api.status import grpc_code_for, metadata_for
from replog.api.wire import (
    IDEMPOTENT_NEEDS_PARTITION,
    check_parsed,
    encode_batch_response,
    encode_consume_response,
    produce_batch_request,
    produce_value,
    request_parser,
    single_conditions,
)
from replog.errors import (
    InvalidArgumentError,
    OffsetOutOfRangeError,
    ReplogError,
    UnavailableError,
)
from replog.security.identity import subject_from_grpc_auth
from replog.server.grpc_unary import unary_handler
from replog.server.limits import Limits
from replog.server.metrics import ServerMetrics
from replog.server.routing import end_sticky, produce_target, read_target
from replog.server.topics import DEFAULT_TOPIC, TopicsBackend
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["SERVICE_NAME", "LogService"]

SERVICE_NAME = "replog.v1.Log"
DEFAULT_MAX_RECORDS = 1000
MAX_RECORDS_LIMIT = 100_000
DEFAULT_MAX_BYTES = 1 << 20
#: A read answers at most about this much (more asked for is clamped): the server holds a
#: response two or three times over while it is sent.
MAX_BYTES_LIMIT = 16 << 20
#: Each message of a ConsumeBatchStream holds at most about this much, so a stream its client
#: does not read holds about 3 MiB (flow control stops the next message), not 3x max_bytes.
STREAM_MAX_BYTES = 1 << 20
MAX_WAIT_MS_LIMIT = 60_000
_STREAM_PIPELINE = 4096
#: A ProduceStream stops reading its client's records while this many bytes of them wait
#: for their append (its client's flow control then holds the rest).
STREAM_PIPELINE_BYTES = 8 << 20

log = logging.getLogger("replog.server.grpc")

Req = TypeVar("Req")


def _identity(data: bytes) -> bytes:
    return data


class LogService:
    """Handlers of the Log service; ``draining`` makes new calls fail with UNAVAILABLE.

    ``servers`` lists the cluster's servers for GetServers (default: those the ``default``
    topic's partition 0 reports).
    """

    def __init__(
        self,
        topics: TopicsBackend,
        metrics: ServerMetrics,
        limits: Limits | None = None,
        *,
        servers: Callable[[], list[ServerInfo]] | None = None,
        producer_ids: Callable[[], int] = new_producer_id,
    ) -> None:
        self.topics = topics
        self._producer_ids = producer_ids
        self._servers = servers or (lambda: topics.partition(DEFAULT_TOPIC, 0).servers())
        self.metrics = metrics
        self.limits = limits or Limits()
        self.draining = False
        self._streams: set[asyncio.Task[Any]] = set()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The method handlers to add to a grpc.aio server."""
        uu = grpc.unary_unary_rpc_method_handler
        us = grpc.unary_stream_rpc_method_handler
        ss = grpc.stream_stream_rpc_method_handler
        pb = log_pb2
        ser = _serialize
        parse = request_parser  # malformed bytes: INVALID_ARGUMENT, not grpcio's UNKNOWN
        handlers = {
            "Produce": uu(
                self._unary("Produce", self._produce),
                request_deserializer=parse(pb.ProduceRequest),
                response_serializer=ser,
            ),
            "ProduceBatch": uu(  # parsed by the handler (see wire.produce_batch_values)
                self._unary("ProduceBatch", self._produce_batch),
                request_deserializer=_identity,
                response_serializer=ser,
            ),
            "ProduceStream": ss(
                self._stream("ProduceStream", self._produce_stream),
                request_deserializer=parse(pb.ProduceRequest),
                response_serializer=ser,
            ),
            "Consume": uu(
                self._unary("Consume", self._consume),
                request_deserializer=parse(pb.ConsumeRequest),
                response_serializer=_identity,
            ),
            "ConsumeBatch": uu(
                self._unary("ConsumeBatch", self._consume_batch),
                request_deserializer=parse(pb.ConsumeBatchRequest),
                response_serializer=_identity,
            ),
            "ConsumeStream": us(
                self._stream("ConsumeStream", self._consume_stream),
                request_deserializer=parse(pb.ConsumeRequest),
                response_serializer=_identity,
            ),
            "ConsumeBatchStream": us(
                self._stream("ConsumeBatchStream", self._consume_batch_stream),
                request_deserializer=parse(pb.ConsumeBatchRequest),
                response_serializer=_identity,
            ),
            "GetServers": uu(
                self._unary("GetServers", self._get_servers),
                request_deserializer=parse(pb.GetServersRequest),
                response_serializer=ser,
            ),
            "InitProducerId": uu(
                self._unary("InitProducerId", self._init_producer_id),
                request_deserializer=parse(pb.InitProducerIdRequest),
                response_serializer=ser,
            ),
        }
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def cancel_streams(self) -> None:
        """Cancel every open stream (the last step of a shutdown)."""
        for task in list(self._streams):
            task.cancel()

    # -- wrappers: draining check, error mapping, metrics --------------------------------

    def _unary(
        self, method: str, fn: Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]
    ) -> Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]:
        return unary_handler(method, fn, self.metrics, lambda: self.draining, log)

    def _stream(
        self, method: str, fn: Callable[[Any, aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
    ) -> Callable[[Any, aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
        async def handle(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            status = "OK"
            task = asyncio.current_task()
            if task is not None:
                self._streams.add(task)
            try:
                if self.draining:
                    raise UnavailableError(
                        "the server is shutting down", certainly_not_applied=True
                    )
                check_parsed(request)  # a request stream's messages are checked one by one
                identity = subject_from_grpc_auth(context.auth_context())
                with self.limits.streams.hold(identity):
                    async for message in fn(request, context):
                        yield message
            except ReplogError as exc:
                status = grpc_code_for(exc).name
                await _abort(context, exc)
            except (asyncio.CancelledError, GeneratorExit):
                status = "CANCELLED"
                raise
            except Exception:
                if context.code() is not None:
                    status = str(context.code().name)
                    raise
                status = "INTERNAL"
                log.exception("unexpected error in %s", method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal server error")
            finally:
                if task is not None:
                    self._streams.discard(task)
                self.metrics.observe("grpc", method, status, time.perf_counter() - started)

        return handle

    # -- produce ---------------------------------------------------------------------------

    def _submit_one(self, request: log_pb2.ProduceRequest) -> tuple[asyncio.Future[int], int]:
        """Queue one ProduceRequest's record on its partition: (the offset's future, the
        partition)."""
        value = produce_value(request)  # refuses a malformed message first
        partition = request.partition if request.HasField("partition") else None
        target = produce_target(self.topics, request.topic, partition, [value])
        future = target.backend.submit([value], single_conditions(request))
        end_sticky(self.topics, request.topic, target)
        return future, target.partition

    async def _produce(
        self, request: log_pb2.ProduceRequest, context: aio.ServicerContext[Any, Any]
    ) -> log_pb2.ProduceResponse:
        future, partition = self._submit_one(request)
        return log_pb2.ProduceResponse(offset=await future, partition=partition)

    async def _produce_batch(
        self, request: bytes, context: aio.ServicerContext[Any, Any]
    ) -> log_pb2.ProduceBatchResponse:
        values, topic, partition, conditions = produce_batch_request(
            request, self.limits.max_batch_records
        )
        if conditions.producer_id and partition is None:
            raise InvalidArgumentError(IDEMPOTENT_NEEDS_PARTITION)
        target = produce_target(self.topics, topic, partition, values)
        future = target.backend.submit(values, conditions)
        end_sticky(self.topics, topic, target)
        base = await future
        return log_pb2.ProduceBatchResponse(
            base_offset=base,
            count=len(values),
            partition=target.partition,
            duplicate=isinstance(base, DuplicateOffset),
        )

    async def _produce_stream(
        self,
        requests: AsyncIterator[log_pb2.ProduceRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[log_pb2.ProduceResponse]:
        # Requests are queued for appending as they arrive (so they share group commits),
        # up to STREAM_PIPELINE_BYTES of them; answers go back in request order.
        pending: asyncio.Queue[tuple[asyncio.Future[int], int, int] | None] = asyncio.Queue(
            _STREAM_PIPELINE
        )
        budget = _ByteBudget(STREAM_PIPELINE_BYTES)

        async def pump() -> None:
            try:
                async for request in requests:
                    check_parsed(request)
                    size = request.record.ByteSize()
                    await budget.take(size)
                    future, partition = self._submit_one(request)
                    await pending.put((future, size, partition))
            finally:
                await pending.put(None)

        pumper = asyncio.create_task(pump())
        try:
            while (item := await pending.get()) is not None:
                offset = await item[0]
                budget.give(item[1])
                yield log_pb2.ProduceResponse(offset=offset, partition=item[2])
            await pumper
        finally:
            pumper.cancel()

    # -- consume ---------------------------------------------------------------------------

    @staticmethod
    def _check_start(backend: LogBackend, offset: int) -> None:
        lowest, high = backend.lowest_offset, backend.high_watermark
        if not lowest <= offset <= high:
            raise OffsetOutOfRangeError(offset, lowest, high)

    @staticmethod
    async def _await_min_offset(
        backend: LogBackend,
        min_offset: int,
        max_wait_ms: int,
        context: aio.ServicerContext[Any, Any],
    ) -> None:
        """Read-your-writes: wait until this node committed ``min_offset`` (bounded by
        ``max_wait_ms``, else by the call's deadline, at most a minute); UNAVAILABLE (safe to
        retry elsewhere) if it does not in time."""
        if not min_offset or backend.high_watermark > min_offset:
            return
        remaining = context.time_remaining()
        limit_s = MAX_WAIT_MS_LIMIT / 1000
        if max_wait_ms:
            limit_s = min(limit_s, max_wait_ms / 1000)
        if remaining is not None:
            limit_s = min(limit_s, max(0.0, remaining - 0.05))  # answer before the deadline
        if not await backend.wait_committed(min_offset, limit_s):
            raise UnavailableError(
                f"this node has not committed offset {min_offset} yet "
                f"(high watermark {backend.high_watermark})",
                certainly_not_applied=True,
            )

    async def _consume(
        self, request: log_pb2.ConsumeRequest, context: aio.ServicerContext[Any, Any]
    ) -> bytes:
        backend = read_target(self.topics, request.topic, request.partition)
        await self._await_min_offset(backend, request.min_offset, 0, context)
        payloads = backend.read_from(request.offset, 1, 1).payloads
        # A read skips control records: one that starts on one gives the next user record.
        if not payloads or Record.FromString(payloads[0]).offset != request.offset:
            high = backend.high_watermark
            raise OffsetOutOfRangeError(request.offset, backend.lowest_offset, high)
        self.metrics.on_read("grpc", 1, len(payloads[0]))
        return encode_consume_response(payloads[0])

    async def _consume_batch(
        self, request: log_pb2.ConsumeBatchRequest, context: aio.ServicerContext[Any, Any]
    ) -> bytes:
        max_records, max_bytes = _limits(request)
        offset = request.offset
        backend = read_target(self.topics, request.topic, request.partition)
        await self._await_min_offset(backend, request.min_offset, request.max_wait_ms, context)
        self._check_start(backend, offset)
        result = backend.read_from(offset, max_records, max_bytes)
        if not result.payloads and request.max_wait_ms:
            wait_s = min(request.max_wait_ms, MAX_WAIT_MS_LIMIT) / 1000
            if await backend.wait_for_data(result.next_offset, wait_s):
                result = backend.read_from(result.next_offset, max_records, max_bytes)
        payloads = result.payloads
        self.metrics.on_read("grpc", len(payloads), sum(map(len, payloads)))
        return encode_batch_response(payloads, backend.high_watermark, result.next_offset)

    async def _tail(
        self, backend: LogBackend, offset: int, max_records: int, max_bytes: int
    ) -> AsyncIterator[ReadResult]:
        """Reads from ``offset`` on, tailing. Each turn yields records, moves past control
        records (at most one turn in a row: a read skips all it meets), or waits."""
        self._check_start(backend, offset)
        woken = False
        while True:
            result = backend.read_from(offset, max_records, max_bytes)
            if result.payloads:
                yield result
            elif result.next_offset <= offset:
                if woken:  # woken, yet nothing to read: a backend bug must not spin the loop
                    await asyncio.sleep(STALL_S)
                woken = await backend.wait_for_data(offset, None)
                continue
            woken = False
            offset = max(offset, result.next_offset)

    async def _consume_stream(
        self, request: log_pb2.ConsumeRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        backend = read_target(self.topics, request.topic, request.partition)
        await self._await_min_offset(backend, request.min_offset, 0, context)
        tail = self._tail(backend, request.offset, DEFAULT_MAX_RECORDS, DEFAULT_MAX_BYTES)
        async for payloads, _ in tail:
            self.metrics.on_read("grpc", len(payloads), sum(map(len, payloads)))
            for payload in payloads:
                yield encode_consume_response(payload)

    async def _consume_batch_stream(
        self, request: log_pb2.ConsumeBatchRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        max_records, max_bytes = _limits(request)
        max_bytes = min(max_bytes, STREAM_MAX_BYTES)
        backend = read_target(self.topics, request.topic, request.partition)
        await self._await_min_offset(backend, request.min_offset, request.max_wait_ms, context)
        async for payloads, next_offset in self._tail(
            backend, request.offset, max_records, max_bytes
        ):
            self.metrics.on_read("grpc", len(payloads), sum(map(len, payloads)))
            yield encode_batch_response(payloads, backend.high_watermark, next_offset)

    async def _get_servers(
        self, request: log_pb2.GetServersRequest, context: aio.ServicerContext[Any, Any]
    ) -> log_pb2.GetServersResponse:
        servers = [
            log_pb2.Server(id=s.id, rpc_addr=s.rpc_addr, is_leader=s.is_leader, is_voter=s.is_voter)
            for s in self._servers()
        ]
        return log_pb2.GetServersResponse(servers=servers)

    async def _init_producer_id(
        self, request: log_pb2.InitProducerIdRequest, context: aio.ServicerContext[Any, Any]
    ) -> log_pb2.InitProducerIdResponse:
        return log_pb2.InitProducerIdResponse(producer_id=self._producer_ids(), producer_epoch=0)


class _ByteBudget:
    """Bytes one task may hold at once; ``take`` waits (unless none are held) for room."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._given = asyncio.Event()

    async def take(self, size: int) -> None:
        """Hold ``size`` more bytes, once the held ones leave room (at once when none)."""
        while self.held and self.held + size > self.limit:
            self._given.clear()
            await self._given.wait()
        self.held += size

    def give(self, size: int) -> None:
        """Release ``size`` held bytes."""
        self.held -= size
        self._given.set()


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _limits(request: log_pb2.ConsumeBatchRequest) -> tuple[int, int]:
    max_records = min(request.max_records or DEFAULT_MAX_RECORDS, MAX_RECORDS_LIMIT)
    max_bytes = min(request.max_bytes or DEFAULT_MAX_BYTES, MAX_BYTES_LIMIT)
    return max_records, max_bytes


async def _abort(context: aio.ServicerContext[Any, Any], exc: ReplogError) -> None:
    await context.abort(grpc_code_for(exc), str(exc), trailing_metadata=metadata_for(exc))
