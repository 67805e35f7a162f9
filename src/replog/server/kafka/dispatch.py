"""Which Kafka APIs and versions are served, and the answer to one request.

Every request gets an answer in the protocol's own terms: an API key or version the
server does not serve is answered with UNSUPPORTED_VERSION (ApiVersions in its v0 form,
as Kafka answers it), never by dropping the connection."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode

from replog.errors import ProtocolError
from replog.server.kafka import admin, authz, configs, data
from replog.server.kafka.codec import Request, RequestHeader, encode_response
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.groups import GROUP_APIS, handle_group_request
from replog.server.kafka.responses import blank_response
from replog.server.kafka.security import SASL_APIS, KafkaSession, sasl_answer

__all__ = ["API_VERSIONS_KEY", "PRODUCE_KEY", "SERVED", "answer", "begin"]

API_VERSIONS_KEY = 18
PRODUCE_KEY = 0
Handler = Callable[[KafkaContext, type[Any], Any], Awaitable[Any]]
_HANDLERS: dict[int, tuple[int, int, Handler]] = {
    0: (3, 8, data.produce),
    1: (4, 11, data.fetch),
    2: (1, 5, data.list_offsets),
    3: (1, 8, admin.metadata),
    19: (2, 4, admin.create_topics),
    20: (1, 3, admin.delete_topics),
    22: (0, 1, admin.init_producer_id),
    32: (1, 2, configs.describe_configs),
}
SERVED: dict[int, tuple[int, int]] = {
    API_VERSIONS_KEY: (0, 3),
    **{key: (low, high) for key, (low, high, _) in _HANDLERS.items()},
    **GROUP_APIS,
    **SASL_APIS,
}
"""API key -> (lowest, highest) version, as ApiVersions advertises them."""


async def answer(
    ctx: KafkaContext, request: Request, session: KafkaSession | None = None
) -> bytes | None:
    """The response frame for ``request``; None when the protocol sends none (acks=0).

    ``session`` (the port's security is on): a connection that has not authenticated gets
    ApiVersions and the SASL APIs only (anything else closes it: ProtocolError), and requests
    are checked against the ACL (``authz.py``)."""
    header = request.header
    key, version = header.api_key, header.api_version
    low, high = SERVED.get(key, (0, -1))
    if key == API_VERSIONS_KEY:
        if low <= version <= high and request.body is not None:
            cls = load_response_schema(key, version)
            return encode_response(
                header.correlation_id, admin.api_versions(cls, SERVED, ErrorCode.none)
            )
        cls = load_response_schema(key, 0)
        body = admin.api_versions(cls, SERVED, ErrorCode.unsupported_version)
        return encode_response(header.correlation_id, body)
    if not low <= version <= high or request.body is None:
        return unsupported(header)
    cls = load_response_schema(key, version)
    if key in SASL_APIS:
        response = await sasl_answer(session, key, cls, request.body)
    elif session is not None and not session.authenticated:  # as Kafka: closed, one log line
        raise ProtocolError(f"API {key} before SASL authentication (a certificate or SASL needed)")
    elif session is not None and session.checked:
        response = await authz.guarded(
            session, header, cls, request.body, lambda body: _call(ctx, header, cls, body)
        )
    else:
        response = await _call(ctx, header, cls, request.body)
    return None if response is None else encode_response(header.correlation_id, response)


def begin(ctx: KafkaContext, request: Request) -> Coroutine[Any, Any, bytes | None] | None:
    """For a Produce this node serves: its batches submitted now, and the coroutine giving
    its response frame (None for acks=0), so a connection may read the next request while
    this one is appended. None for every other request, which ``answer`` serves."""
    header = request.header
    low, high = SERVED[PRODUCE_KEY]
    if header.api_key != PRODUCE_KEY or not low <= header.api_version <= high:
        return None
    if request.body is None:
        return None
    cls = load_response_schema(PRODUCE_KEY, header.api_version)
    return _framed(header.correlation_id, data.begin_produce(ctx, cls, request.body))


async def _framed(correlation_id: int, response: Awaitable[Any]) -> bytes | None:
    body = await response
    return None if body is None else encode_response(correlation_id, body)


async def _call(ctx: KafkaContext, header: RequestHeader, cls: type[Any], body: Any) -> Any:
    if header.api_key in GROUP_APIS:
        return await handle_group_request(ctx, header, body)
    return await _HANDLERS[header.api_key][2](ctx, cls, body)


def unsupported(header: RequestHeader) -> bytes:
    """The UNSUPPORTED_VERSION answer to a request of an API key or version not served:
    that version's response with every error code set, or (no schema known for it) the
    correlation id and the error code alone."""
    try:
        cls = load_response_schema(header.api_key, header.api_version)
    except Exception:  # kio knows no such API or version
        return struct.pack(">iih", 6, header.correlation_id, ErrorCode.unsupported_version.value)
    return encode_response(
        header.correlation_id, blank_response(cls, ErrorCode.unsupported_version)
    )
