"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the replog gRPC API from Python.

Both share the method table, request encoding, error mapping and retry policy of
``replog.client.core``; only the waiting differs. Every call takes ``timeout`` (seconds per
attempt; the client's default when omitted, None for no limit).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Final, Self

import grpc
from grpc import aio

from replog.client.core import (
    DEFAULT_SERVER,
    METHOD_PREFIX,
    Batch,
    HeadersInput,
    RetryPolicy,
    ValueInput,
    check_offset,
    consume_batch_request,
    encode_batch_request,
    encode_produce_request,
    encode_record,
    encode_values,
    error_from_status,
    normalize_target,
)
from replog.errors import ReplogError
from replog.security.tls import TLSConfig, grpc_channel_credentials
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["AsyncClient", "Client", "ServerAddress"]

_DEFAULT: Final[Any] = object()
_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def _identity(data: bytes) -> bytes:
    return data


# name -> (kind, request serializer, response deserializer)
_METHODS: dict[str, tuple[str, Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "Produce": ("uu", _identity, log_pb2.ProduceResponse.FromString),
    "ProduceBatch": ("uu", _identity, log_pb2.ProduceBatchResponse.FromString),
    "Consume": (
        "uu",
        log_pb2.ConsumeRequest.SerializeToString,
        log_pb2.ConsumeResponse.FromString,
    ),
    "ConsumeBatch": (
        "uu",
        log_pb2.ConsumeBatchRequest.SerializeToString,
        log_pb2.ConsumeBatchResponse.FromString,
    ),
    "ConsumeBatchStream": (
        "us",
        log_pb2.ConsumeBatchRequest.SerializeToString,
        log_pb2.ConsumeBatchResponse.FromString,
    ),
    "GetServers": (
        "uu",
        log_pb2.GetServersRequest.SerializeToString,
        log_pb2.GetServersResponse.FromString,
    ),
}


class ServerAddress:
    """One server as ``servers()`` reports it."""

    __slots__ = ("id", "is_leader", "rpc_addr")

    def __init__(self, id: str, rpc_addr: str, is_leader: bool) -> None:
        self.id = id
        self.rpc_addr = rpc_addr
        self.is_leader = is_leader

    def __repr__(self) -> str:
        return (
            f"ServerAddress(id={self.id!r}, rpc_addr={self.rpc_addr!r}, is_leader={self.is_leader})"
        )


def _to_error(exc: grpc.RpcError) -> ReplogError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return error_from_status(code.name if code is not None else "UNKNOWN", details or "", metadata)


def _target(server: str | None) -> str:
    return normalize_target(server or os.environ.get("REPLOG_SERVER") or DEFAULT_SERVER)


def _credentials(
    ca: str | os.PathLike[str] | None,
    cert: str | os.PathLike[str] | None,
    key: str | os.PathLike[str] | None,
) -> grpc.ChannelCredentials | None:
    """Channel credentials for TLS (None for plaintext, when no path is given)."""
    if ca is None and cert is None and key is None:
        return None
    paths = (None if p is None else os.fspath(p) for p in (cert, key, ca))
    return grpc_channel_credentials(TLSConfig(*paths))


def _servers(response: log_pb2.GetServersResponse) -> list[ServerAddress]:
    return [ServerAddress(s.id, s.rpc_addr, s.is_leader) for s in response.servers]


class Client:
    """A blocking client of one replog server (``server`` = ``HOST:PORT``, default from
    ``REPLOG_SERVER`` or 127.0.0.1:7400). Thread-safe; use as a context manager or
    ``close()`` it. Errors are replog errors (``OffsetOutOfRangeError``,
    ``UnavailableError``, ``PermissionDeniedError``, ...).

    TLS: ``ca`` (PEM file) verifies the server's certificate; ``cert`` and ``key`` (PEM
    files, together) identify this client to a server that requires mutual TLS. Giving any
    of them makes the connection TLS; none is plaintext. A ``Producer`` gets TLS through
    its client: ``Producer(Client(addr, ca=..., cert=..., key=...))``."""

    def __init__(
        self,
        server: str | None = None,
        *,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
    ) -> None:
        self.server = _target(server)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        creds = _credentials(ca, cert, key)
        self._channel = (
            grpc.insecure_channel(self.server, options=_CHANNEL_OPTIONS)
            if creds is None
            else grpc.secure_channel(self.server, creds, options=_CHANNEL_OPTIONS)
        )
        self._rpc: dict[str, Any] = {}
        for name, (kind, ser, de) in _METHODS.items():
            factory = self._channel.unary_unary if kind == "uu" else self._channel.unary_stream
            self._rpc[name] = factory(
                METHOD_PREFIX + name, request_serializer=ser, response_deserializer=de
            )

    def _call(self, method: str, request: Any, *, idempotent: bool, timeout: Any) -> Any:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            try:
                return self._rpc[method](request, timeout=timeout)
            except grpc.RpcError as exc:
                error = _to_error(exc)
            delay = (
                next(delays, None) if self.retry.retryable(error, idempotent=idempotent) else None
            )
            if delay is None:
                raise error
            time.sleep(delay)

    def produce(
        self,
        value: ValueInput,
        key: bytes | None = None,
        headers: HeadersInput = None,
        *,
        timeout: float | None = _DEFAULT,
    ) -> int:
        """Append one record; return its offset once the server acknowledged it."""
        request = encode_produce_request(encode_record(value, key, headers))
        response = self._call("Produce", request, idempotent=False, timeout=timeout)
        return int(response.offset)

    def produce_batch(
        self, values: list[ValueInput] | tuple[ValueInput, ...], *, timeout: float | None = _DEFAULT
    ) -> tuple[int, int]:
        """Append values atomically at contiguous offsets; return ``(base_offset, count)``."""
        return self.produce_encoded(encode_values(values), timeout=timeout)

    def produce_encoded(
        self, records: list[bytes], *, timeout: float | None = _DEFAULT
    ) -> tuple[int, int]:
        """``produce_batch`` of already serialized Records (see ``core.encode_record``)."""
        request = encode_batch_request(records)
        response = self._call("ProduceBatch", request, idempotent=False, timeout=timeout)
        return int(response.base_offset), int(response.count)

    def consume(self, offset: int, *, timeout: float | None = _DEFAULT) -> Record:
        """The record at ``offset``; OffsetOutOfRangeError outside the log's range."""
        request = log_pb2.ConsumeRequest(offset=check_offset(offset))
        response = self._call("Consume", request, idempotent=True, timeout=timeout)
        record: Record = response.record
        return record

    def consume_batch(
        self,
        offset: int,
        max_records: int = 1000,
        max_wait_ms: int = 0,
        *,
        max_bytes: int = 0,
        timeout: float | None = _DEFAULT,
    ) -> Batch:
        """Records from ``offset`` (waiting up to ``max_wait_ms`` at the end of the log)."""
        request = consume_batch_request(offset, max_records, max_bytes, max_wait_ms)
        if timeout is _DEFAULT and self.timeout is not None:
            timeout = self.timeout + max_wait_ms / 1000
        response = self._call("ConsumeBatch", request, idempotent=True, timeout=timeout)
        return Batch(list(response.records), int(response.high_watermark))

    def stream_batches(self, offset: int, *, max_records: int = 0) -> Iterator[Batch]:
        """Batches of records from ``offset`` on, tailing new ones until closed.

        A lost connection is re-established (with backoff) from the next offset.
        """
        next_offset = check_offset(offset)
        delays = self.retry.delays()
        while True:
            request = consume_batch_request(next_offset, max_records, 0, 0)
            call = self._rpc["ConsumeBatchStream"](request)
            try:
                for response in call:
                    delays = self.retry.delays()
                    records = list(response.records)
                    if records:
                        next_offset = records[-1].offset + 1
                    yield Batch(records, int(response.high_watermark))
                return
            except grpc.RpcError as exc:
                error = _to_error(exc)
                retry = self.retry.retryable(error, idempotent=True)
                delay = next(delays, None) if retry else None
                if delay is None:
                    raise error from None
            finally:
                call.cancel()
            time.sleep(delay)

    def stream(self, offset: int, *, max_records: int = 0) -> Iterator[Record]:
        """Records from ``offset`` on, tailing new ones; stop by closing the iterator."""
        for batch in self.stream_batches(offset, max_records=max_records):
            yield from batch.records

    def servers(self, *, timeout: float | None = _DEFAULT) -> list[ServerAddress]:
        """The cluster's servers (a single server reports itself as leader)."""
        response = self._call(
            "GetServers", log_pb2.GetServersRequest(), idempotent=True, timeout=timeout
        )
        return _servers(response)

    def close(self) -> None:
        """Close the connection. Idempotent."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """The asyncio twin of ``Client``: the same calls, awaited."""

    def __init__(
        self,
        server: str | None = None,
        *,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
    ) -> None:
        self.server = _target(server)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        creds = _credentials(ca, cert, key)
        self._channel = (
            aio.insecure_channel(self.server, options=_CHANNEL_OPTIONS)
            if creds is None
            else aio.secure_channel(self.server, creds, options=_CHANNEL_OPTIONS)
        )
        self._rpc: dict[str, Any] = {}
        for name, (kind, ser, de) in _METHODS.items():
            factory = self._channel.unary_unary if kind == "uu" else self._channel.unary_stream
            self._rpc[name] = factory(
                METHOD_PREFIX + name, request_serializer=ser, response_deserializer=de
            )

    async def _call(self, method: str, request: Any, *, idempotent: bool, timeout: Any) -> Any:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            try:
                return await self._rpc[method](request, timeout=timeout)
            except grpc.RpcError as exc:
                error = _to_error(exc)
            delay = (
                next(delays, None) if self.retry.retryable(error, idempotent=idempotent) else None
            )
            if delay is None:
                raise error
            await asyncio.sleep(delay)

    async def produce(
        self,
        value: ValueInput,
        key: bytes | None = None,
        headers: HeadersInput = None,
        *,
        timeout: float | None = _DEFAULT,
    ) -> int:
        """Append one record; return its offset once the server acknowledged it."""
        request = encode_produce_request(encode_record(value, key, headers))
        response = await self._call("Produce", request, idempotent=False, timeout=timeout)
        return int(response.offset)

    async def produce_batch(
        self, values: list[ValueInput] | tuple[ValueInput, ...], *, timeout: float | None = _DEFAULT
    ) -> tuple[int, int]:
        """Append values atomically at contiguous offsets; return ``(base_offset, count)``."""
        request = encode_batch_request(encode_values(values))
        response = await self._call("ProduceBatch", request, idempotent=False, timeout=timeout)
        return int(response.base_offset), int(response.count)

    async def consume(self, offset: int, *, timeout: float | None = _DEFAULT) -> Record:
        """The record at ``offset``; OffsetOutOfRangeError outside the log's range."""
        request = log_pb2.ConsumeRequest(offset=check_offset(offset))
        response = await self._call("Consume", request, idempotent=True, timeout=timeout)
        record: Record = response.record
        return record

    async def consume_batch(
        self,
        offset: int,
        max_records: int = 1000,
        max_wait_ms: int = 0,
        *,
        max_bytes: int = 0,
        timeout: float | None = _DEFAULT,
    ) -> Batch:
        """Records from ``offset`` (waiting up to ``max_wait_ms`` at the end of the log)."""
        request = consume_batch_request(offset, max_records, max_bytes, max_wait_ms)
        if timeout is _DEFAULT and self.timeout is not None:
            timeout = self.timeout + max_wait_ms / 1000
        response = await self._call("ConsumeBatch", request, idempotent=True, timeout=timeout)
        return Batch(list(response.records), int(response.high_watermark))

    async def stream_batches(self, offset: int, *, max_records: int = 0) -> AsyncIterator[Batch]:
        """Batches of records from ``offset`` on, tailing; reconnects from the next offset."""
        next_offset = check_offset(offset)
        delays = self.retry.delays()
        while True:
            request = consume_batch_request(next_offset, max_records, 0, 0)
            call = self._rpc["ConsumeBatchStream"](request)
            try:
                async for response in call:
                    delays = self.retry.delays()
                    records = list(response.records)
                    if records:
                        next_offset = records[-1].offset + 1
                    yield Batch(records, int(response.high_watermark))
                return
            except grpc.RpcError as exc:
                error = _to_error(exc)
                retry = self.retry.retryable(error, idempotent=True)
                delay = next(delays, None) if retry else None
                if delay is None:
                    raise error from None
            finally:
                call.cancel()
            await asyncio.sleep(delay)

    async def stream(self, offset: int, *, max_records: int = 0) -> AsyncIterator[Record]:
        """Records from ``offset`` on, tailing new ones, until the iteration stops."""
        async for batch in self.stream_batches(offset, max_records=max_records):
            for record in batch.records:
                yield record

    async def servers(self, *, timeout: float | None = _DEFAULT) -> list[ServerAddress]:
        """The cluster's servers (a single server reports itself as leader)."""
        response = await self._call(
            "GetServers", log_pb2.GetServersRequest(), idempotent=True, timeout=timeout
        )
        return _servers(response)

    async def close(self) -> None:
        """Close the connection. Idempotent."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
