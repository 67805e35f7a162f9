"""The consumer group routes' part of the OpenAPI document (see ``http_groups``)."""

from __future__ import annotations

from typing import Any

from replog.server.openapi_parts import U32, U64, errors, json_content, path_param, ref

__all__ = ["GROUP_SCHEMAS", "group_paths"]

_I64 = {"type": "integer", "format": "int64"}
_TP = {
    "type": "object",
    "required": ["topic", "partition"],
    "additionalProperties": False,
    "properties": {"topic": {"type": "string"}, "partition": U32},
}
_TPS = {"type": "array", "items": ref("TopicPartition")}

GROUP_SCHEMAS: dict[str, Any] = {
    "TopicPartition": _TP,
    "Group": {
        "type": "object",
        "properties": {
            "group": {"type": "string"},
            "state": {"type": "string", "enum": ["empty", "stable", "reconciling"]},
            "generation": {"type": "integer", "description": "the group epoch"},
            "assignor": {"type": "string"},
            "members": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "epoch": {"type": "integer"},
                        "topics": {"type": "array", "items": {"type": "string"}},
                        "assignment": _TPS,
                    },
                },
            },
            "offsets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "topic": {"type": "string"},
                        "partition": U32,
                        "committed": {**_I64, "description": "-1: none committed"},
                        "end_offset": {**_I64, "description": "-1: unknown on this node"},
                        "lag": {**_I64, "description": "-1: unknown"},
                    },
                },
            },
        },
    },
    "GroupCommit": {
        "type": "object",
        "required": ["offsets"],
        "additionalProperties": False,
        "properties": {
            "member_id": {"type": "string", "description": '"" for a tool: only while empty'},
            "member_epoch": {"type": "integer"},
            "offsets": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["topic", "partition", "offset"],
                    "additionalProperties": False,
                    "properties": {
                        "topic": {"type": "string"},
                        "partition": U32,
                        "offset": {**U64, "description": "the next offset to consume"},
                        "metadata": {"type": "string"},
                    },
                },
            },
        },
    },
    "GroupHeartbeat": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "member_id": {"type": "string"},
            "member_epoch": {"type": "integer", "description": "0 joins, -1 leaves"},
            "topics": {"type": "array", "items": {"type": "string"}},
            "owned": _TPS,
            "session_timeout_ms": U32,
            "assignor": {"type": "string", "enum": ["", "range", "cooperative-sticky"]},
        },
    },
}

_GROUP = path_param(
    "name", {"type": "string", "minLength": 1, "maxLength": 255}, "The consumer group"
)


_LISTING = {
    "type": "object",
    "properties": {
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "group": {"type": "string"},
                    "state": {"type": "string"},
                    "members": {"type": "integer"},
                },
            },
        }
    },
}
_OFFSETS = {
    "type": "object",
    "properties": {
        "offsets": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "topic": {"type": "string"},
                    "partition": U32,
                    "offset": U64,
                    "metadata": {"type": "string"},
                },
            },
        }
    },
}
_ANSWER = {
    "type": "object",
    "properties": {
        "member_id": {"type": "string"},
        "member_epoch": {"type": "integer"},
        "assignment": _TPS,
        "heartbeat_interval_ms": U32,
    },
}


def group_paths() -> dict[str, Any]:
    """The consumer group routes."""
    listing, offsets, answer = _LISTING, _OFFSETS, _ANSWER
    return {
        "/v1/groups": {
            "get": {
                "summary": "The groups this node coordinates that the caller may consume",
                "responses": {"200": json_content(listing), **errors(403, 503)},
            }
        },
        "/v1/groups/{name}": {
            "get": {
                "summary": "Members, assignment, committed offsets and lag of a group",
                "parameters": [_GROUP],
                "responses": {"200": json_content(ref("Group")), **errors(400, 403, 404, 503)},
            },
            "delete": {
                "summary": "Delete a group without members and its offsets (admin on it)",
                "parameters": [_GROUP],
                "responses": {
                    "204": {"description": "Deleted"},
                    **errors(400, 403, 404, 409, 503),
                },
            },
        },
        "/v1/groups/{name}/offsets": {
            "get": {
                "summary": "The group's committed offsets",
                "parameters": [_GROUP],
                "responses": {"200": json_content(offsets), **errors(400, 403, 404, 503)},
            },
            "post": {
                "summary": "Commit offsets atomically (as a member at its epoch, or as a tool "
                "while the group has no members: 409 otherwise)",
                "parameters": [_GROUP],
                "requestBody": {"required": True, **json_content(ref("GroupCommit"))},
                "responses": {
                    "204": {"description": "Committed"},
                    **errors(400, 403, 404, 409, 413, 503),
                },
            },
        },
        "/v1/groups/{name}/heartbeat": {
            "post": {
                "summary": "A member's heartbeat: join (epoch 0), heartbeat, or leave (-1); "
                "answers what the member may own now",
                "parameters": [_GROUP],
                "requestBody": {"required": True, **json_content(ref("GroupHeartbeat"))},
                "responses": {"200": json_content(answer), **errors(400, 403, 404, 409, 413, 503)},
            }
        },
    }
