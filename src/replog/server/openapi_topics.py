"""The topic routes' part of the OpenAPI document (see ``http_topics``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from replog.server.openapi_parts import (
    BATCH_BODY,
    BATCH_PARAMS,
    PRODUCE_PARAMS,
    RECORD_BODY,
    U32,
    U64,
    errors,
    json_content,
    path_param,
    produce_body,
    ref,
)

__all__ = ["TOPIC_SCHEMAS", "topic_paths"]

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,249}$"}
_CONFIG = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "retention_ms, retention_bytes (per partition), segment_bytes, segment_ms, "
    "max_record_bytes, sync; values are strings (integers are accepted and made strings); "
    "an unknown key or a bad value is 400, naming the key",
}

TOPIC_SCHEMAS: dict[str, Any] = {
    "Partition": {
        "type": "object",
        "properties": {
            "partition": {"type": "integer", "minimum": 0},
            "leader": {"type": "string", "description": 'node id ("" while none)'},
            "replicas": {"type": "array", "items": {"type": "string"}},
            "in_sync": {"type": "array", "items": {"type": "string"}},
            "lowest_offset": U64,
            "next_offset": U64,
            "size_bytes": U64,
        },
    },
    "Topic": {
        "type": "object",
        "properties": {
            "name": _NAME,
            "config": {**_CONFIG, "description": "every setting, server defaults filled in"},
            "replication_factor": {"type": "integer", "minimum": 1},
            "partitions": {"type": "array", "items": ref("Partition")},
        },
    },
    "TopicSummary": {
        "type": "object",
        "description": "A topic in GET /v1/topics?view=summary: no partition rows",
        "properties": {
            "name": _NAME,
            "config": _CONFIG,
            "replication_factor": {"type": "integer", "minimum": 1},
            "partition_count": {"type": "integer", "minimum": 0},
            "next_offset_sum": {**U64, "description": "the partitions' next offsets, summed"},
            "size_bytes": {**U64, "description": "the partitions' sizes, summed"},
        },
    },
    "TopicCreate": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": _NAME,
            "partitions": {**U32, "minimum": 1, "maximum": 4096, "default": 1},
            "replication_factor": {
                **U32,
                "description": "1..the number of nodes; 0 or absent: the server's default",
            },
            "config": _CONFIG,
        },
    },
    "TopicPatch": {
        "type": "object",
        "additionalProperties": False,
        "description": "Either config and/or delete, or partitions: not both in one request",
        "properties": {
            "config": {**_CONFIG, "description": "settings to set"},
            "delete": {
                "type": "array",
                "items": {"type": "string"},
                "description": "settings to reset to the server's default",
            },
            "partitions": {**U32, "description": "the new partition count (only grows)"},
        },
    },
}

_NAME_PARAM = path_param("name", _NAME, "The topic")
_VIEW_PARAM = {
    "name": "view",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["full", "summary"], "default": "full"},
    "description": "full: each topic with its partitions; summary: without them (their "
    "count and sums: for a list of large topics; describe one for its partitions)",
}
_PARTITION_PARAM = path_param("p", U32, "The partition (0..partitions-1)")


def _admin_paths() -> dict[str, Any]:
    topic = json_content(ref("Topic"))
    return {
        "/v1/topics": {
            "post": {
                "summary": "Create a topic (admin on its name)",
                "requestBody": {"required": True, **json_content(ref("TopicCreate"))},
                "responses": {
                    "201": json_content(ref("Topic"), "Created (header Location)"),
                    **errors(400, 403, 409, 413, 501, 503),
                },
            },
            "get": {
                "summary": "The topics the caller may consume",
                "parameters": [_VIEW_PARAM],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "topics": {
                                    "type": "array",
                                    "items": {"oneOf": [ref("Topic"), ref("TopicSummary")]},
                                }
                            },
                        }
                    ),
                    **errors(400),
                    **errors(403, 503),
                },
            },
        },
        "/v1/topics/{name}": {
            "get": {
                "summary": "Describe a topic: config and each partition's replicas and offsets",
                "parameters": [_NAME_PARAM],
                "responses": {"200": topic, **errors(403, 404, 503)},
            },
            "patch": {
                "summary": "Change a topic's config, or grow its partitions (admin)",
                "parameters": [_NAME_PARAM],
                "requestBody": {"required": True, **json_content(ref("TopicPatch"))},
                "responses": {"200": topic, **errors(400, 403, 404, 413, 501, 503)},
            },
            "delete": {
                "summary": "Delete a topic and its data (admin)",
                "parameters": [_NAME_PARAM],
                "responses": {
                    "204": {"description": "Deleted"},
                    **errors(400, 403, 404, 501, 503),
                },
            },
        },
    }


def _keyed_paths() -> dict[str, Any]:
    record_body, batch_body = RECORD_BODY, BATCH_BODY
    partition = {"type": "integer", "minimum": 0, "description": "where it was appended"}
    return {
        "/v1/topics/{name}/records": {
            "post": {
                "summary": "Append one record to the partition of its key (murmur2, as "
                "Kafka), or to a sticky partition when it has none",
                "parameters": [_NAME_PARAM, *PRODUCE_PARAMS],
                "requestBody": produce_body(record_body),
                "responses": {
                    "200": json_content(
                        {"type": "object", "properties": {"offset": U64, "partition": partition}}
                    ),
                    **errors(400, 403, 404, 413, 503),
                },
            }
        },
        "/v1/topics/{name}/records:batch": {
            "post": {
                "summary": "Append records atomically to one partition: the one their keys "
                "map to (400 if they map to several), or a sticky one when none has a key",
                "parameters": [_NAME_PARAM, *BATCH_PARAMS],
                "requestBody": {"required": True, **json_content(batch_body)},
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "properties": {
                                "base_offset": U64,
                                "count": {"type": "integer"},
                                "partition": partition,
                            },
                        }
                    ),
                    **errors(400, 403, 404, 413, 503),
                },
            }
        },
    }


def topic_paths(
    record_paths: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """The topic routes: administration, the partitioner's produce, and ``record_paths``
    (the record routes' document) under each partition."""
    return {
        **_admin_paths(),
        **_keyed_paths(),
        **record_paths(
            "/v1/topics/{name}/partitions/{p}/records",
            [_NAME_PARAM, _PARTITION_PARAM],
            partition=True,
        ),
    }
