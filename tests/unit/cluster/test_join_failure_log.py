"""A failed join attempt is one readable line (status and text, never the RPC error's
multi-line dump), at INFO for the first and every 25th attempt, DEBUG otherwise."""

from __future__ import annotations

import logging

import grpc
import pytest

from replog.cluster.cluster_node import _log_join_failure


class _Refused(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.FAILED_PRECONDITION

    def details(self) -> str:
        return "not the leader; the leader is unknown"

    def __str__(self) -> str:
        return "<AioRpcError ...\n\tdebug_error_string = 'internals'\n>"


def test_a_failed_join_is_one_line_at_info_then_quieter(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="replog.cluster")
    for attempt in range(26):
        _log_join_failure("127.0.0.1:7400", _Refused(), attempt)
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.getMessage() for r in infos] == [
        "join via 127.0.0.1:7400 failed: FAILED_PRECONDITION: not the leader; the leader is "
        "unknown (retrying)",
        "join via 127.0.0.1:7400 failed: FAILED_PRECONDITION: not the leader; the leader is "
        "unknown (attempt 26; retrying)",
    ]
    assert len(caplog.records) == 26
    assert all(
        "\n" not in r.getMessage() and "debug_error" not in r.getMessage() for r in caplog.records
    )
