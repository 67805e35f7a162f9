"""Re-exports ``replog.api.wire`` (protobuf bytes on the hot paths) under its old name, for the
edges and tests that import it from here."""

from replog.api.wire import (
    MAX_BATCH_RECORDS_LIMIT,
    MalformedRequest,
    check_batch_size,
    check_parsed,
    encode_batch_response,
    encode_consume_response,
    produce_batch_values,
    produce_value,
    record_value,
    request_parser,
    varint,
)

__all__ = [
    "MAX_BATCH_RECORDS_LIMIT",
    "MalformedRequest",
    "check_batch_size",
    "check_parsed",
    "encode_batch_response",
    "encode_consume_response",
    "produce_batch_values",
    "produce_value",
    "record_value",
    "request_parser",
    "varint",
]
