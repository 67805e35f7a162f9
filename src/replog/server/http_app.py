"""The HTTP/JSON API (aiohttp) over the same LogBackend as the gRPC service.

Values, keys and header values are base64 in JSON; offsets are JSON numbers. Every error is
``{"error": {"code": ..., "message": ...}}``; no traceback reaches a client. With an ACL, the
auth middleware (``replog.server.auth``) answers 401/403 before any handler runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from replog.errors import (
    BatchTooLargeError,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    ReplogError,
)
from replog.jsonform import record_to_json
from replog.server.auth import http_subject
from replog.server.backend import STALL_S, AppendValue, LogBackend
from replog.server.limits import Limits
from replog.server.metrics import ServerMetrics
from replog.server.openapi import openapi_document
from replog.server.status import http_status_for
from replog.v1.record_pb2 import Header, Record

if TYPE_CHECKING:
    from replog.cluster.cluster_node import ClusterNode

__all__ = [
    "HTTP_CODES",
    "HttpState",
    "error_response",
    "make_app",
    "record_from_json",
    "record_to_json",
]

log = logging.getLogger("replog.server.http")

MAX_U64 = 2**64 - 1
MAX_RECORDS_LIMIT = 10_000
MAX_WAIT_MS_LIMIT = 60_000
KEEPALIVE_S = 15.0
READ_MAX_BYTES = 4 << 20
#: An event stream reads this much at a time: what it holds while its client is slow.
STREAM_READ_BYTES = 1 << 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpState:
    """What the handlers share: the backend, metrics and the draining flag."""

    def __init__(
        self,
        backend: LogBackend,
        metrics: ServerMetrics,
        cluster: ClusterNode | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.cluster = cluster
        self.limits = limits or Limits()
        self.draining = False


STATE_KEY = web.AppKey("replog_state", HttpState)


def make_app(
    state: HttpState,
    *,
    max_body_bytes: int,
    auth: Callable[..., Awaitable[web.StreamResponse]] | None = None,
) -> web.Application:
    """The aiohttp application with every route and the error/metrics middleware.

    ``auth`` (see ``replog.server.auth.http_auth_middleware``) runs inside the error/metrics
    middleware, so refused requests are counted, and before any handler reads the body.
    """
    middlewares: list[Any] = [_middleware] if auth is None else [_middleware, auth]
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app[STATE_KEY] = state
    app.router.add_post("/v1/records", _produce)
    app.router.add_post("/v1/records:batch", _produce_batch)
    app.router.add_get("/v1/records:stream", _stream)
    app.router.add_get("/v1/records/{offset}", _consume_one)
    app.router.add_get("/v1/records", _consume)
    app.router.add_get("/v1/servers", _servers)
    app.router.add_get("/v1/cluster", _cluster_status)
    app.router.add_post("/v1/cluster:remove", _cluster_remove)
    app.router.add_post("/v1/cluster:transfer-leader", _cluster_transfer)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)
    return app


# -- errors and middleware ---------------------------------------------------------------------


def error_response(status: int, code: str, message: str) -> web.Response:
    """A JSON error body with ``status``."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    500: "INTERNAL",
    504: "DEADLINE_EXCEEDED",
}


