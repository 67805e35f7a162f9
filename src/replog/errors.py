"""One exception hierarchy for everything replog raises.

Library code raises these; servers map them to a gRPC status or an HTTP code at the edge,
and the CLI to a one-line message and a non-zero exit.

    ReplogError
    ├── ConfigError                 a LogConfig or server setting is invalid (also ValueError)
    ├── InvalidArgumentError        a call's argument is invalid (also ValueError)
    │   ├── RecordTooLargeError     an encoded record is over max_record_bytes
    │   ├── BatchTooLargeError      a produce request holds more than max_batch_records
    │   └── ProtocolError           bytes from a client do not follow the wire protocol
    │       └── CorruptBatchError   a client's record batch fails its CRC or does not decode
    ├── OffsetOutOfRangeError       outside [lowest_offset, next_offset) (also LookupError)
    ├── NotFoundError               no such topic or partition (also LookupError)
    │   ├── UnknownTopicError       the topic does not exist
    │   └── UnknownPartitionError   the topic has no such partition
    ├── AlreadyExistsError          a topic of that name exists already
    ├── UnsupportedError            this server cannot do that (yet) (gRPC UNIMPLEMENTED, HTTP 501)
    ├── CorruptRecordError          stored bytes fail their checksum or do not match the index
    ├── VerificationError           a proof, tile, checkpoint or signature does not verify
    ├── LogLockedError              another Log (in any process) has the directory open
    ├── LogClosedError              the Log was closed
    ├── StorageIOError              a write or fsync failed; the log takes no more appends
    ├── StateLostError              stored state cannot be rebuilt (the node stops instead)
    ├── UnavailableError            the server is unreachable or shutting down (retry later)
    ├── DeadlineExceededError       a call did not complete within its timeout (also TimeoutError)
    ├── ServerError                 the server failed in an unexpected way (HTTP 500 / INTERNAL)
    ├── PermissionDeniedError       the ACL does not grant the caller's identity this action (403)
    ├── ResourceExhaustedError      the caller holds all it may (e.g. open streams) (HTTP 429)
    ├── UnauthenticatedError        the server needs a verified client certificate (HTTP 401)
    └── PreconditionFailedError     a produce's condition did not hold; nothing was appended
        ├── OutOfOrderSequenceError   an idempotent producer's batch does not follow its last
        ├── ProducerFencedError       a newer epoch of the producer id exists
        ├── UnknownProducerError      the partition holds no state of that producer id
        ├── ExpectedOffsetError       the partition's next offset is not the expected one
        ├── ExpectedKeyOffsetError    the key's latest record is not at the expected offset
        ├── FencedMemberError         a group member's epoch is stale: it must rejoin
        ├── UnknownMemberError        the group has no such member (it left or expired)
        └── NonEmptyGroupError        the group has members (delete, or a commit from outside)
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "BatchTooLargeError",
    "ConfigError",
    "CorruptBatchError",
    "CorruptRecordError",
    "InvalidArgumentError",
    "LogClosedError",
    "LogLockedError",
    "NotFoundError",
    "OffsetOutOfRangeError",
    "ProtocolError",
    "RecordTooLargeError",
    "ReplogError",
    "ResourceExhaustedError",
    "StateLostError",
    "StorageIOError",
    "UnavailableError",
    "UnsupportedError",
    "VerificationError",
    "UnknownPartitionError",
    "UnknownTopicError",
    "DeadlineExceededError",
    "ServerError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "PreconditionFailedError",
    "OutOfOrderSequenceError",
    "ProducerFencedError",
    "UnknownProducerError",
    "ExpectedOffsetError",
    "ExpectedKeyOffsetError",
    "FencedMemberError",
    "UnknownMemberError",
    "NonEmptyGroupError",
    "precondition_details",
    "precondition_error",
]


class ReplogError(Exception):
    """Base class of every error replog raises on purpose."""

    #: A stable, machine-readable name used in HTTP error bodies and CLI output.
    code: str = "INTERNAL"


class ConfigError(ReplogError, ValueError):
    """A configuration value is invalid; nothing was created or changed."""

    code = "INVALID_CONFIG"


class InvalidArgumentError(ReplogError, ValueError):
    """An argument is of the wrong type or out of its allowed range; nothing was changed."""

    code = "INVALID_ARGUMENT"


class RecordTooLargeError(InvalidArgumentError):
    """An encoded record is larger than the log's ``max_record_bytes``."""

    code = "RECORD_TOO_LARGE"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"record of {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class BatchTooLargeError(InvalidArgumentError):
    """A produce request holds more records than the server takes in one request
    (``max_batch_records``); nothing was written: split the batch."""

    code = "BATCH_TOO_LARGE"

    def __init__(self, count: int | None, limit: int) -> None:
        """``count`` is the request's record count, None where counting stopped at the limit."""
        size = f" (this one holds {count})" if count is not None else ""
        super().__init__(
            f"a produce request holds at most {limit} records{size}; send smaller batches"
        )
        self.count = count
        self.limit = limit


