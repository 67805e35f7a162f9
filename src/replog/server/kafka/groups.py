"""The Kafka group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch): the one place they are handled.

Until the group coordinator is wired to this edge every one of them is answered with
COORDINATOR_NOT_AVAILABLE, the protocol's own "ask again later", so a client's group
features wait while assign()-based consumers, producers and admin clients work."""

from __future__ import annotations

from typing import Any

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from replog.server.kafka.codec import RequestHeader
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.responses import blank_response

__all__ = ["GROUP_APIS", "handle_group_request"]

GROUP_APIS: dict[int, tuple[int, int]] = {
    10: (0, 2),  # FindCoordinator
    11: (0, 5),  # JoinGroup
    14: (0, 3),  # SyncGroup
    12: (0, 3),  # Heartbeat
    13: (0, 3),  # LeaveGroup
    8: (2, 7),  # OffsetCommit
    9: (1, 5),  # OffsetFetch
}
"""API key -> the (lowest, highest) version advertised."""


async def handle_group_request(ctx: KafkaContext, header: RequestHeader, body: Any) -> Any:
    """The answer to a group API request: COORDINATOR_NOT_AVAILABLE for now."""
    del ctx, body
    cls = load_response_schema(header.api_key, header.api_version)
    return blank_response(cls, ErrorCode.coordinator_not_available)
