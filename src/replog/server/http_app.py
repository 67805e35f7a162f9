"""The HTTP/JSON API (aiohttp) over the same backends as the gRPC service.

Values, keys and header values are base64 in JSON; offsets are JSON numbers. Every error is
``{"error": {"code": ..., "message": ...}}``; no traceback reaches a client. With an ACL, the
auth middleware (``replog.server.auth``) answers 401/403 before any handler runs. The record
routes are in ``http_records``, the topic routes in ``http_topics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from replog.api.backend import LogBackend, new_producer_id
from replog.api.status import http_status_for
from replog.errors import InvalidArgumentError, ReplogError, UnavailableError
from replog.jsonform import record_to_json
from replog.security.acl import CLUSTER, Action
from replog.server.auth import request_access
from replog.server.http_cluster_view import leader_view
from replog.server.http_common import (
    HTTP_CODES,
    STATE_KEY,
    HttpState,
    check_text,
    check_writable,
    cross_site_refusal,
    error_details,
    error_response,
    json_body,
    leader_header,
    node_http_addresses,
    read_body,
    record_from_json,
)
from replog.server.http_groups import add_group_routes
from replog.server.http_records import add_record_routes
from replog.server.http_tlog import add_tlog_routes
from replog.server.http_topics import add_topic_routes
from replog.server.http_ui import add_ui_routes
from replog.server.openapi import openapi_document
from replog.server.topics import DEFAULT_TOPIC

__all__ = [
    "HTTP_CODES",
    "HttpState",
    "error_response",
    "make_app",
    "record_from_json",
    "record_to_json",
]

log = logging.getLogger("replog.server.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    add_record_routes(app.router, "/v1/records", _default_partition)
    add_topic_routes(app.router)
    add_group_routes(app.router)
    add_tlog_routes(app.router)
    add_ui_routes(app.router)
    app.router.add_get("/v1/servers", _servers)
    app.router.add_post("/v1/producers", _init_producer_id)
    app.router.add_get("/v1/cluster", _cluster_status)
    app.router.add_post("/v1/cluster:remove", _cluster_remove)
    app.router.add_post("/v1/cluster:transfer-leader", _cluster_transfer)
    app.router.add_post("/v1/cluster:decommission", _cluster_decommission)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)
    return app


def _default_partition(request: web.Request) -> tuple[LogBackend, int | None]:
    """The old /v1/records routes: the default topic's partition 0, answering as before
    topics. Looked up on every request: the topic may have been deleted (404) and created
    again (a new backend), and the one the server started with is then closed."""
    state = request.app[STATE_KEY]
    if state.topics is None:
        return state.backend, None
    return state.topics.partition(DEFAULT_TOPIC, 0), None


# -- errors and middleware ---------------------------------------------------------------------


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    route = request.match_info.route.resource
    method = f"{request.method} {route.canonical if route is not None else 'unmatched'}"
    started = time.perf_counter()
    status = 500
    try:
        refused = cross_site_refusal(request)
        if refused is not None:
            status = 403
            return error_response(403, "PERMISSION_DENIED", refused)
        response = await handler(request)
        status = response.status
        return response
    except ReplogError as exc:
        status = http_status_for(exc)
        lead = exc.leader_addr if isinstance(exc, UnavailableError) else ""
        headers = leader_header(state, lead)
        return error_response(status, exc.code, str(exc), error_details(exc), headers)
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


# -- servers and cluster (admin) -------------------------------------------------------------


async def _init_producer_id(request: web.Request) -> web.Response:
    """An idempotent producer's id (as gRPC InitProducerId)."""
    return web.json_response({"producer_id": new_producer_id(), "producer_epoch": 0})


async def _servers(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    http = node_http_addresses(state)
    servers = [
        {"id": s.id, "rpc_addr": s.rpc_addr, "is_leader": s.is_leader, "is_voter": s.is_voter}
        | _http_addr(http, s.id)
        for s in state.backend.servers()
    ]
    return web.json_response({"servers": servers})


def _http_addr(known: dict[str, str], node_id: str) -> dict[str, str]:
    """``{"http_addr": ...}`` when node ``node_id``'s HTTP address is known, else {}."""
    return {"http_addr": known[node_id]} if node_id in known else {}


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
    http = node_http_addresses(state)
    if state.cluster is None:  # a single node: itself, as the leader
        me, commit = state.backend.servers()[0], state.backend.high_watermark - 1
        member = {"id": me.id, "rpc_addr": me.rpc_addr, "role": "leader", "voter": True}
        member |= _http_addr(http, me.id)
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
    view = request.query.get("view", "")
    if view not in ("", "leader"):
        raise InvalidArgumentError(f"view must be leader (or absent), got {view!r}")
    asked = state.cluster.status() if view == "leader" else None
    if asked is not None:
        answer, _ = await leader_view(state.cluster)
    else:
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
        | _http_addr(http, m.id)
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
            "nodes": [
                {"id": n.id, "rpc_addr": n.rpc_addr, "state": n.state, "partitions": n.partitions}
                | _http_addr(http, n.id)
                for n in answer.nodes
            ],
            "moves": [_move_json(m) for m in answer.moves],
        }
        | _asked(asked, answer.node_id)
    )


def _asked(asked: Any, view_of: str) -> dict[str, Any]:
    """With ``?view=leader``: whose view this is and which node was asked."""
    if asked is None:
        return {}
    return {"view_of": view_of, "asked": {"node_id": asked.node_id, "role": asked.role}}


def _move_json(move: Any) -> dict[str, Any]:
    return {
        "topic": move.topic,
        "partition": move.partition,
        "replicas": list(move.replicas),
        "target": list(move.target),
    }


async def _admin_body(request: web.Request, *, id_required: bool) -> tuple[HttpState, str]:
    state = request.app[STATE_KEY]
    check_writable(state)
    body = await json_body(request) if (await read_body(request)).strip() else {}
    if not isinstance(body, dict) or not isinstance(body.get("id", ""), str):
        raise InvalidArgumentError('the body must be {"id": "<node id>"}')
    node_id = body.get("id", "")
    check_text(node_id, "id")
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
        headers = leader_header(state, exc.leader_addr)
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


async def _cluster_decommission(request: web.Request) -> web.Response:
    state, node_id = await _admin_body(request, id_required=True)
    assert state.cluster is not None
    moves = await state.cluster.topics_host.move_admin.decommission(node_id)
    return web.json_response(
        {"decommissioning": node_id, "moves": [_move_json(m) for m in moves]}, status=202
    )


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if state.draining or state.backend.closing:
        return error_response(503, "UNAVAILABLE", "the server is shutting down")
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    """Every metric; with an ACL, the series naming topics and groups only for a cluster
    admin (the ACL hides topics from who may not read them; process metrics stay open)."""
    state = request.app[STATE_KEY]
    access = request_access(request)
    full = access is None or access.may(Action.ADMIN, CLUSTER)
    return web.Response(
        body=state.metrics.render(per_partition=full),
        headers={"Content-Type": "text/plain; version=0.0.4"},
    )


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
