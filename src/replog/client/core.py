"""The I/O-free core shared by the sync and async clients.

Request encoding, gRPC-status -> replog-error mapping and the retry policy live here, so
``Client`` and ``AsyncClient`` only differ in how they wait.

Retries: calls that only read (consume, servers, streams resuming at their next offset) are
retried on UNAVAILABLE. A produce is retried only when it certainly was not applied: the
connection was never made, or the server refused the call before appending (it says so in
its trailing metadata). Otherwise (a connection dropped mid-call, a timeout) the error is
raised: the records may or may not have been appended, and resending would be
at-least-once delivery, which is the caller's decision.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from replog.errors import (
    AlreadyExistsError,
    BatchTooLargeError,
    ConfigError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    OffsetOutOfRangeError,
    PermissionDeniedError,
    RecordTooLargeError,
    ReplogError,
    ResourceExhaustedError,
    ServerError,
    UnauthenticatedError,
    UnavailableError,
    UnknownPartitionError,
    UnknownTopicError,
    UnsupportedError,
    precondition_error,
)
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Header, Record

__all__ = [
    "DEFAULT_SERVER",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOPIC",
    "Batch",
    "Offset",
    "batch_from",
    "HeadersInput",
    "RetryPolicy",
    "ValueInput",
    "encode_batch_request",
    "encode_record",
    "error_from_status",
    "field_header",
    "normalize_target",
    "producer_fields",
]

DEFAULT_SERVER = "127.0.0.1:7400"
#: The ``timeout`` a call is given when its caller gives none: the client's own.
DEFAULT_TIMEOUT: Final[Any] = object()
#: The topic a call that names none addresses (the server's ``default``).
DEFAULT_TOPIC = "default"
METHOD_PREFIX = "/replog.v1.Log/"

HeadersInput = Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None
#: A produce value: bytes, or a Record whose value, key and headers are sent.
ValueInput = bytes | Record

_CONNECT_FAILURES = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "name resolution",
    "no route to host",
)


class Batch(NamedTuple):
    """The answer of ``consume_batch``: records, the server's high watermark, and the
    server's offset for the next read (0 from servers that do not send one)."""

    records: list[Record]
    high_watermark: int
    resume_offset: int = 0

    @property
    def next_offset(self) -> int | None:
        """Where the next read starts: past the last record and past the control records
        the server skipped (a cluster's offsets have gaps), so it moves on even when the
        batch is empty. None when the batch is empty and the server did not say."""
        after_last = self.records[-1].offset + 1 if self.records else 0
        return max(self.resume_offset, after_last) or None


class Offset(int):
    """The offset a produce was acknowledged at: an ``int``, which also says the
    ``partition`` the record went to (the partitioner's choice when the call named none)."""

    partition: int

    def __new__(cls, offset: int, partition: int = 0) -> Offset:
        """The offset ``offset`` of partition ``partition``."""
        made = super().__new__(cls, offset)
        made.partition = partition
        return made


def batch_from(response: log_pb2.ConsumeBatchResponse) -> Batch:
    """The Batch a ConsumeBatchResponse holds."""
    records = list(response.records)
    return Batch(records, int(response.high_watermark), int(response.next_offset))


def normalize_target(server: str) -> str:
    """Check a ``HOST:PORT`` address; InvalidArgumentError if it is not one."""
    host, sep, port = server.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgumentError(f"server address must be HOST:PORT, got {server!r}")
    return server


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_FIELD1_SMALL = [bytes((0x0A, n)) for n in range(128)]


def field_header(size: int) -> bytes:
    """The tag and length that put ``size`` bytes in field 1 (``record``/``records``)."""
    return _FIELD1_SMALL[size] if size < 128 else b"\x0a" + _varint(size)


def _field(tag: int, data: bytes) -> bytes:
    n = len(data)
    if n < 128:
        return bytes((tag, n)) + data
    return bytes((tag,)) + _varint(n) + data


def encode_record(
    value: ValueInput, key: bytes | None = None, headers: HeadersInput = None
) -> bytes:
    """The serialized Record for a produce (offset and timestamp are left to the server)."""
    if isinstance(value, Record):
        if key is not None or headers is not None:
            raise InvalidArgumentError("pass key and headers inside the Record")
        data: bytes = value.SerializeToString()
        return data
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise InvalidArgumentError(f"a value must be bytes, got {type(value).__name__}")
    if headers is None and (key is None or type(key) is bytes):
        # Hand-encoded as protobuf would: value (field 1) then key (field 6), empty ones left out.
        data = _field(0x0A, value) if value else b""
        return data + _field(0x32, key) if key else data
    record = Record(value=value)
    if key is not None:
        if not isinstance(key, bytes):
            raise InvalidArgumentError(f"a key must be bytes, got {type(key).__name__}")
        record.key = key
    if headers is not None:
        items = headers.items() if isinstance(headers, Mapping) else headers
        try:
            record.headers.extend(Header(key=k, value=v) for k, v in items)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"headers must be (str, bytes) pairs: {exc}") from None
    data = record.SerializeToString()
    return data


