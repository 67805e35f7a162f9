"""The OpenAPI 3 document of the HTTP API (hand-written; tests check it lists every route)."""

from __future__ import annotations

from typing import Any

from replog.server.openapi_console import console_paths
from replog.server.openapi_groups import GROUP_SCHEMAS, group_paths
from replog.server.openapi_parts import B64 as _B64
from replog.server.openapi_parts import (
    BATCH_BODY,
    BATCH_PARAMS,
    PRODUCE_PARAMS,
    RECORD_BODY,
    produce_body,
)
from replog.server.openapi_parts import U64 as _U64
from replog.server.openapi_parts import errors as _errors
from replog.server.openapi_parts import json_content as _json
from replog.server.openapi_parts import query as _query
from replog.server.openapi_parts import ref as _ref
from replog.server.openapi_tlog import TLOG_SCHEMAS, tlog_paths
from replog.server.openapi_topics import TOPIC_SCHEMAS, topic_paths

__all__ = ["openapi_document", "record_paths"]


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
                        "METHOD_NOT_ALLOWED, UNAVAILABLE, INTERNAL, OUT_OF_ORDER_SEQUENCE, "
                        "PRODUCER_FENCED, UNKNOWN_PRODUCER_ID, EXPECTED_OFFSET_MISMATCH, "
                        "EXPECTED_KEY_OFFSET_MISMATCH, ...",
                    },
                    "message": {"type": "string"},
                    "expected": {
                        "type": "integer",
                        "description": "A refused produce's expected offset or sequence",
                    },
                    "actual": {
                        "type": "integer",
                        "description": "The partition's actual one (its next offset, the "
                        "key's latest offset, or the batch's sequence)",
                    },
                },
            }
        },
    },
    "Server": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "rpc_addr": {"type": "string"},
            "http_addr": {
                "type": "string",
                "description": "HOST:PORT of its HTTP API (absent until it has said)",
            },
            "is_leader": {"type": "boolean"},
            "is_voter": {"type": "boolean"},
        },
    },
    "Member": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "rpc_addr": {"type": "string"},
            "http_addr": {
                "type": "string",
                "description": "HOST:PORT of its HTTP API (absent until it has said)",
            },
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
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "rpc_addr": {"type": "string"},
                        "http_addr": {"type": "string"},
                        "state": {
                            "type": "string",
                            "enum": ["active", "decommissioning", "decommissioned"],
                        },
                        "partitions": {"type": "integer"},
                    },
                },
            },
            "moves": {"type": "array", "items": {"$ref": "#/components/schemas/PartitionMove"}},
            "view_of": {"type": "string", "description": "with view=leader: whose view this is"},
            "asked": {
                "type": "object",
                "description": "with view=leader: the node asked, and its role",
                "properties": {"node_id": {"type": "string"}, "role": {"type": "string"}},
            },
        },
    },
    "PartitionMove": {
        "type": "object",
        "properties": {
            "topic": {"type": "string"},
            "partition": {"type": "integer"},
            "replicas": {"type": "array", "items": {"type": "string"}},
            "target": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 description of every HTTP route."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "replog HTTP API", "version": "v1"},
        "paths": {
            **record_paths("/v1/records", [], partition=False),
            **topic_paths(record_paths),
            **group_paths(),
            **tlog_paths(),
            **console_paths(),
            **_other_paths(),
        },
        "components": {"schemas": {**_SCHEMAS, **TOPIC_SCHEMAS, **GROUP_SCHEMAS, **TLOG_SCHEMAS}},
    }


_READ = {
    "type": "object",
    "properties": {
        "records": {"type": "array", "items": _ref("Record")},
        "next_offset": _U64,
        "high_watermark": _U64,
    },
}


_DUP = {"duplicate": {"type": "boolean", "description": "A producer's retry: not appended"}}
_BATCH_PRODUCED = {"base_offset": _U64, "count": {"type": "integer"}, **_DUP}


def record_paths(prefix: str, params: list[dict[str, Any]], *, partition: bool) -> dict[str, Any]:
    """The five record routes under ``prefix`` (with path ``params``); with ``partition``,
    produce answers also give the partition, and unknown topics or partitions are 404."""
    record_body, batch_body = RECORD_BODY, BATCH_BODY
    where = {"partition": {"type": "integer", "minimum": 0}} if partition else {}
    topic_errors = (403, 404, 503) if partition else ()
    produced = {"type": "object", "properties": {"offset": _U64, **_DUP, **where}}
    batch_produced = {"type": "object", "properties": {**_BATCH_PRODUCED, **where}}
    read = _READ
    offset_param = {"name": "offset", "in": "path", "required": True, "schema": _U64}
    return {
        prefix: {
            "post": {
                "summary": "Append one record",
                "parameters": [*params, *PRODUCE_PARAMS],
                "requestBody": produce_body(record_body),
                "responses": {
                    "200": _json(produced),
                    **_errors(400, *topic_errors, 409, 413, 501, 503),
                },
            },
            "get": {
                "summary": "Read records from an offset (long-polls up to wait_ms at the end)",
                "parameters": [
                    *params,
                    _query("offset", "First offset (default 0)"),
                    _query("max_records", "At most this many (1..10000, default 100)", 10_000),
                    _query("wait_ms", "Wait this long for new records at the end", 60_000),
                ],
                "responses": {"200": _json(read), **_errors(400, *topic_errors, 404)},
            },
        },
        f"{prefix}:batch": {
            "post": {
                "summary": "Append records atomically at contiguous offsets",
                "parameters": [*params, *BATCH_PARAMS],
                "requestBody": {"required": True, **_json(batch_body)},
                "responses": {
                    "200": _json(batch_produced),
                    **_errors(400, *topic_errors, 409, 413, 501, 503),
                },
            }
        },
        f"{prefix}/{{offset}}": {
            "get": {
                "summary": "Read the record at an offset",
                "parameters": [*params, offset_param],
                "responses": {
                    "200": _json({"type": "object", "properties": {"record": _ref("Record")}}),
                    **_errors(400, *topic_errors, 404),
                },
            }
        },
        f"{prefix}:stream": {
            "get": {
                "summary": "Server-Sent Events: one 'record' event per record, tailing new ones",
                "parameters": [*params, _query("offset", "First offset (default 0)")],
                "responses": {
                    "200": {
                        "description": "event: record, id: offset, data: Record as JSON",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, *topic_errors, 404, 429),
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
        **_producer_paths(),
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


def _producer_paths() -> dict[str, Any]:
    return {
        "/v1/producers": {
            "post": {
                "summary": "A new idempotent producer id (63 random bits) and epoch 0",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "producer_id": {"type": "integer"},
                                "producer_epoch": {"type": "integer"},
                            },
                        }
                    )
                },
            }
        },
    }


def _cluster_paths() -> dict[str, Any]:
    id_body = {"type": "object", "properties": {"id": {"type": "string"}}}
    return {
        "/v1/cluster": {
            "get": {
                "summary": "This node's view of the cluster: role, term, commit index, members",
                "description": "With view=leader, the controller leader's view (members' match "
                "index and lag as it sees them), asked of the leader by this node; this node's "
                "own view when no leader answers. view_of and asked say whose it is.",
                "parameters": [
                    {
                        "name": "view",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["leader"]},
                    }
                ],
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
        "/v1/cluster:decommission": {
            "post": {
                "summary": "Move every replica of node id elsewhere, then remove it (admin; on "
                "the controller leader); answers once recorded, GET /v1/cluster shows progress",
                "requestBody": {"required": True, **_json({**id_body, "required": ["id"]})},
                "responses": {
                    "202": _json(
                        {
                            "type": "object",
                            "properties": {
                                "decommissioning": {"type": "string"},
                                "moves": {"type": "array", "items": _ref("PartitionMove")},
                            },
                        }
                    ),
                    **_errors(400, 403, 404, 503),
                },
            }
        },
    }
