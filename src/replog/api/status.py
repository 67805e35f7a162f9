"""Where replog errors become gRPC status codes and HTTP statuses (only at the edges)."""

from __future__ import annotations

import grpc

from replog.errors import (
    AlreadyExistsError,
    BatchTooLargeError,
    ConfigError,
    InvalidArgumentError,
    LogClosedError,
    NotFoundError,
    OffsetOutOfRangeError,
    PermissionDeniedError,
    PreconditionFailedError,
    RecordTooLargeError,
    ReplogError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnknownPartitionError,
    UnknownTopicError,
    UnsupportedError,
    VerificationError,
    precondition_details,
)

__all__ = ["grpc_code_for", "http_status_for", "metadata_for"]


def grpc_code_for(exc: ReplogError) -> grpc.StatusCode:
    """The gRPC status code a replog error is reported with."""
    if isinstance(exc, OffsetOutOfRangeError):
        return grpc.StatusCode.OUT_OF_RANGE
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, AlreadyExistsError):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(exc, UnsupportedError):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(exc, InvalidArgumentError | ConfigError):  # a topic's config key or value
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, UnavailableError | LogClosedError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, PermissionDeniedError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, UnauthenticatedError):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(exc, ResourceExhaustedError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, PreconditionFailedError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, VerificationError):  # the log's own bytes do not prove out
        return grpc.StatusCode.DATA_LOSS
    return grpc.StatusCode.INTERNAL


def metadata_for(exc: ReplogError) -> tuple[tuple[str, str | bytes], ...]:
    """Trailing metadata that lets a client rebuild the exact error.

    A topic name travels as binary metadata (``-bin``): an unknown one may be any text.
    """
    items: list[tuple[str, str | bytes]] = [("replog-error-code", exc.code)]
    if isinstance(exc, UnknownTopicError | AlreadyExistsError):
        items.append(("replog-topic-bin", exc.topic.encode("utf-8", "replace")))
    elif isinstance(exc, UnknownPartitionError):
        items.append(("replog-topic-bin", exc.topic.encode("utf-8", "replace")))
        items.append(("replog-partition", f"{exc.partition},{exc.partitions}"))
    elif isinstance(exc, OffsetOutOfRangeError):
        items.append(("replog-range", f"{exc.offset},{exc.lowest},{exc.next_offset}"))
    elif isinstance(exc, RecordTooLargeError):
        items.append(("replog-size", f"{exc.size},{exc.limit}"))
    elif isinstance(exc, BatchTooLargeError):
        items.append(("replog-batch", f"{exc.count or 0},{exc.limit}"))
    elif isinstance(exc, UnavailableError | LogClosedError):
        applied = isinstance(exc, UnavailableError) and exc.certainly_not_applied
        items.append(("replog-not-applied", "1" if applied else "0"))
        if isinstance(exc, UnavailableError) and exc.leader_addr:
            items.append(("replog-leader", exc.leader_addr))
    elif isinstance(exc, PreconditionFailedError):
        items.append(("replog-precondition", precondition_details(exc)))
    elif isinstance(exc, VerificationError) and exc.offset is not None:
        items.append(("replog-offset", str(exc.offset)))
    return tuple(items)


def http_status_for(exc: ReplogError) -> int:
    """The HTTP status a replog error is reported with."""
    if isinstance(exc, OffsetOutOfRangeError):
        return 404
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, AlreadyExistsError):
        return 409
    if isinstance(exc, UnsupportedError):
        return 501
    if isinstance(exc, RecordTooLargeError | BatchTooLargeError):
        return 413
    if isinstance(exc, InvalidArgumentError | ConfigError):
        return 400
    if isinstance(exc, UnavailableError | LogClosedError):
        return 503
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, UnauthenticatedError):
        return 401
    if isinstance(exc, ResourceExhaustedError):
        return 429
    if isinstance(exc, PreconditionFailedError):
        return 409
    return 500