def routing_fields(topic: str = "", partition: int | None = None) -> bytes:
    """The topic (field 2) and partition (field 3) of a produce request, serialized; empty
    for the default topic with the partition left to the server."""
    if not isinstance(topic, str):
        raise InvalidArgumentError(f"a topic must be a str, got {type(topic).__name__}")
    out = _field(0x12, topic.encode()) if topic else b""
    if partition is not None:
        check_partition(partition)
        out += b"\x18" + _varint(partition)
    return out


def producer_fields(producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
    """The idempotence fields (4, 5, 6) of a ProduceBatchRequest, serialized."""
    out = b"\x20" + _varint(producer_id) if producer_id else b""
    out += b"\x28" + _varint(producer_epoch) if producer_epoch else b""
    return out + (b"\x30" + _varint(base_sequence) if base_sequence else b"")


#: ``acks`` as a Producer takes it -> the ProduceBatchRequest's serialized field 9.
ACKS_FIELDS: Final[dict[str, bytes]] = {"all": b"", "leader": b"\x48\x01"}


def check_partition(partition: object) -> int:
    """The partition number, checked to be an unsigned 32-bit integer."""
    if not isinstance(partition, int) or isinstance(partition, bool) or not 0 <= partition < 2**32:
        raise InvalidArgumentError(
            f"a partition must be an unsigned 32-bit integer, got {partition!r}"
        )
    return partition


def encode_produce_request(record: bytes, topic: str = "", partition: int | None = None) -> bytes:
    """A serialized ProduceRequest around a serialized Record, to ``topic`` ("" = default)
    and ``partition`` (None = the server's partitioner chooses)."""
    return _field(0x0A, record) + routing_fields(topic, partition)


def encode_batch_request(
    records: Iterable[bytes], topic: str = "", partition: int | None = None
) -> bytes:
    """A serialized ProduceBatchRequest from serialized Records (see ``encode_produce_request``
    for ``topic`` and ``partition``)."""
    parts: list[bytes] = []
    for record in records:
        parts += (field_header(len(record)), record)
    parts.append(routing_fields(topic, partition))
    return b"".join(parts)


def condition_fields(
    expected_offset: int | None, expected_key_offset: int | None, *, batch: bool
) -> bytes:
    """The serialized conditional-append fields of a ProduceBatchRequest (``batch``) or a
    ProduceRequest, appended to a request's bytes (b"" when there are none)."""
    if expected_offset is None and expected_key_offset is None:
        return b""
    for name, value, low in (
        ("expected_offset", expected_offset, 0),
        ("expected_key_offset", expected_key_offset, -1),
    ):
        bad = not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**63
        if value is not None and bad:
            raise InvalidArgumentError(f"{name} must be an offset (>= {low}), got {value!r}")
    kind = log_pb2.ProduceBatchRequest if batch else log_pb2.ProduceRequest
    message = kind()
    if expected_offset is not None:
        message.expected_offset = int(expected_offset)
    if expected_key_offset is not None:
        message.expected_key_offset = int(expected_key_offset)
    return message.SerializeToString()


def encode_values(values: Iterable[ValueInput]) -> list[bytes]:
    """Serialized Records for a produce_batch call."""
    out = [encode_record(v) for v in values]
    if not out:
        raise InvalidArgumentError("produce_batch needs at least one value")
    return out


def consume_batch_request(  # noqa: PLR0917  (the request's fields)
    offset: int,
    max_records: int,
    max_bytes: int,
    max_wait_ms: int,
    min_offset: int = 0,
    topic: str = "",
    partition: int = 0,
) -> log_pb2.ConsumeBatchRequest:
    """A checked ConsumeBatchRequest of ``topic`` ("" = default) and ``partition``."""
    _check_topic(topic)
    check_partition(partition)
    _check_u64("offset", offset)
    _check_u64("min_offset", min_offset)
    for name, value in (
        ("max_records", max_records),
        ("max_bytes", max_bytes),
        ("max_wait_ms", max_wait_ms),
    ):
        if not isinstance(value, int) or not 0 <= value < 2**32:
            raise InvalidArgumentError(f"{name} must be a 32-bit unsigned integer")
    return log_pb2.ConsumeBatchRequest(
        offset=offset,
        max_records=max_records,
        max_bytes=max_bytes,
        max_wait_ms=max_wait_ms,
        min_offset=min_offset,
        topic=topic,
        partition=partition,
    )


def consume_request(
    offset: int, min_offset: int = 0, topic: str = "", partition: int = 0
) -> log_pb2.ConsumeRequest:
    """A checked ConsumeRequest (``min_offset``: read-your-writes, 0 = no wait)."""
    _check_topic(topic)
    check_partition(partition)
    _check_u64("offset", offset)
    _check_u64("min_offset", min_offset)
    return log_pb2.ConsumeRequest(
        offset=offset, min_offset=min_offset, topic=topic, partition=partition
    )


def _check_topic(topic: object) -> None:
    if not isinstance(topic, str):
        raise InvalidArgumentError(f"a topic must be a str, got {type(topic).__name__}")


def _check_u64(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise InvalidArgumentError(f"{name} must be an unsigned 64-bit integer, got {value!r}")


def check_offset(offset: object) -> int:
    """The offset, checked to be an unsigned 64-bit integer."""
    _check_u64("offset", offset)
    assert isinstance(offset, int)
    return offset


def error_from_status(
    code: str, details: str, metadata: Sequence[tuple[str, str | bytes]] | None
) -> ReplogError:
    """The replog error for a failed call, from its status code name, details and metadata."""
    meta = {k: v.decode() if isinstance(v, bytes) else v for k, v in (metadata or ())}
    details = details or code
    if code == "OUT_OF_RANGE":
        parts = meta.get("replog-range", "").split(",")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            return OffsetOutOfRangeError(*(int(p) for p in parts))
        err = OffsetOutOfRangeError(0, 0, 0)
        err.args = (details,)
        return err
    if code == "NOT_FOUND":
        return _not_found(details, meta)
    if code == "ALREADY_EXISTS":
        if "replog-topic-bin" in meta:
            return AlreadyExistsError(meta["replog-topic-bin"])
        exists = AlreadyExistsError("")
        exists.args = (details,)
        return exists
    if code == "INVALID_ARGUMENT":
        if meta.get("replog-error-code") == ConfigError.code:
            return ConfigError(details)
        parts = meta.get("replog-size", "").split(",")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return RecordTooLargeError(int(parts[0]), int(parts[1]))
        parts = meta.get("replog-batch", "").split(",")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return BatchTooLargeError(int(parts[0]) or None, int(parts[1]))
        return InvalidArgumentError(details)
    if code == "UNAVAILABLE":
        if "replog-not-applied" in meta:
            return UnavailableError(
                details,
                certainly_not_applied=meta["replog-not-applied"] == "1",
                leader_addr=meta.get("replog-leader", ""),
            )
        lowered = details.lower()
        never_connected = any(s in lowered for s in _CONNECT_FAILURES)
        return UnavailableError(
            f"server unavailable: {details}{_tls_hint(lowered)}",
            certainly_not_applied=never_connected,
        )
    if code == "DEADLINE_EXCEEDED":
        return DeadlineExceededError(f"the call timed out: {details}")
    if code == "PERMISSION_DENIED":
        return PermissionDeniedError(f"permission denied: {details}")
    if code == "UNAUTHENTICATED":
        return UnauthenticatedError(f"unauthenticated: {details}")
    if code == "RESOURCE_EXHAUSTED":
        return ResourceExhaustedError(details)
    if code == "FAILED_PRECONDITION":
        return precondition_error(
            meta.get("replog-error-code", ""), details, meta.get("replog-precondition", "")
        )
    if code == "UNIMPLEMENTED":  # e.g. topics on a cluster, or a server without the method
        if "replog-error-code" not in meta:
            details = f"the server does not offer this call ({details})"
        return UnsupportedError(details)
    return ServerError(f"{code}: {details}")


def _not_found(details: str, meta: Mapping[str, str]) -> ReplogError:
    """UnknownTopicError or UnknownPartitionError as the server raised it (NotFoundError
    from a server that did not say which)."""
    topic = meta.get("replog-topic-bin")
    if topic is not None:
        parts = meta.get("replog-partition", "").split(",")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return UnknownPartitionError(topic, int(parts[0]), int(parts[1]))
        if meta.get("replog-error-code") == UnknownTopicError.code:
            return UnknownTopicError(topic)
    return NotFoundError(details)


def _tls_hint(details: str) -> str:
    """A pointer to the TLS settings when a connection failed the way a TLS mismatch does."""
    if "handshake" in details or "ssl" in details:
        return " (the TLS handshake failed: check the CA, certificate and key)"
    if "failed to connect" in details and "socket closed" in details:
        return (
            " (the server closed the connection: if it requires TLS or a client certificate, "
            "check the CA, certificate and key)"
        )
    return ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter for retryable failures.

    ``max_attempts`` counts the first try; 1 disables retries.
    """

    max_attempts: int = 6
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The sleep before each retry (``max_attempts - 1`` of them)."""
        rng = rng or random.Random()
        ceiling = self.initial_backoff_s
        for _ in range(self.max_attempts - 1):
            yield rng.uniform(ceiling / 2, ceiling)
            ceiling = min(ceiling * self.multiplier, self.max_backoff_s)

    @staticmethod
    def retryable(error: ReplogError, *, idempotent: bool) -> bool:
        """Whether a failed call may be sent again."""
        if not isinstance(error, UnavailableError):
            return False
        return idempotent or error.certainly_not_applied


NO_RETRY = RetryPolicy(max_attempts=1)
