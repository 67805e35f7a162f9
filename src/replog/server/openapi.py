"""The OpenAPI 3 document of the HTTP API (hand-written; tests check it lists every route)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_B64 = {"type": "string", "format": "byte", "description": "base64"}
_U64 = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}

_SCHEMAS: dict[str, Any] = {
    "Header": {
        "type": "object",
        "required": ["key"],
        "properties": {"key": {"type": "string"}, "value": _B64},
    },
    "RecordIn": {
        "type": "object",
        "required": ["value"],
        "properties": {
            "value": {**_B64, "description": 'base64; may be empty (""), as in gRPC'},
            "key": _B64,
            "headers": {"type": "array", "items": {"$ref": "#/components/schemas/Header"}},
        },
    },
    "Record": {
        "type": "object",
        "required": ["value", "offset", "timestamp_ms"],
        "properties": {
            "value": _B64,
            "key": _B64,
            "headers": {"type": "array", "items": {"$ref": "#/components/schemas/Header"}},
            "offset": _U64,
            "timestamp_ms": _U64,
            "term": _U64,
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "example": "OFFSET_OUT_OF_RANGE",
                        "description": "INVALID_ARGUMENT, RECORD_TOO_LARGE, "
                        "OFFSET_OUT_OF_RANGE, REQUEST_TOO_LARGE, NOT_FOUND, "
                        "METHOD_NOT_ALLOWED, UNAVAILABLE, INTERNAL",
                    },
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Server": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "rpc_addr": {"type": "string"},
            "is_leader": {"type": "boolean"},
            "is_voter": {"type": "boolean"},
        },
    },
    "Member": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "rpc_addr": {"type": "string"},
            "role": {"type": "string", "enum": ["leader", "follower", "learner"]},
            "voter": {"type": "boolean"},
            "is_leader": {"type": "boolean"},
            "match_index": {**_U64, "description": "Last index known replicated (leader's view)"},
            "lag": {**_U64, "description": "Commit index minus match index (leader's view)"},
            "last_contact_s": {
                "type": "number",
                "nullable": True,
                "description": "Seconds since this node last heard from the member",
            },
        },
    },
    "ClusterStatus": {
        "type": "object",
        "properties": {
            "node_id": {"type": "string"},
            "leader_id": {"type": "string"},
            "role": {"type": "string"},
            "term": _U64,
            "commit_index": _U64,
            "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
        },
    },
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON, bad base64 or bad parameters",
        403: "The caller lacks the permission (admin for cluster changes)",
        404: "Offset out of range (the message gives the valid range), or no such member",
        409: "The change is not possible now (e.g. no other voter, a change in progress)",
        413: "Body or record too large",
        429: "The caller's identity already holds the most open streams allowed",
        503: "The server is shutting down, or is not the leader (header Replog-Leader)",
        504: "The change did not finish in time",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def _query(name: str, description: str, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": 0}
    if maximum is not None:
        schema["maximum"] = maximum
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 description of every HTTP route."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "replog HTTP API", "version": "v1"},
        "paths": {**_record_paths(), **_read_paths(), **_other_paths()},
        "components": {"schemas": _SCHEMAS},
    }


def _record_paths() -> dict[str, Any]:
    record_body = {
        "type": "object",
        "required": ["record"],
        "properties": {"record": _ref("RecordIn")},
    }
    batch_body = {
        "type": "object",
        "required": ["records"],
        "properties": {"records": {"type": "array", "minItems": 1, "items": _ref("RecordIn")}},
    }
    return {
        "/v1/records": {
            "post": {
                "summary": "Append one record",
                "requestBody": {"required": True, **_json(record_body)},
                "responses": {
                    "200": _json({"type": "object", "properties": {"offset": _U64}}),
                    **_errors(400, 413, 503),
                },
            },
            "get": {
                "summary": "Read records from an offset (long-polls up to wait_ms at the end)",
                "parameters": [
                    _query("offset", "First offset (default 0)"),
                    _query("max_records", "At most this many (1..10000, default 100)", 10_000),
                    _query("wait_ms", "Wait this long for new records at the end", 60_000),
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "records": {"type": "array", "items": _ref("Record")},
                                "next_offset": _U64,
                                "high_watermark": _U64,
                            },
                        }
                    ),
                    **_errors(400, 404),
                },
            },
        },
        "/v1/records:batch": {
            "post": {
                "summary": "Append records atomically at contiguous offsets",
                "requestBody": {"required": True, **_json(batch_body)},
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"base_offset": _U64, "count": {"type": "integer"}},
                        }
                    ),
                    **_errors(400, 413, 503),
                },
            }
        },
    }


def _read_paths() -> dict[str, Any]:
    return {
        "/v1/records/{offset}": {
            "get": {
                "summary": "Read the record at an offset",
                "parameters": [{"name": "offset", "in": "path", "required": True, "schema": _U64}],
                "responses": {
                    "200": _json({"type": "object", "properties": {"record": _ref("Record")}}),
                    **_errors(400, 404),
                },
            }
        },
        "/v1/records:stream": {
            "get": {
                "summary": "Server-Sent Events: one 'record' event per record, tailing new ones",
                "parameters": [_query("offset", "First offset (default 0)")],
                "responses": {
                    "200": {
                        "description": "event: record, id: offset, data: Record as JSON",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 404, 429),
                },
            }
        },
    }


def _other_paths() -> dict[str, Any]:
    return {
        "/v1/servers": {
            "get": {
                "summary": "The cluster's servers",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"servers": {"type": "array", "items": _ref("Server")}},
                        }
                    )
                },
            }
        },
        **_cluster_paths(),
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK"}}}},
        "/readyz": {
            "get": {
                "summary": "Readiness (503 while shutting down)",
                "responses": {"200": {"description": "Ready"}, **_errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}
        },
    }


def _cluster_paths() -> dict[str, Any]:
    id_body = {"type": "object", "properties": {"id": {"type": "string"}}}
    return {
        "/v1/cluster": {
            "get": {
                "summary": "This node's view of the cluster: role, term, commit index, members",
                "responses": {"200": _json(_ref("ClusterStatus"))},
            }
        },
        "/v1/cluster:remove": {
            "post": {
                "summary": "Remove member id (admin; on the leader)",
                "requestBody": {"required": True, **_json({**id_body, "required": ["id"]})},
                "responses": {
                    "200": _json({"type": "object", "properties": {"removed": {"type": "string"}}}),
                    **_errors(400, 403, 404, 409, 503, 504),
                },
            }
        },
        "/v1/cluster:transfer-leader": {
            "post": {
                "summary": "Hand leadership to id, or to the most caught-up voter (admin)",
                "requestBody": {"required": False, **_json(id_body)},
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"leader_id": {"type": "string"}}}
                    ),
                    **_errors(400, 403, 404, 409, 503, 504),
                },
            }
        },
    }
