"""Which status each topic-administration error reaches a client with."""

from __future__ import annotations

import grpc
import pytest

from replog.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidArgumentError,
    ReplogError,
    UnknownPartitionError,
    UnknownTopicError,
)
from replog.server.status import grpc_code_for, http_status_for


@pytest.mark.parametrize(
    ("error", "http", "code"),
    [
        (ConfigError("unknown config key 'retention'"), 400, grpc.StatusCode.INVALID_ARGUMENT),
        (InvalidArgumentError("bad name"), 400, grpc.StatusCode.INVALID_ARGUMENT),
        (UnknownTopicError("t"), 404, grpc.StatusCode.NOT_FOUND),
        (UnknownPartitionError("t", 9, 2), 404, grpc.StatusCode.NOT_FOUND),
        (AlreadyExistsError("t"), 409, grpc.StatusCode.ALREADY_EXISTS),
    ],
)
def test_a_refused_topic_request_gets_a_client_error_not_an_internal_one(
    error: ReplogError, http: int, code: grpc.StatusCode
) -> None:
    assert http_status_for(error) == http
    assert grpc_code_for(error) == code