def _check_json_size(body: bytes, max_batch_records: int) -> None:
    """Refuse a body that would parse into more JSON values than a full batch needs.

    json.loads builds an object of 50-100 bytes per value, from 2 bytes of body (``[0,0,...``):
    16 MiB took ~660 MiB. Every value but the first of its array or object follows a comma,
    and a member is a key and a value, so this bound (C-speed counts) is never below the truth.
    """
    bound = 1 + 2 * (body.count(b",") + body.count(b"{") + body.count(b"["))
    most = 8 * max_batch_records + 1000
    if bound > most:
        raise InvalidArgumentError(
            f"the request body holds too many JSON values (at most {most}; "
            f"a batch holds at most {max_batch_records} records)"
        )


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    route = request.match_info.route.resource
    method = f"{request.method} {route.canonical if route is not None else 'unmatched'}"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except ReplogError as exc:
        status = http_status_for(exc)
        return error_response(status, exc.code, str(exc))
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "HTTP_ERROR")
        return error_response(exc.status, code, exc.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        status = 499
        raise
    except Exception:
        status = 500
        log.exception("unexpected error in %s", method)
        return error_response(500, "INTERNAL", "internal server error")
    finally:
        state.metrics.observe("http", method, str(status), time.perf_counter() - started)


# -- JSON <-> Record ---------------------------------------------------------------------------


def _b64(obj: Any, where: str) -> bytes:
    if not isinstance(obj, str):
        raise InvalidArgumentError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(obj, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(f"{where} is not valid base64") from None


def record_from_json(obj: Any, where: str = "record") -> AppendValue:
    """Parse ``{"value": b64, "key": b64, "headers": [{"key": str, "value": b64}]}``."""
    if not isinstance(obj, dict):
        raise InvalidArgumentError(f"{where} must be an object")
    if "value" not in obj:
        raise InvalidArgumentError(f"{where}.value is required")
    value = _b64(obj["value"], f"{where}.value")
    key = _b64(obj["key"], f"{where}.key") if obj.get("key") is not None else b""
    headers_obj = obj.get("headers") or []
    if not isinstance(headers_obj, list):
        raise InvalidArgumentError(f"{where}.headers must be a list")
    headers = []
    for i, h in enumerate(headers_obj):
        if not isinstance(h, dict) or not isinstance(h.get("key"), str):
            raise InvalidArgumentError(
                f"{where}.headers[{i}] must be {{key: string, value: base64}}"
            )
        _check_text(h["key"], f"{where}.headers[{i}].key")
        headers.append(
            Header(key=h["key"], value=_b64(h.get("value", ""), f"{where}.headers[{i}].value"))
        )
    if not key and not headers:
        return value
    return Record(value=value, key=key, headers=headers)


def _check_text(text: str, where: str) -> None:
    # JSON's "\ud800" escape gives a lone surrogate, which no UTF-8 (so no protobuf
    # string) can hold: refuse it here, not with a 500 when the field is set.
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"{where} holds a lone UTF-16 surrogate") from None


async def _read_body(request: web.Request) -> bytes:
    try:
        return await request.read()  # 413 from aiohttp over client_max_size
    except web.RequestPayloadError:  # a bad chunk or Content-Encoding in the body
        raise InvalidArgumentError(
            "the request body is malformed (bad chunk or encoding)"
        ) from None


async def _json_body(request: web.Request) -> Any:
    body = await _read_body(request)
    _check_json_size(body, request.app[STATE_KEY].limits.max_batch_records)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8, huge integers
        raise InvalidArgumentError("the request body is not valid JSON") from None


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit():
        raise InvalidArgumentError(f"{name} must be a non-negative integer, got {raw!r}")
    if len(raw) > 20:  # longer than any u64; int() of thousands of digits raises
        raise InvalidArgumentError(f"{name} must be between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _check_writable(state: HttpState) -> None:
    if state.draining:
        from replog.errors import UnavailableError

        raise UnavailableError("the server is shutting down", certainly_not_applied=True)


# -- handlers ----------------------------------------------------------------------------------


async def _produce(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _check_writable(state)
    body = await _json_body(request)
    if not isinstance(body, dict) or "record" not in body:
        raise InvalidArgumentError('the body must be {"record": {...}}')
    value = record_from_json(body["record"])
    offset = await state.backend.submit([value])
    return web.json_response({"offset": offset})


async def _produce_batch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _check_writable(state)
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise InvalidArgumentError('the body must be {"records": [{...}, ...]}')
    records = body["records"]
    if not records:
        raise InvalidArgumentError("records must hold at least one record")
    if len(records) > state.limits.max_batch_records:
        raise BatchTooLargeError(len(records), state.limits.max_batch_records)
    values = [record_from_json(r, f"records[{i}]") for i, r in enumerate(records)]
    base = await state.backend.submit(values)
    return web.json_response({"base_offset": base, "count": len(values)})


def _read(
    state: HttpState, offset: int, max_records: int, max_bytes: int = READ_MAX_BYTES
) -> tuple[list[Record], int]:
    """Records from ``offset`` and the offset the next read starts at (past control records)."""
    backend = state.backend
    lowest, high = backend.lowest_offset, backend.high_watermark
    if not lowest <= offset <= high:
        raise OffsetOutOfRangeError(offset, lowest, high)
    payloads, next_offset = backend.read_from(offset, max_records, max_bytes)
    state.metrics.on_read("http", len(payloads), sum(map(len, payloads)))
    return [Record.FromString(p) for p in payloads], next_offset


async def _consume_one(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    raw = request.match_info["offset"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20 or int(raw) > MAX_U64:
        raise InvalidArgumentError(f"offset must be a non-negative 64-bit integer, got {raw!r}")
    offset = int(raw)
    records, _ = _read(state, offset, 1)
    if not records or records[0].offset != offset:  # a read skips control records
        backend = state.backend
        raise OffsetOutOfRangeError(offset, backend.lowest_offset, backend.high_watermark)
    return web.json_response({"record": record_to_json(records[0])})


async def _consume(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    offset = _int_param(request, "offset", 0, 0, MAX_U64)
    max_records = _int_param(request, "max_records", 100, 1, MAX_RECORDS_LIMIT)
    wait_ms = _int_param(request, "wait_ms", 0, 0, MAX_WAIT_MS_LIMIT)
    records, next_offset = _read(state, offset, max_records)
    if not records and wait_ms and await state.backend.wait_for_data(next_offset, wait_ms / 1000):
        records, next_offset = _read(state, next_offset, max_records)
    return web.json_response(
        {
            "records": [record_to_json(r) for r in records],
            "next_offset": next_offset,
            "high_watermark": state.backend.high_watermark,
        }
    )


async def _stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    offset = _int_param(request, "offset", 0, 0, MAX_U64)
    _read(state, offset, 1)  # range check before the 200 goes out
    with state.limits.streams.hold(http_subject(request)):  # else 429 before the 200
        return await _send_events(request, state, offset)


async def _send_events(request: web.Request, state: HttpState, offset: int) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        woken = False
        while not state.draining:  # each turn writes, moves past control records, or waits
            records, next_offset = _read(state, offset, 1000, STREAM_READ_BYTES)
            if records:
                chunk = "".join(
                    f"id: {r.offset}\nevent: record\ndata: {json.dumps(record_to_json(r))}\n\n"
                    for r in records
                )
                await response.write(chunk.encode())
            elif next_offset <= offset:
                if woken:  # woken, yet nothing to read: a backend bug must not spin the loop
                    await asyncio.sleep(STALL_S)
                woken = await state.backend.wait_for_data(offset, KEEPALIVE_S)
                if not woken:
                    await response.write(b": keep-alive\n\n")
                continue
            woken = False
            offset = max(offset, next_offset)
    except (ReplogError, ConnectionResetError):
        pass  # shutting down, or the client went away: end the stream
    return response


async def _servers(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    servers = [
        {"id": s.id, "rpc_addr": s.rpc_addr, "is_leader": s.is_leader, "is_voter": s.is_voter}
        for s in state.backend.servers()
    ]
    return web.json_response({"servers": servers})


# -- cluster (admin) ---------------------------------------------------------------------------

_ADMIN_HTTP_STATUS = {
    "NOT_LEADER": 503,
    "NOT_FOUND": 404,
    "FAILED_PRECONDITION": 409,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


async def _cluster_status(request: web.Request) -> web.Response:
    """This node's view: role, term, commit index and every member (lag as the leader sees it)."""
    state = request.app[STATE_KEY]
    if state.cluster is None:  # a single node: itself, as the leader
        me, commit = state.backend.servers()[0], state.backend.high_watermark - 1
        member = {"id": me.id, "rpc_addr": me.rpc_addr, "role": "leader", "voter": True}
        member |= {"is_leader": True, "match_index": commit, "lag": 0, "last_contact_s": None}
        return web.json_response(
            {
                "node_id": me.id,
                "leader_id": me.id,
                "role": "leader",
                "term": 0,
                "commit_index": commit,
                "members": [member],
            }
        )
    answer = state.cluster.status()
    members = [
        {
            "id": m.id,
            "rpc_addr": m.rpc_addr,
            "role": m.role,
            "voter": m.voter,
            "is_leader": m.is_leader,
            "match_index": m.match_index,
            "lag": m.lag,
            "last_contact_s": None if m.last_contact_s < 0 else round(m.last_contact_s, 3),
        }
        for m in answer.members
    ]
    return web.json_response(
        {
            "node_id": answer.node_id,
            "leader_id": answer.leader_id,
            "role": answer.role,
            "term": answer.term,
            "commit_index": answer.commit_index,
            "members": members,
        }
    )


async def _admin_body(request: web.Request, *, id_required: bool) -> tuple[HttpState, str]:
    state = request.app[STATE_KEY]
    _check_writable(state)
    body = await _json_body(request) if (await _read_body(request)).strip() else {}
    if not isinstance(body, dict) or not isinstance(body.get("id", ""), str):
        raise InvalidArgumentError('the body must be {"id": "<node id>"}')
    node_id = body.get("id", "")
    _check_text(node_id, "id")
    if id_required and not node_id:
        raise InvalidArgumentError('"id" (the member to remove) is required')
    if state.cluster is None:
        raise InvalidArgumentError("this server is not a member of a replicated cluster")
    return state, node_id


async def _admin(state: HttpState, op: Awaitable[Any]) -> Any:
    from replog.cluster.cluster_node import AdminError

    try:
        return await op
    except AdminError as exc:
        headers = {"Replog-Leader": exc.leader_addr} if exc.leader_addr else None
        status = _ADMIN_HTTP_STATUS[exc.status]
        return web.json_response(
            {"error": {"code": exc.status, "message": str(exc)}}, status=status, headers=headers
        )


async def _cluster_remove(request: web.Request) -> web.Response:
    state, node_id = await _admin_body(request, id_required=True)
    assert state.cluster is not None
    result = await _admin(state, state.cluster.remove_member(node_id))
    if isinstance(result, web.Response):
        return result
    return web.json_response({"removed": node_id})


async def _cluster_transfer(request: web.Request) -> web.Response:
    state, node_id = await _admin_body(request, id_required=False)
    assert state.cluster is not None
    result = await _admin(state, state.cluster.transfer_leader(node_id))
    if isinstance(result, web.Response):
        return result
    return web.json_response({"leader_id": result})


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.draining or state.backend.closing:
        return error_response(503, "UNAVAILABLE", "the server is shutting down")
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.Response(
        body=state.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"}
    )


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
