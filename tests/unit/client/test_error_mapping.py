"""A failed call's status and trailing metadata become the exact replog error the server
raised: what ``server.status`` sends, ``client.core.error_from_status`` rebuilds."""

from __future__ import annotations

import pytest

from replog.api.status import grpc_code_for, metadata_for
from replog.client.core import error_from_status
from replog.errors import (
    AlreadyExistsError,
    ConfigError,
    ExpectedKeyOffsetError,
    ExpectedOffsetError,
    FencedMemberError,
    InvalidArgumentError,
    NonEmptyGroupError,
    NotFoundError,
    OutOfOrderSequenceError,
    PreconditionFailedError,
    ProducerFencedError,
    ReplogError,
    UnknownMemberError,
    UnknownPartitionError,
    UnknownProducerError,
    UnknownTopicError,
    UnsupportedError,
)


def _round_trip(exc: ReplogError) -> ReplogError:
    metadata = metadata_for(exc)
    # grpcio hands binary (-bin) metadata to the client as bytes, the rest as str.
    received = [
        (k, v.encode() if isinstance(v, str) and k.endswith("-bin") else v) for k, v in metadata
    ]
    return error_from_status(grpc_code_for(exc).name, str(exc), received)


@pytest.mark.parametrize(
    "exc",
    [
        UnknownTopicError("orders"),
        UnknownTopicError("ü, with commas, and 'quotes'"),
        UnknownPartitionError("orders", 7, 3),
        UnknownPartitionError("default", 1, 1),
        AlreadyExistsError("orders"),
        ConfigError("retension_ms is not a topic config key"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_topic_error_is_rebuilt_exactly(exc: ReplogError) -> None:
    rebuilt = _round_trip(exc)
    assert type(rebuilt) is type(exc)
    assert str(rebuilt) == str(exc)
    assert vars(rebuilt) == vars(exc)


def test_the_status_codes_of_topic_errors() -> None:
    assert grpc_code_for(UnknownTopicError("t")).name == "NOT_FOUND"
    assert grpc_code_for(UnknownPartitionError("t", 1, 1)).name == "NOT_FOUND"
    assert grpc_code_for(AlreadyExistsError("t")).name == "ALREADY_EXISTS"
    assert grpc_code_for(ConfigError("bad key")).name == "INVALID_ARGUMENT"
    assert grpc_code_for(UnsupportedError("no")).name == "UNIMPLEMENTED"


def test_a_not_found_without_metadata_is_a_not_found_error_with_the_servers_words() -> None:
    error = error_from_status("NOT_FOUND", "no such thing", None)
    assert type(error) is NotFoundError and str(error) == "no such thing"
    exists = error_from_status("ALREADY_EXISTS", "it is there", ())
    assert isinstance(exists, AlreadyExistsError) and str(exists) == "it is there"


def test_an_invalid_argument_stays_one_when_it_is_not_a_config_error() -> None:
    error = _round_trip(InvalidArgumentError("a topic name must not be empty"))
    assert type(error) is InvalidArgumentError


def test_an_unsupported_call_is_an_unsupported_error() -> None:
    exc = UnsupportedError("this cluster serves only the topic 'default'")
    rebuilt = _round_trip(exc)
    assert type(rebuilt) is UnsupportedError and str(rebuilt) == str(exc)
    old_server = error_from_status("UNIMPLEMENTED", "Method not found!", ())
    assert isinstance(old_server, UnsupportedError) and "does not offer" in str(old_server)


@pytest.mark.parametrize(
    "exc",
    [
        OutOfOrderSequenceError(7, 12),
        ProducerFencedError(1, 3),
        UnknownProducerError(2**62 + 5),
        ExpectedOffsetError(10, 14),
        ExpectedKeyOffsetError(-1, 92),
        FencedMemberError("member m is at epoch 4, not 3: rejoin"),
        UnknownMemberError("group g has no member m"),
        NonEmptyGroupError("group g has members"),
        PreconditionFailedError("some other condition"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_precondition_error_is_rebuilt_exactly_with_its_numbers(exc: ReplogError) -> None:
    assert grpc_code_for(exc).name == "FAILED_PRECONDITION"
    rebuilt = _round_trip(exc)
    assert type(rebuilt) is type(exc)
    assert str(rebuilt) == str(exc)
    assert vars(rebuilt) == vars(exc)


def test_a_precondition_error_whose_numbers_do_not_parse_keeps_the_servers_words() -> None:
    error = error_from_status(
        "FAILED_PRECONDITION",
        "expected something",
        [("replog-error-code", "OUT_OF_ORDER_SEQUENCE"), ("replog-precondition", "x,1")],
    )
    assert type(error) is PreconditionFailedError and str(error) == "expected something"
