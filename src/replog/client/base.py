"""What ``Client`` and ``AsyncClient`` share: the method table, the channel options, error
mapping, and ``_ClientBase`` (their state and the decisions of their retry, refresh and
routing loops). See ``replog.client.client``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import grpc

from replog.client.admin import (
    ADMIN_METHODS,
)
from replog.client.core import (
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT,
    METHOD_PREFIX,
    Offset,
    RetryPolicy,
    error_from_status,
)
from replog.client.groups import GROUP_METHODS
from replog.client.partitioner import partition_for_key
from replog.client.picker import Member, Picker, parse_bootstrap
from replog.client.routes import PartitionRoutes
from replog.client.verify import VERIFIED, VERIFY_METHODS, RecordVerifier
from replog.client.verify_state import TrustStore
from replog.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    ReplogError,
    UnavailableError,
    UnknownTopicError,
)
from replog.security.tls import TLSConfig, grpc_channel_credentials
from replog.tlog.note import Verifier
from replog.v1 import log_pb2

__all__ = ["ServerAddress", "verifier_for"]

_DEFAULT: Final[Any] = DEFAULT_TIMEOUT
_PRODUCE, _CONSUME = "produce", "consume"
_REFRESH_TIMEOUT_S = 2.0
#: The internal topic whose partitions' leaders coordinate the consumer groups.
OFFSETS_TOPIC = "__consumer_offsets"
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
    "InitProducerId": (
        "uu",
        log_pb2.InitProducerIdRequest.SerializeToString,
        log_pb2.InitProducerIdResponse.FromString,
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


_UNREACHABLE = ("failed to connect", "connection refused", "socket closed", "unreachable")


def _unreachable(error: ReplogError) -> bool:
    """Whether an UNAVAILABLE came from the transport (the node is down or unreachable),
    not from a node that answered (a partition electing, starting, or held elsewhere)."""
    text = str(error).lower()
    return any(s in text for s in _UNREACHABLE)


def _to_error(exc: grpc.RpcError) -> ReplogError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return error_from_status(code.name if code is not None else "UNKNOWN", details or "", metadata)


def _targets(server: str | Sequence[str] | None) -> list[str]:
    return parse_bootstrap(server or os.environ.get("REPLOG_SERVER") or DEFAULT_SERVER)


def _stubs(channel: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (kind, ser, de) in (_METHODS | ADMIN_METHODS | GROUP_METHODS).items():
        factory = channel.unary_unary if kind == "uu" else channel.unary_stream
        path = name if name.startswith("/") else METHOD_PREFIX + name
        out[name] = factory(path, request_serializer=ser, response_deserializer=de)
    for name, (kind, path, ser, de) in VERIFY_METHODS.items():
        factory = channel.unary_unary if kind == "uu" else channel.unary_stream
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


def verifier_for(key: str | None, state: str | os.PathLike[str] | None) -> RecordVerifier | None:
    """The verifier of reads with ``verify=True`` (None without a key)."""
    if key is None:
        if state is not None:
            raise InvalidArgumentError("verify_state needs verify_key (the log's verifier key)")
        return None
    if not isinstance(key, str):
        raise InvalidArgumentError("verify_key is the verifier key text, name+hash+key")
    return RecordVerifier(Verifier.parse(key), TrustStore(state), time.monotonic)


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
        self.routes = PartitionRoutes()
        self._creds = _credentials(ca, cert, key)
        self._conns: dict[str, dict[str, Any]] = {}
        self._coordinators: dict[str, str] = {}  # group -> its coordinator's address
        self._verifier: RecordVerifier | None = None  # set by the twin (verifier_for)

    def _read_method(self, method: str, verify: bool) -> str:
        """The stub of a read: its verifying twin when ``verify`` (InvalidArgumentError if
        the client was given no ``verify_key``)."""
        if not verify:
            return method
        if self._verifier is None:
            raise InvalidArgumentError("verify=True needs a client made with verify_key=...")
        return method + VERIFIED

    def _acknowledged(self, base: int, count: int, topic: str, partition: int) -> Offset:
        """Note an acknowledged produce of ``count`` records from ``base`` (read-your-writes)
        and give its base offset."""
        self.picker.note_written(int(base) + count - 1, topic, int(partition))
        return Offset(int(base), int(partition))

    def _pick(self, route: str, topic: str = "", partition: int | None = None) -> str:
        if partition is not None and self.routes.routed(topic):
            routes, now = self.routes, time.monotonic()
            addr = (
                routes.leader(topic, partition, now)
                if route == _PRODUCE
                else routes.replica(topic, partition, now)
            )
            if addr and not self.picker.is_failed(addr):
                return addr
        return self.picker.for_produce() if route == _PRODUCE else self.picker.for_consume()

    def _partition_of(self, topic: str, partition: int | None, key: bytes | None) -> int | None:
        """The partition a call goes to, as far as the client can tell before sending it
        (the key's murmur2 partition once the topic's partition count is known)."""
        if partition is not None or not key or not self.routes.routed(topic):
            return partition
        count = self.routes.partitions(topic)
        return partition_for_key(key, count) if count else None

    def _routes_due(self, topic: str) -> bool:
        return self.routes.routed(topic) and self.routes.due(topic, time.monotonic())

    def _route_answers(self) -> tuple[list[str], dict[str, str]]:
        """Whom to ask for a topic's routes (the leader first), and node id -> address."""
        members = list(self.picker.members)
        addresses = {m.id: m.addr for m in members}
        ordered = sorted(members, key=lambda m: not m.is_leader)
        return [m.addr for m in ordered] or list(self.picker.bootstrap), addresses

    def _delay_after(
        self,
        addr: str,
        exc: grpc.RpcError,
        delays: Iterator[float],
        *,
        idempotent: bool,
        topic: str = "",
        partition: int | None = None,
    ) -> float:
        """After a failed call to ``addr``: how long to wait before retrying, or raise."""
        error = self._failed_call(addr, exc, topic, partition)
        delay = next(delays, None) if self.retry.retryable(error, idempotent=idempotent) else None
        if delay is None:
            raise error
        return delay

    def _failed_call(
        self, addr: str, exc: grpc.RpcError, topic: str = "", partition: int | None = None
    ) -> ReplogError:
        """The replog error a call to ``addr`` failed with, noted against the address and
        the partition's route (a failed member is avoided for a while)."""
        error = _to_error(exc)
        routed = partition is not None and self.routes.routed(topic)
        if routed and isinstance(error, DeadlineExceededError):
            assert partition is not None
            self.routes.failed(topic, partition, addr=addr, now=time.monotonic())
        if isinstance(error, UnavailableError):
            hint = error.leader_addr if error.leader_addr != addr else ""
            if self.routes.routed(topic):  # a partition's answer, not the controller's
                if partition is not None:
                    self.routes.failed(topic, partition, hint, addr=addr, now=time.monotonic())
                if _unreachable(error):  # only then is the node itself to avoid
                    self.picker.on_unavailable(addr, time.monotonic())
            else:
                self.picker.on_unavailable(addr, time.monotonic(), error.leader_addr)
        return error

    @staticmethod
    def _ask_another(exc: grpc.RpcError) -> bool:
        """Whether a failed GetServers is worth asking another member (else stop refreshing)."""
        return isinstance(_to_error(exc), UnavailableError | DeadlineExceededError)

    def _pick_coordinator(self, group: str) -> str:
        """Where to send a call of ``group``: its coordinator when a server named it, else
        the produce leader (which names the coordinator if it is not)."""
        addr = self._coordinators.get(group)
        if addr and not self.picker.is_failed(addr):
            return addr
        return self.picker.for_produce()

    def _group_delay_after(
        self,
        group: str,
        addr: str,
        exc: grpc.RpcError,
        delays: Iterator[float],
        *,
        idempotent: bool,
    ) -> float:
        """After a failed call of ``group`` to ``addr``: how long to wait before retrying
        (0 when the server named another coordinator), or raise. Every retry counts
        against the policy's attempts, so two nodes naming each other cannot loop."""
        error = _to_error(exc)
        if isinstance(error, UnknownTopicError) and error.topic == OFFSETS_TOPIC:
            # The server makes the offsets topic on first use; racing first calls may see it
            # half made. Nothing was applied: retry as an unavailable coordinator.
            error = UnavailableError(str(error), certainly_not_applied=True)
        redirected = False
        if isinstance(error, UnavailableError):
            hint = error.leader_addr
            if hint and hint != addr:
                redirected = self._coordinators.get(group) != hint
                self._coordinators[group] = hint
            elif not hint:  # the coordinator is moving: ask the leader again
                self._coordinators.pop(group, None)
            if _unreachable(error):
                self.picker.on_unavailable(addr, time.monotonic())
        delay = next(delays, None) if self.retry.retryable(error, idempotent=idempotent) else None
        if delay is None:
            raise error
        return 0.0 if redirected else delay

    def _server_addresses(self) -> list[str]:
        """Every server's address, as the view knows them (the bootstrap list without one)."""
        return [m.addr for m in self.picker.members] or list(self.picker.bootstrap)
