"""The consumer group routes, the HTTP twins of the Groups gRPC service.

``GET /v1/groups`` lists the groups this node coordinates; ``GET|DELETE /v1/groups/{name}``
describes (members, assignment, committed offsets, lag) and deletes (204; 409 while it has
members); ``GET|POST /v1/groups/{name}/offsets`` fetches and commits; ``POST
/v1/groups/{name}/heartbeat`` is a member's heartbeat. Bodies and answers use the gRPC
messages' field names. A node that is not the group's coordinator answers 503 (the app's
middleware) with the coordinator's HTTP address in ``Replog-Leader`` when it knows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from replog.broker.assignors import TopicPartition
from replog.errors import InvalidArgumentError, UnavailableError
from replog.security.acl import Action
from replog.server.acl_objects import group_object, topic_object
from replog.server.auth import request_access
from replog.server.group_service import GroupDescription, GroupService, visible
from replog.server.http_common import STATE_KEY, check_text, check_writable, json_body

__all__ = ["add_group_routes", "description_json"]

_MAX_U32 = 2**32 - 1
_MAX_I64 = 2**63 - 1
_COMMIT_FIELDS = ("member_id", "member_epoch", "offsets")
_OFFSET_FIELDS = ("topic", "partition", "offset", "metadata")
_HEARTBEAT_FIELDS = (
    "member_id",
    "member_epoch",
    "topics",
    "owned",
    "session_timeout_ms",
    "assignor",
)


def add_group_routes(router: web.UrlDispatcher) -> None:
    """Add the consumer group routes."""
    router.add_get("/v1/groups", _list)
    router.add_get("/v1/groups/{name}", _describe)
    router.add_delete("/v1/groups/{name}", _delete)
    router.add_get("/v1/groups/{name}/offsets", _fetch)
    router.add_post("/v1/groups/{name}/offsets", _commit)
    router.add_post("/v1/groups/{name}/heartbeat", _heartbeat)


def description_json(d: GroupDescription) -> dict[str, Any]:
    """A group's description as the HTTP API (and ``replog group describe``) gives it."""
    return {
        "group": d.group,
        "state": d.state,
        "generation": d.generation,
        "assignor": d.assignor,
        "members": [
            {
                "id": m.member_id,
                "epoch": m.member_epoch,
                "topics": list(m.topics),
                "assignment": [
                    {"topic": tp.topic, "partition": tp.partition} for tp in m.assignment
                ],
            }
            for m in d.members
        ],
        "offsets": [
            {
                "topic": o.topic,
                "partition": o.partition,
                "committed": o.committed,
                "end_offset": o.end_offset,
                "lag": o.lag,
            }
            for o in d.offsets
        ],
    }


def _tp_json(tp: TopicPartition) -> dict[str, Any]:
    return {"topic": tp.topic, "partition": tp.partition}


def _groups(request: web.Request) -> GroupService:
    groups = request.app[STATE_KEY].groups
    if groups is None:
        raise UnavailableError("this server does not serve groups", certainly_not_applied=True)
    return groups


def _require_topics(request: web.Request, topics: set[str]) -> None:
    access = request_access(request)
    if access is not None:
        for topic in sorted(topics):
            access.require(Action.CONSUME, topic_object(topic))


def _fields(body: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidArgumentError(f"{what} must be a JSON object")
    for key in body:
        if key not in fields:
            raise InvalidArgumentError(
                f"unknown field {key!r} in {what} (expected {', '.join(fields)})"
            )
    return body


def _int(body: Mapping[str, Any], key: str, low: int, high: int, default: int = 0) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgumentError(f"{key} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{key} must be a string")
    check_text(value, key)
    return value


def _partitions(value: Any, key: str) -> list[TopicPartition]:
    if not isinstance(value, list):
        raise InvalidArgumentError(f'{key} must be a list of {{"topic", "partition"}}')
    out = []
    for item in value:
        row = _fields(item, ("topic", "partition"), f"an item of {key}")
        out.append(TopicPartition(_str(row, "topic"), _int(row, "partition", 0, _MAX_U32)))
    return out


async def _list(request: web.Request) -> web.Response:
    access = request_access(request)
    listed = [
        {"group": name, "state": state, "members": members}
        for name, state, members in await _groups(request).list_groups()
        if access is None or access.may(Action.CONSUME, group_object(name))
    ]
    return web.json_response({"groups": listed})


async def _describe(request: web.Request) -> web.Response:
    described = await _groups(request).describe(request.match_info["name"])
    access = request_access(request)
    if access is not None:
        described = visible(
            described, lambda topic: access.may(Action.CONSUME, topic_object(topic))
        )
    return web.json_response(description_json(described))


async def _delete(request: web.Request) -> web.Response:
    check_writable(request.app[STATE_KEY])
    await _groups(request).delete(request.match_info["name"])
    return web.Response(status=204)


async def _fetch(request: web.Request) -> web.Response:
    found = await _groups(request).fetch(request.match_info["name"])
    access = request_access(request)
    offsets = [
        {"topic": tp.topic, "partition": tp.partition, "offset": o, "metadata": m}
        for tp, (o, m) in sorted(found.items())
        if access is None or access.may(Action.CONSUME, topic_object(tp.topic))
    ]
    return web.json_response({"offsets": offsets})


async def _commit(request: web.Request) -> web.Response:
    check_writable(request.app[STATE_KEY])
    body = _fields(await json_body(request), _COMMIT_FIELDS, "the body")
    rows = body.get("offsets")
    if not isinstance(rows, list) or not rows:
        raise InvalidArgumentError("offsets must be a non-empty list")
    offsets: dict[TopicPartition, tuple[int, str]] = {}
    for item in rows:
        row = _fields(item, _OFFSET_FIELDS, "an offset")
        tp = TopicPartition(_str(row, "topic"), _int(row, "partition", 0, _MAX_U32))
        offsets[tp] = (_int(row, "offset", 0, _MAX_I64), _str(row, "metadata"))
    _require_topics(request, {tp.topic for tp in offsets})
    member_epoch = _int(body, "member_epoch", -(2**31), 2**31 - 1)
    await _groups(request).commit(
        request.match_info["name"], _str(body, "member_id"), member_epoch, offsets
    )
    return web.Response(status=204)


async def _heartbeat(request: web.Request) -> web.Response:
    check_writable(request.app[STATE_KEY])
    body = _fields(await json_body(request), _HEARTBEAT_FIELDS, "the body")
    topics = body.get("topics")
    if topics is not None:
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise InvalidArgumentError("topics must be a list of topic names")
        _require_topics(request, set(topics))
    owned = _partitions(body["owned"], "owned") if body.get("owned") is not None else None
    answer = await _groups(request).heartbeat(
        request.match_info["name"],
        _str(body, "member_id"),
        _int(body, "member_epoch", -1, 2**31 - 1),
        topics,
        owned,
        _int(body, "session_timeout_ms", 0, 3_600_000),
        _str(body, "assignor"),
    )
    return web.json_response(
        {
            "member_id": answer.member_id,
            "member_epoch": answer.member_epoch,
            "assignment": [_tp_json(tp) for tp in sorted(answer.assignment)],
            "heartbeat_interval_ms": answer.heartbeat_interval_ms,
        }
    )
