"""The topic routes: administer topics, and produce and read by (topic, partition).

``POST /v1/topics`` creates (201), ``GET /v1/topics`` lists, ``GET|PATCH|DELETE
/v1/topics/{name}`` describes, alters (the config, or the partition count: one of the two
per request, so a refused request changes nothing) and deletes (204). The record routes of
one partition are at ``/v1/topics/{name}/partitions/{p}/records``; ``POST
/v1/topics/{name}/records`` (and ``:batch``) let the server choose the partition: Kafka's
murmur2 partitioner for a key, a sticky partition for records without one. A batch goes to
one partition atomically, so its keys must all map to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from replog.api.backend import LogBackend
from replog.broker.model import TopicDescription
from replog.errors import InvalidArgumentError, UnavailableError
from replog.security.acl import Action
from replog.server.acl_objects import topic_object
from replog.server.auth import request_access
from replog.server.http_common import STATE_KEY, HttpState, check_text, check_writable, json_body
from replog.server.http_records import (
    add_record_routes,
    appended,
    batch_encoding,
    batch_values,
    body_conditions,
    produce_body,
)
from replog.server.routing import check_writable_topic, end_sticky, produce_target
from replog.server.topics import TopicsBackend

__all__ = ["add_topic_routes", "topic_json", "topic_summary_json"]

MAX_U32 = 2**32 - 1
_CREATE_FIELDS = ("name", "partitions", "replication_factor", "config")
_PATCH_FIELDS = ("config", "delete", "partitions")


def add_topic_routes(router: web.UrlDispatcher) -> None:
    """Add the topic administration routes and the per-topic record routes."""
    router.add_post("/v1/topics", _create)
    router.add_get("/v1/topics", _list)
    router.add_get("/v1/topics/{name}", _describe)
    router.add_patch("/v1/topics/{name}", _alter)
    router.add_delete("/v1/topics/{name}", _delete)
    router.add_post("/v1/topics/{name}/records", _produce_keyed)
    router.add_post("/v1/topics/{name}/records:batch", _produce_keyed_batch)
    add_record_routes(router, "/v1/topics/{name}/partitions/{p}/records", _partition)


def topic_json(topic: TopicDescription) -> dict[str, Any]:
    """A topic as the HTTP API gives it (node ids for leader, replicas and in_sync)."""
    return {
        "name": topic.name,
        "config": dict(topic.config),
        "replication_factor": topic.replication_factor,
        "partitions": [
            {
                "partition": p.partition,
                "leader": p.leader,
                "replicas": list(p.replicas),
                "in_sync": list(p.in_sync),
                "lowest_offset": p.lowest_offset,
                "next_offset": p.next_offset,
                "size_bytes": p.size_bytes,
            }
            for p in topic.partitions
        ],
    }


def topic_summary_json(topic: TopicDescription) -> dict[str, Any]:
    """A topic without its partitions' rows (``GET /v1/topics?view=summary``): their count,
    and the sums of their next offsets and sizes, for a list of many large topics."""
    return {
        "name": topic.name,
        "config": dict(topic.config),
        "replication_factor": topic.replication_factor,
        "partition_count": len(topic.partitions),
        "next_offset_sum": sum(p.next_offset for p in topic.partitions),
        "size_bytes": sum(p.size_bytes for p in topic.partitions),
    }


def _topics(state: HttpState) -> TopicsBackend:
    if state.topics is None:
        raise UnavailableError("this server does not serve topics", certainly_not_applied=True)
    return state.topics


def _require(request: web.Request, action: Action, name: str) -> None:
    access = request_access(request)
    if access is not None:
        access.require(action, topic_object(name))


def _partition(request: web.Request) -> tuple[LogBackend, int | None]:
    raw = request.match_info["p"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_U32:
        raise InvalidArgumentError(f"partition must be a non-negative integer, got {raw!r}")
    partition = int(raw)
    topics = _topics(request.app[STATE_KEY])
    name = request.match_info["name"]
    if request.method == "POST":
        check_writable_topic(name)
    return topics.partition(name, partition), partition


# -- administration ----------------------------------------------------------------------------


def _object(body: Any, fields: tuple[str, ...], shape: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidArgumentError(f"the body must be {shape}")
    for field in body:
        if field not in fields:
            raise InvalidArgumentError(
                f"unknown field {field!r} in the body (expected {', '.join(fields)})"
            )
    return body


def _count(body: Mapping[str, Any], field: str, default: int) -> int:
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U32:
        raise InvalidArgumentError(f"{field} must be a non-negative integer, got {value!r}")
    return value


def _config(body: Mapping[str, Any]) -> dict[str, str]:
    config = body.get("config", {})
    if not isinstance(config, dict):
        raise InvalidArgumentError('config must be an object of settings {"key": "value"}')
    settings: dict[str, str] = {}
    for key, value in config.items():
        check_text(key, "a config key")
        if isinstance(value, str):
            check_text(value, f"config[{key!r}]")
            settings[key] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            settings[key] = str(value)
        else:
            raise InvalidArgumentError(f"config[{key!r}] must be a string or an integer")
    return settings


async def _create(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    check_writable(state)
    topics = _topics(state)
    shape = '{"name": ..., "partitions": N, "replication_factor": R, "config": {...}}'
    body = _object(await json_body(request), _CREATE_FIELDS, shape)
    name = body.get("name")
    if not isinstance(name, str):
        raise InvalidArgumentError('"name" (the topic to create) is required, a string')
    check_text(name, "name")
    partitions = _count(body, "partitions", 1)
    replication_factor = _count(body, "replication_factor", 0)  # 0: the server's default
    config = _config(body)
    _require(request, Action.ADMIN, name)
    topic = await topics.create_topic(name, partitions, replication_factor, config)
    headers = {"Location": f"/v1/topics/{topic.name}"}
    return web.json_response(topic_json(topic), status=201, headers=headers)


async def _list(request: web.Request) -> web.Response:
    view = request.query.get("view", "full")
    if view not in ("full", "summary"):
        raise InvalidArgumentError(f"view must be full or summary, got {view[:40]!r}")
    topics = _topics(request.app[STATE_KEY]).list_topics()
    access = request_access(request)
    if access is not None:  # like Kafka: a topic the caller may not read is not listed
        topics = [t for t in topics if access.may(Action.CONSUME, t.name)]
    as_json = topic_summary_json if view == "summary" else topic_json
    return web.json_response({"topics": [as_json(t) for t in topics]})


async def _describe(request: web.Request) -> web.Response:
    topic = _topics(request.app[STATE_KEY]).describe_topic(request.match_info["name"])
    return web.json_response(topic_json(topic))


async def _alter(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    check_writable(state)
    topics, name = _topics(state), check_writable_topic(request.match_info["name"])
    shape = '{"config": {...}, "delete": ["key", ...]} or {"partitions": N}'
    body = _object(await json_body(request), _PATCH_FIELDS, shape)
    if "partitions" in body:
        if "config" in body or "delete" in body:
            raise InvalidArgumentError(
                "change the config or the partition count, not both in one request"
            )
        topic = await topics.create_partitions(name, _count(body, "partitions", 0))
        return web.json_response(topic_json(topic))
    if "config" not in body and "delete" not in body:
        raise InvalidArgumentError(f"nothing to change: the body must be {shape}")
    delete = body.get("delete", [])
    if not isinstance(delete, list) or not all(isinstance(k, str) for k in delete):
        raise InvalidArgumentError("delete must be a list of config keys")
    for key in delete:
        check_text(key, "a config key")
    topic = await topics.alter_topic_config(name, _config(body), delete)
    return web.json_response(topic_json(topic))


async def _delete(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    check_writable(state)
    await _topics(state).delete_topic(check_writable_topic(request.match_info["name"]))
    return web.Response(status=204)


# -- produce with the partitioner -------------------------------------------------------------


async def _produce_keyed(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    check_writable(state)
    topics, name = _topics(state), request.match_info["name"]
    value, conditions = await produce_body(request)
    target = produce_target(topics, name, None, [value])
    future = target.backend.submit([value], conditions)
    end_sticky(topics, name, target)  # the next keyless request may go elsewhere
    return web.json_response({**appended(await future), "partition": target.partition})


async def _produce_keyed_batch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    check_writable(state)
    topics, name = _topics(state), request.match_info["name"]
    batch_encoding(request)
    body = await json_body(request)
    values = batch_values(state, body)
    conditions = body_conditions(body, producer=False)
    target = produce_target(topics, name, None, values)
    future = target.backend.submit(values, conditions)
    end_sticky(topics, name, target)
    base = await future
    return web.json_response({**appended(base, len(values)), "partition": target.partition})