class ProtocolError(InvalidArgumentError):
    """Bytes a client sent do not follow the wire protocol (a frame's length, a request
    header or body that does not parse); the connection they came on is closed."""

    code = "PROTOCOL_ERROR"


class CorruptBatchError(ProtocolError):
    """A record batch a client sent fails its CRC, does not decode, or does not
    decompress; nothing of it was appended."""

    code = "CORRUPT_BATCH"


class OffsetOutOfRangeError(ReplogError, LookupError):
    """An offset is outside the log's readable range ``[lowest, next_offset)``."""

    code = "OFFSET_OUT_OF_RANGE"

    def __init__(self, offset: int, lowest: int, next_offset: int) -> None:
        if next_offset <= lowest:
            where = f"the log is empty (next offset {next_offset})"
        else:
            where = f"valid offsets are {lowest}..{next_offset - 1}"
        super().__init__(f"offset {offset} is out of range: {where}")
        self.offset = offset
        self.lowest = lowest
        self.next_offset = next_offset


class NotFoundError(ReplogError, LookupError):
    """The named topic or partition does not exist; nothing was changed."""

    code = "NOT_FOUND"


class UnknownTopicError(NotFoundError):
    """No topic has this name."""

    code = "UNKNOWN_TOPIC"

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist")
        self.topic = topic


class UnknownPartitionError(NotFoundError):
    """The topic exists but has no partition of this number."""

    code = "UNKNOWN_PARTITION"

    def __init__(self, topic: str, partition: int, partitions: int) -> None:
        super().__init__(
            f"topic {topic!r} has partitions 0..{partitions - 1}; there is no partition {partition}"
        )
        self.topic = topic
        self.partition = partition
        self.partitions = partitions


class AlreadyExistsError(ReplogError):
    """A topic of this name exists already; nothing was changed."""

    code = "TOPIC_EXISTS"

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} already exists")
        self.topic = topic


class UnsupportedError(ReplogError):
    """This server does not offer the operation (e.g. topics other than ``default`` on a
    cluster of this version); nothing was changed."""

    code = "UNSUPPORTED"


class CorruptRecordError(ReplogError):
    """The bytes stored for a record fail their CRC or do not match the index."""

    code = "CORRUPT_RECORD"

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"record at offset {offset} is corrupt: {reason}")
        self.offset = offset
        self.reason = reason


class VerificationError(ReplogError):
    """Something that should prove the log's contents does not: an inclusion or consistency
    proof, a tile, a checkpoint or its signature is malformed, wrongly signed or does not match.

    ``offset`` is the first record it concerns when there is one (else None). Never retried:
    the same bytes fail again; a log that fails verification is not to be trusted.
    """

    code = "VERIFICATION_FAILED"

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class LogLockedError(ReplogError):
    """Another Log, in this process or another, has the directory open."""

    code = "LOG_LOCKED"


class LogClosedError(ReplogError):
    """The Log was closed; open it again to use it."""

    code = "LOG_CLOSED"


class StorageIOError(ReplogError):
    """The disk failed a write or an fsync.

    The append that saw it was not acknowledged, and every later append fails too: after a
    failed fsync the kernel may have dropped dirty pages, so the only safe recovery is to
    close the log and open it again, which re-reads what really is on disk.
    """

    code = "STORAGE_IO_ERROR"


class StateLostError(ReplogError):
    """A node's stored state cannot be rebuilt from what its data directory holds: the
    controller log was compacted and no valid controller snapshot covers what it deleted.
    The node stops rather than serve with a wrong cluster state."""

    code = "STATE_LOST"


class UnavailableError(ReplogError):
    """The server cannot be reached, or it is shutting down and refused the call.

    Safe to retry for reads. A produce is only safe to retry when ``certainly_not_applied``
    is True: the connection was never made, or the server refused the call before appending.
    ``leader_addr`` is the leader's address when the server knows it (a not-leader answer).
    """

    code = "UNAVAILABLE"

    def __init__(
        self, message: str, *, certainly_not_applied: bool = False, leader_addr: str = ""
    ) -> None:
        super().__init__(message)
        self.certainly_not_applied = certainly_not_applied
        self.leader_addr = leader_addr


class DeadlineExceededError(ReplogError, TimeoutError):
    """A call did not complete within its timeout; a produce may or may not have happened."""

    code = "DEADLINE_EXCEEDED"


class ServerError(ReplogError):
    """The server failed in an unexpected way; details are in the server's log."""

    code = "INTERNAL"


class PermissionDeniedError(ReplogError):
    """The server's ACL does not let the caller's certificate identity do this; nothing changed.

    Never retried: the same identity is refused again until the policy changes.
    """

    code = "PERMISSION_DENIED"


class ResourceExhaustedError(ReplogError):
    """The caller already holds as much of the server as it may (e.g. open streams per
    identity); nothing changed. Retry once it released some."""

    code = "RESOURCE_EXHAUSTED"


