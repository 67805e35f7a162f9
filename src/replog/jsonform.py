"""The JSON form of a Record, shared by the HTTP API and the CLI (``--format json``)."""

from __future__ import annotations

import base64
from typing import Any

from replog.v1.record_pb2 import Record

__all__ = ["record_to_json"]


def record_to_json(record: Record) -> dict[str, Any]:
    """A Record as JSON: offsets and times as numbers, bytes as base64, key/headers/term
    only when set."""
    out: dict[str, Any] = {
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "value": base64.b64encode(record.value).decode(),
    }
    if record.key:
        out["key"] = base64.b64encode(record.key).decode()
    if record.headers:
        out["headers"] = [
            {"key": h.key, "value": base64.b64encode(h.value).decode()} for h in record.headers
        ]
    if record.term:
        out["term"] = record.term
    return out
