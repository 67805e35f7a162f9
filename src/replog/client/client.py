"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the replog gRPC API from Python.

Both share the method table, request encoding, error mapping and retry policy of
``replog.client.core`` and the server choice of ``replog.client.picker``; only the waiting
differs. Every call takes ``timeout`` (seconds per attempt; the client's default when
omitted, None for no limit).

Leader-aware: the client is given one or more bootstrap addresses, learns the members from
``GetServers`` (refreshed every ``refresh_s`` and after a failure), sends produces to the
leader and spreads reads over the followers. A call that fails with UNAVAILABLE marks that
member as failed and is retried on another one when the retry policy allows it (reads
always; produces only when certainly not applied).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Final, Self

import grpc

from replog.client.admin import ADMIN_METHODS, AdminMethods
from replog.client.core import (
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT,
    METHOD_PREFIX,
    Batch,
    HeadersInput,
    Offset,
    RetryPolicy,
    ValueInput,
    batch_from,
    check_offset,
    consume_batch_request,
    consume_request,
    encode_batch_request,
    encode_produce_request,
    encode_record,
    encode_values,
    error_from_status,
)
from replog.client.picker import DEFAULT_REFRESH_S, Member, Picker, parse_bootstrap
from replog.errors import DeadlineExceededError, ReplogError, UnavailableError
from replog.security.tls import TLSConfig, grpc_channel_credentials
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["Client", "ServerAddress"]

_DEFAULT: Final[Any] = DEFAULT_TIMEOUT
_PRODUCE, _CONSUME = "produce", "consume"
_REFRESH_TIMEOUT_S = 2.0
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

    __slots__ = ("id", "is_leader", "is_voter", "rpc_addr")

    def __init__(self, id: str, rpc_addr: str, is_leader: bool, is_voter: bool = True) -> None:
        self.id = id
        self.rpc_addr = rpc_addr
        self.is_leader = is_leader
        self.is_voter = is_voter

    def __repr__(self) -> str:
        return (
            f"ServerAddress(id={self.id!r}, rpc_addr={self.rpc_addr!r}, "
            f"is_leader={self.is_leader}, is_voter={self.is_voter})"
        )


def _to_error(exc: grpc.RpcError) -> ReplogError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return error_from_status(code.name if code is not None else "UNKNOWN", details or "", metadata)


def _targets(server: str | Sequence[str] | None) -> list[str]:
    return parse_bootstrap(server or os.environ.get("REPLOG_SERVER") or DEFAULT_SERVER)


def _stubs(channel: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, ser, de) in (_METHODS | ADMIN_METHODS).items():
        factory = channel.unary_unary if kind == "uu" else channel.unary_stream
        path = name if name.startswith("/") else METHOD_PREFIX + name
        out[name] = factory(path, request_serializer=ser, response_deserializer=de)
    return out


def _members(response: log_pb2.GetServersResponse) -> list[Member]:
    return [Member(s.id, s.rpc_addr, s.is_leader, s.is_voter) for s in response.servers]


def _refresh_timeout(timeout: float | None) -> float:
    return _REFRESH_TIMEOUT_S if timeout is None else min(timeout, _REFRESH_TIMEOUT_S)


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
    return [ServerAddress(s.id, s.rpc_addr, s.is_leader, s.is_voter) for s in response.servers]


class _ClientBase:
    """What ``Client`` and ``AsyncClient`` share: their state and the decisions of their
    retry and refresh loops. The twins add only the I/O (blocking or awaited calls)."""

    def __init__(
        self,
        server: str | Sequence[str] | None,
        *,
        timeout: float | None,
        retry: RetryPolicy | None,
        ca: str | os.PathLike[str] | None,
        cert: str | os.PathLike[str] | None,
        key: str | os.PathLike[str] | None,
        refresh_s: float,
    ) -> None:
        bootstrap = _targets(server)
        self.server = bootstrap[0]
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.picker = Picker(bootstrap, refresh_s=refresh_s)
        self._creds = _credentials(ca, cert, key)
        self._conns: dict[str, dict[str, Any]] = {}

    def _acknowledged(self, base: int, count: int, topic: str, partition: int) -> Offset:
        """Note an acknowledged produce of ``count`` records from ``base`` (read-your-writes)
        and give its base offset."""
        self.picker.note_written(int(base) + count - 1, topic, int(partition))
        return Offset(int(base), int(partition))

    def _pick(self, route: str) -> str:
        return self.picker.for_produce() if route == _PRODUCE else self.picker.for_consume()

    def _delay_after(
        self, addr: str, exc: grpc.RpcError, delays: Iterator[float], *, idempotent: bool
    ) -> float:
        """After a failed call to ``addr``: how long to wait before retrying, or raise."""
        error = _to_error(exc)
        if isinstance(error, UnavailableError):
            self.picker.on_unavailable(addr, time.monotonic(), error.leader_addr)
        delay = next(delays, None) if self.retry.retryable(error, idempotent=idempotent) else None
        if delay is None:
            raise error
        return delay

    @staticmethod
    def _ask_another(exc: grpc.RpcError) -> bool:
        """Whether a failed GetServers is worth asking another member (else stop refreshing)."""
        return isinstance(_to_error(exc), UnavailableError | DeadlineExceededError)