class UnauthenticatedError(ReplogError):
    """The server checks an ACL and the call carried no verified client identity."""

    code = "UNAUTHENTICATED"


class PreconditionFailedError(ReplogError):
    """A produce carried a condition (a producer sequence, an expected offset) that did not
    hold on the partition's leader; nothing of the batch was appended (gRPC
    FAILED_PRECONDITION, HTTP 409)."""

    code = "FAILED_PRECONDITION"


class OutOfOrderSequenceError(PreconditionFailedError):
    """An idempotent producer's batch does not follow the last one the partition appended
    for it: ``expected`` is the sequence the partition waits for, ``got`` the batch's. The
    producer resends its batches in order from ``expected``."""

    code = "OUT_OF_ORDER_SEQUENCE"

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"out-of-order sequence: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


class ProducerFencedError(PreconditionFailedError):
    """The producer id was taken over by a newer epoch (``current``); this producer may not
    append any more."""

    code = "PRODUCER_FENCED"

    def __init__(self, epoch: int, current: int) -> None:
        super().__init__(f"producer epoch {epoch} is fenced by epoch {current}")
        self.epoch = epoch
        self.current = current


class UnknownProducerError(PreconditionFailedError):
    """The partition holds no state of this producer id (it expired after
    ``producer_id_expiration_ms`` of silence) and the batch does not start its sequence at
    0; the producer gets a new id."""

    code = "UNKNOWN_PRODUCER_ID"

    def __init__(self, producer_id: int) -> None:
        super().__init__(f"the partition holds no state of producer {producer_id}")
        self.producer_id = producer_id


class ExpectedOffsetError(PreconditionFailedError):
    """``expected_offset`` was not the partition's next offset (``actual``)."""

    code = "EXPECTED_OFFSET_MISMATCH"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected the next offset to be {expected}, it is {actual}")
        self.expected = expected
        self.actual = actual


class ExpectedKeyOffsetError(PreconditionFailedError):
    """``expected_key_offset`` was not the offset of the key's latest record in the
    partition (``actual``; -1: the key has no record)."""

    code = "EXPECTED_KEY_OFFSET_MISMATCH"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected the key's latest record at {expected}, it is at {actual}")
        self.expected = expected
        self.actual = actual


class FencedMemberError(PreconditionFailedError):
    """A consumer group member's epoch is not its current one (a zombie, or a member that
    fell behind): it must rejoin with epoch 0; its commits are refused."""

    code = "FENCED_MEMBER_EPOCH"


class UnknownMemberError(PreconditionFailedError):
    """The consumer group has no member of that id (it left, or its session expired)."""

    code = "UNKNOWN_MEMBER_ID"


class NonEmptyGroupError(PreconditionFailedError):
    """The consumer group has members: it cannot be deleted, nor its offsets set from
    outside the group protocol, until they leave."""

    code = "NON_EMPTY_GROUP"


_BY_CODE: dict[str, type[PreconditionFailedError]] = {
    FencedMemberError.code: FencedMemberError,
    UnknownMemberError.code: UnknownMemberError,
    NonEmptyGroupError.code: NonEmptyGroupError,
}


def precondition_details(exc: PreconditionFailedError) -> str:
    """The numbers a precondition error carries, as text for a wire (see
    ``precondition_error``)."""
    if isinstance(exc, OutOfOrderSequenceError):
        return f"{exc.expected},{exc.got}"
    if isinstance(exc, ProducerFencedError):
        return f"{exc.epoch},{exc.current}"
    if isinstance(exc, UnknownProducerError):
        return str(exc.producer_id)
    if isinstance(exc, ExpectedOffsetError | ExpectedKeyOffsetError):
        return f"{exc.expected},{exc.actual}"
    return ""


def precondition_error(code: str, message: str, details: str) -> PreconditionFailedError:
    """The precondition error a server reported as ``code`` (an error class's ``code``),
    ``message`` and ``details`` (``precondition_details``); a plain PreconditionFailedError
    when they do not parse."""
    try:
        numbers = [int(n) for n in details.split(",")] if details else []
    except ValueError:
        numbers = []
    built: PreconditionFailedError | None = None
    if len(numbers) == 2:
        kinds: dict[str, type[_TwoNumbers]] = {
            OutOfOrderSequenceError.code: OutOfOrderSequenceError,
            ProducerFencedError.code: ProducerFencedError,
            ExpectedOffsetError.code: ExpectedOffsetError,
            ExpectedKeyOffsetError.code: ExpectedKeyOffsetError,
        }
        kind = kinds.get(code)
        built = kind(numbers[0], numbers[1]) if kind is not None else None
    elif len(numbers) == 1 and code == UnknownProducerError.code:
        built = UnknownProducerError(numbers[0])
    if built is None:
        built = _BY_CODE.get(code, PreconditionFailedError)(message)
    return built


_TwoNumbers = (
    OutOfOrderSequenceError | ProducerFencedError | ExpectedOffsetError | ExpectedKeyOffsetError
)
