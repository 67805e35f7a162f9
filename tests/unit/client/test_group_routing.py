"""Group calls go to the group's coordinator: a node's ``replog-leader`` hint is followed
at once and remembered, two nodes naming each other cannot loop forever, a half-made
offsets topic is retried, and a stale member's refusal is raised at once."""

from __future__ import annotations

import grpc
import pytest

from replog.client.base import _ClientBase
from replog.client.core import RetryPolicy
from replog.errors import FencedMemberError, UnavailableError


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, **metadata: str) -> None:
        self._code, self._details = code, details
        self._metadata = [(k.replace("_", "-"), v) for k, v in metadata.items()]

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> list[tuple[str, str]]:
        return self._metadata


def _not_here(coordinator: str) -> _Failed:
    return _Failed(
        grpc.StatusCode.UNAVAILABLE,
        "this node is not the group's coordinator",
        replog_not_applied="1",
        replog_leader=coordinator,
    )


def _client(attempts: int = 4) -> _ClientBase:
    return _ClientBase(
        "127.0.0.1:7001,127.0.0.1:7002",
        timeout=1.0,
        retry=RetryPolicy(max_attempts=attempts),
        ca=None,
        cert=None,
        key=None,
        refresh_s=10.0,
    )


def test_a_hint_is_followed_at_once_and_remembered_for_the_group() -> None:
    client = _client()
    delays = client.retry.delays()
    delay = client._group_delay_after(
        "billing", "127.0.0.1:7001", _not_here("127.0.0.1:7002"), delays, idempotent=False
    )
    assert delay == 0.0
    assert client._pick_coordinator("billing") == "127.0.0.1:7002"
    assert client._coordinators == {"billing": "127.0.0.1:7002"}  # other groups: the leader


def test_two_nodes_naming_each_other_use_up_the_attempts_and_raise() -> None:
    client = _client(attempts=4)
    delays = client.retry.delays()
    a, b = "127.0.0.1:7001", "127.0.0.1:7002"
    with pytest.raises(UnavailableError):
        for _ in range(10):
            client._group_delay_after("g", a, _not_here(b), delays, idempotent=True)
            client._group_delay_after("g", b, _not_here(a), delays, idempotent=True)
    assert next(delays, None) is None


def test_an_offsets_topic_still_being_made_is_retried_after_a_delay() -> None:
    client = _client()
    half_made = _Failed(
        grpc.StatusCode.NOT_FOUND,
        "topic '__consumer_offsets' does not exist",
        replog_topic_bin="__consumer_offsets",
        replog_error_code="UNKNOWN_TOPIC",
    )
    delay = client._group_delay_after(
        "g", "127.0.0.1:7001", half_made, client.retry.delays(), idempotent=False
    )
    assert delay > 0


def test_a_fenced_member_is_raised_at_once() -> None:
    client = _client()
    fenced = _Failed(
        grpc.StatusCode.FAILED_PRECONDITION,
        "member epoch 3 is stale",
        replog_error_code="FENCED_MEMBER_EPOCH",
    )
    with pytest.raises(FencedMemberError):
        client._group_delay_after(
            "g", "127.0.0.1:7001", fenced, client.retry.delays(), idempotent=True
        )
