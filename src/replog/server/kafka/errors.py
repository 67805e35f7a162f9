"""replog's errors as Kafka error codes: the one table the Kafka edge maps through."""

from __future__ import annotations

from kio.schema.errors import ErrorCode

from replog import errors

__all__ = ["kafka_error"]

_TABLE: tuple[tuple[type[BaseException], ErrorCode], ...] = (
    (errors.UnknownTopicError, ErrorCode.unknown_topic_or_partition),
    (errors.UnknownPartitionError, ErrorCode.unknown_topic_or_partition),
    (errors.AlreadyExistsError, ErrorCode.topic_already_exists),
    (errors.OutOfOrderSequenceError, ErrorCode.out_of_order_sequence_number),
    (errors.ProducerFencedError, ErrorCode.invalid_producer_epoch),
    (errors.UnknownProducerError, ErrorCode.unknown_producer_id),
    (errors.PreconditionFailedError, ErrorCode.invalid_request),
    (errors.RecordTooLargeError, ErrorCode.message_too_large),
    (errors.BatchTooLargeError, ErrorCode.record_list_too_large),
    (errors.CorruptBatchError, ErrorCode.corrupt_message),
    (errors.ConfigError, ErrorCode.invalid_config),
    (errors.InvalidArgumentError, ErrorCode.invalid_request),
    (errors.OffsetOutOfRangeError, ErrorCode.offset_out_of_range),
    (errors.CorruptRecordError, ErrorCode.corrupt_message),
    (errors.UnsupportedError, ErrorCode.unsupported_version),
    (errors.PermissionDeniedError, ErrorCode.topic_authorization_failed),
    (errors.UnauthenticatedError, ErrorCode.sasl_authentication_failed),
    (errors.ResourceExhaustedError, ErrorCode.throttling_quota_exceeded),
    (errors.DeadlineExceededError, ErrorCode.request_timed_out),
    (errors.UnavailableError, ErrorCode.not_leader_or_follower),
    (errors.LogClosedError, ErrorCode.not_leader_or_follower),
    (errors.StorageIOError, ErrorCode.kafka_storage_error),
)


def kafka_error(exc: BaseException) -> ErrorCode:
    """The Kafka error code a client should see for ``exc`` (the first match in the
    table, most specific first; anything else is UNKNOWN_SERVER_ERROR)."""
    for kind, code in _TABLE:
        if isinstance(exc, kind):
            return code
    return ErrorCode.unknown_server_error