class Client(_ClientBase, AdminMethods):
    """A blocking client of a replog server or cluster. ``server`` is ``HOST:PORT``, several
    of them comma-separated or as a list (bootstrap addresses; default from ``REPLOG_SERVER``
    or 127.0.0.1:7400). Thread-safe; use as a context manager or ``close()`` it. Errors are
    replog errors (``OffsetOutOfRangeError``, ``UnavailableError``, ``PermissionDeniedError``,
    ...). Produces go to the leader, reads round-robin to followers (see the module docstring).

    TLS: ``ca`` (PEM file) verifies the server's certificate; ``cert`` and ``key`` (PEM
    files, together) identify this client to a server that requires mutual TLS. Giving any
    of them makes the connection TLS; none is plaintext. A ``Producer`` gets TLS through
    its client: ``Producer(Client(addr, ca=..., cert=..., key=...))``."""

    def __init__(
        self,
        server: str | Sequence[str] | None = None,
        *,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        super().__init__(
            server, timeout=timeout, retry=retry, ca=ca, cert=cert, key=key, refresh_s=refresh_s
        )
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _stub(self, addr: str, method: str) -> Any:
        stubs = self._conns.get(addr)
        if stubs is None:
            with self._lock:
                stubs = self._conns.get(addr)
                if stubs is None:
                    channel = (
                        grpc.insecure_channel(addr, options=_CHANNEL_OPTIONS)
                        if self._creds is None
                        else grpc.secure_channel(addr, self._creds, options=_CHANNEL_OPTIONS)
                    )
                    self._channels[addr] = channel
                    stubs = self._conns[addr] = _stubs(channel)
        return stubs[method]

    def _refresh(self, timeout: float | None) -> None:
        picker = self.picker
        if not picker.begin_refresh(time.monotonic()):
            return
        retry_after_s = 1.0
        try:
            for addr in picker.refresh_candidates():
                try:
                    response = self._stub(addr, "GetServers")(
                        log_pb2.GetServersRequest(), timeout=_refresh_timeout(timeout)
                    )
                except grpc.RpcError as exc:
                    if not self._ask_another(exc):
                        retry_after_s = picker.refresh_s  # e.g. not allowed to ask
                        break
                    continue
                picker.update(_members(response), time.monotonic(), asked=addr)
                return
        finally:
            if picker.refreshing:
                picker.refresh_failed(time.monotonic(), retry_after_s=retry_after_s)

    def _call(
        self, method: str, request: Any, *, idempotent: bool, timeout: Any, route: str = _CONSUME
    ) -> Any:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            self._refresh(timeout)
            addr = self._pick(route)
            try:
                return self._stub(addr, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                time.sleep(self._delay_after(addr, exc, delays, idempotent=idempotent))

    def produce(
        self,
        value: ValueInput,
        key: bytes | None = None,
        headers: HeadersInput = None,
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Offset:
        """Append one record to ``topic`` (default: ``default``); return its offset (an
        ``Offset``: an int whose ``partition`` says where it went) once acknowledged.

        ``partition`` None: the server chooses by the key (Kafka's murmur2 partitioner),
        or a sticky partition for a record without one. UnknownTopicError and
        UnknownPartitionError when the topic or partition does not exist.
        """
        request = encode_produce_request(encode_record(value, key, headers), topic, partition)
        response = self._call("Produce", request, idempotent=False, timeout=timeout, route=_PRODUCE)
        return self._acknowledged(response.offset, 1, topic, response.partition)

    def produce_batch(
        self,
        values: list[ValueInput] | tuple[ValueInput, ...],
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> tuple[Offset, int]:
        """Append values atomically at contiguous offsets of one partition of ``topic``;
        return ``(base_offset, count)`` (``base_offset.partition`` is the partition).

        ``partition`` None: the partition of the records' keys (all keyed records must map
        to one, else InvalidArgumentError), or a sticky one when none has a key.
        """
        return self.produce_encoded(
            encode_values(values), topic=topic, partition=partition, timeout=timeout
        )

    def produce_encoded(
        self,
        records: list[bytes],
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> tuple[Offset, int]:
        """``produce_batch`` of already serialized Records (see ``core.encode_record``)."""
        request = encode_batch_request(records, topic, partition)
        response = self._call(
            "ProduceBatch", request, idempotent=False, timeout=timeout, route=_PRODUCE
        )
        count = int(response.count)
        return self._acknowledged(response.base_offset, count, topic, response.partition), count

    def consume(
        self,
        offset: int,
        *,
        topic: str = "",
        partition: int = 0,
        min_offset: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Record:
        """The record at ``offset`` of ``topic`` (default: ``default``) ``partition``;
        OffsetOutOfRangeError outside the partition's range.

        ``min_offset`` (read-your-writes): the server first waits until it has committed
        that offset, within the call's timeout. By default it is the last offset this
        client's own produces to that partition were acknowledged at; 0 reads without
        waiting.
        """
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_request(offset, floor, topic, partition)
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
        topic: str = "",
        partition: int = 0,
        min_offset: int | None = None,
        timeout: float | None = _DEFAULT,
    ) -> Batch:
        """Records from ``offset`` of ``topic`` ``partition`` (waiting up to ``max_wait_ms``
        at its end), once the server has committed ``min_offset`` (default: this client's
        last write to that partition)."""
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_batch_request(
            offset, max_records, max_bytes, max_wait_ms, floor, topic, partition
        )
        if timeout is _DEFAULT and self.timeout is not None:
            timeout = self.timeout + max_wait_ms / 1000
        response = self._call("ConsumeBatch", request, idempotent=True, timeout=timeout)
        return batch_from(response)

    def stream_batches(
        self, offset: int, *, max_records: int = 0, topic: str = "", partition: int = 0
    ) -> Iterator[Batch]:
        """Batches of records from ``offset`` of ``topic`` ``partition`` on, tailing new
        ones until closed.

        A lost connection is re-established (with backoff) from the next offset.
        """
        next_offset = check_offset(offset)
        delays = self.retry.delays()
        while True:
            request = consume_batch_request(next_offset, max_records, 0, 0, 0, topic, partition)
            self._refresh(self.timeout)
            addr = self.picker.for_consume()
            call = self._stub(addr, "ConsumeBatchStream")(request)
            try:
                for response in call:
                    delays = self.retry.delays()
                    batch = batch_from(response)
                    # Resume where the server said: past control records, even after an empty batch.
                    next_offset = max(next_offset, batch.next_offset or 0)
                    yield batch
                return
            except grpc.RpcError as exc:
                delay = self._delay_after(addr, exc, delays, idempotent=True)
            finally:
                call.cancel()
            time.sleep(delay)

    def stream(
        self, offset: int, *, max_records: int = 0, topic: str = "", partition: int = 0
    ) -> Iterator[Record]:
        """Records from ``offset`` of ``topic`` ``partition`` on, tailing new ones; stop by
        closing the iterator."""
        batches = self.stream_batches(
            offset, max_records=max_records, topic=topic, partition=partition
        )
        for batch in batches:
            yield from batch.records

    def servers(self, *, timeout: float | None = _DEFAULT) -> list[ServerAddress]:
        """The cluster's servers (a single server reports itself as leader)."""
        response = self._call(
            "GetServers", log_pb2.GetServersRequest(), idempotent=True, timeout=timeout
        )
        return _servers(response)

    def close(self) -> None:
        """Close the connections. Idempotent."""
        with self._lock:
            channels, self._channels, self._conns = list(self._channels.values()), {}, {}
        for channel in channels:
            channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
