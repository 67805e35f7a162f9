"""Building blocks of the OpenAPI document: common schemas, responses and parameters."""

from __future__ import annotations

from typing import Any

__all__ = [
    "B64",
    "BATCH_BODY",
    "BATCH_PARAMS",
    "PRODUCE_PARAMS",
    "RECORD_BODY",
    "U32",
    "U64",
    "errors",
    "json_content",
    "path_param",
    "produce_body",
    "query",
    "ref",
]

B64 = {"type": "string", "format": "byte", "description": "base64"}
U32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
U64 = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}

#: The body of a produce of one record, and of a batch.
_CONDITIONS = {
    "expected_offset": {
        "type": "integer",
        "minimum": 0,
        "description": "Append only if the partition's next offset is this (else 409, "
        "EXPECTED_OFFSET_MISMATCH, with expected and actual)",
    },
    "expected_key_offset": {
        "type": "integer",
        "minimum": -1,
        "description": "Append only if the key's latest record is at this offset (-1: none)",
    },
}
_PRODUCER = {
    "producer_id": {
        "type": "integer",
        "minimum": 1,
        "description": "An idempotent producer's id (POST /v1/producers); batches to one "
        "partition only",
    },
    "producer_epoch": {"type": "integer", "minimum": 0},
    "base_sequence": {
        "type": "integer",
        "minimum": 0,
        "description": "The sequence of the batch's first record (409 OUT_OF_ORDER_SEQUENCE "
        "when it does not follow the last; a retry answers duplicate: true)",
    },
}
RECORD_BODY = {
    "type": "object",
    "required": ["record"],
    "properties": {"record": {"$ref": "#/components/schemas/RecordIn"}, **_CONDITIONS},
}
BATCH_BODY = {
    "type": "object",
    "required": ["records"],
    "properties": {
        "records": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": "#/components/schemas/RecordIn"},
        },
        **_CONDITIONS,
        **_PRODUCER,
    },
}

_ERROR_TEXT = {
    400: "Malformed JSON, bad base64, bad parameters, or an invalid topic setting (named)",
    401: "No client identity (a certificate) while an ACL is on",
    403: "The caller lacks the permission (admin for cluster and topic changes)",
    404: "Offset out of range (the message gives the valid range), no such topic or "
    "partition, or no such member",
    409: "The change is not possible now (e.g. no other voter, a change in progress), "
    "a topic of that name exists, or a produce's condition or sequence did not hold "
    "(nothing appended; expected and actual in the body)",
    413: "Body or record too large",
    429: "The caller's identity already holds the most open streams allowed",
    501: "Not supported by this server",
    503: "The server is shutting down, or another node must answer: the leader, or a "
    "group's coordinator (header Replog-Leader names its HTTP address when known)",
    504: "The change did not finish in time",
}


def json_content(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    """A response (or request body) of JSON matching ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


#: The header of a 503 refusal naming the node that can answer.
_LEADER_HEADER = {
    "Replog-Leader": {
        "description": "HOST:PORT of the HTTP API of the node that can answer (the leader, "
        "or the group's coordinator): send the request there. Absent when this node does "
        "not know it (retry, or ask any node again)",
        "schema": {"type": "string"},
    }
}


def errors(*statuses: int) -> dict[str, Any]:
    """The error responses of these statuses, each an Error body (a 503's may carry the
    ``Replog-Leader`` header)."""
    out = {str(s): json_content(ref("Error"), _ERROR_TEXT[s]) for s in statuses}
    if "503" in out:
        out["503"]["headers"] = _LEADER_HEADER
    return out


def query(name: str, description: str, maximum: int | None = None) -> dict[str, Any]:
    """An optional non-negative integer query parameter."""
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


def path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A path parameter."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


_ENCODING = {
    "name": "encoding",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["base64", "utf8"], "default": "base64"},
    "description": 'base64: the body is JSON ({"record": ...}, bytes in base64). utf8: the '
    "body is the record's value as UTF-8 text (curl -d hello); Content-Type text/plain means "
    "utf8 too. Any other name is 400",
}
#: The query parameters of a one-record produce: the body's encoding and, with utf8, the key.
PRODUCE_PARAMS = [
    _ENCODING,
    {
        "name": "key",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 4096},
        "description": "With encoding=utf8: the record's key (UTF-8 text); 400 with a JSON body",
    },
]
#: A batch is always a JSON body: only ``encoding=base64`` is accepted.
BATCH_PARAMS = [{**_ENCODING, "description": "Only base64 (the JSON body); utf8 is 400"}]


def produce_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The request body of a one-record produce: JSON matching ``schema``, or the value as
    text (``text/plain``, or any body with ``?encoding=utf8``)."""
    text = {"schema": {"type": "string"}, "example": "hello"}
    return {
        "required": True,
        "description": "The record as JSON, or (text/plain or ?encoding=utf8) its value",
        "content": {"application/json": {"schema": schema}, "text/plain": text},
    }
