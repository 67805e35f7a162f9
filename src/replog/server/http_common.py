"""What the HTTP/JSON routes share: their state, JSON bodies and parameters, error bodies.

Values, keys and header values are base64 in JSON; offsets are JSON numbers. Every error is
``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from replog.api.backend import AppendValue, LogBackend
from replog.cluster.controller_queries import http_address_of
from replog.errors import (
    ExpectedKeyOffsetError,
    ExpectedOffsetError,
    InvalidArgumentError,
    OutOfOrderSequenceError,
    ProducerFencedError,
    ReplogError,
    UnavailableError,
)
from replog.server.limits import Limits
from replog.server.metrics import ServerMetrics
from replog.server.topics import TopicsBackend
from replog.v1.record_pb2 import Header, Record

if TYPE_CHECKING:
    from replog.cluster.cluster_node import ClusterNode
    from replog.server.group_service import GroupService

__all__ = [
    "HTTP_CODES",
    "MAX_U64",
    "STATE_KEY",
    "HttpState",
    "check_json_size",
    "check_text",
    "check_writable",
    "error_response",
    "int_param",
    "json_body",
    "leader_header",
    "node_http_addresses",
    "read_body",
    "record_from_json",
]

MAX_U64 = 2**64 - 1


class HttpState:
    """What the handlers share: the default topic's backend (the ``/v1/records`` routes),
    the topics (None: this server has no topic routes yet), metrics and the draining flag."""

    def __init__(
        self,
        backend: LogBackend,
        metrics: ServerMetrics,
        cluster: ClusterNode | None = None,
        limits: Limits | None = None,
        topics: TopicsBackend | None = None,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.cluster = cluster
        self.limits = limits or Limits()
        self.topics = topics
        self.groups: GroupService | None = None
        """Consumer groups (None: this server has no group routes)."""
        self.draining = False
        self.http_address = ""
        """This server's own HTTP address as clients are told it ("": not listening yet)."""


STATE_KEY = web.AppKey("replog_state", HttpState)


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, int] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON error body with ``status`` (``details``: the numbers the error carries;
    ``headers``: response headers, such as ``Replog-Leader``)."""
    error: dict[str, Any] = {"code": code, "message": message, **(details or {})}
    return web.json_response({"error": error}, status=status, headers=headers)


def leader_header(state: HttpState, leader_addr: str) -> dict[str, str] | None:
    """``{"Replog-Leader": HOST:PORT}``: the HTTP address of the node a refusal names by its
    gRPC address ``leader_addr``; None when that node's HTTP address is not known (a gRPC
    address there would send an HTTP client to the wrong port)."""
    if state.cluster is None or not leader_addr:
        return None
    address = http_address_of(state.cluster.topics_host.metadata.state, leader_addr)
    return {"Replog-Leader": address} if address else None


def node_http_addresses(state: HttpState) -> dict[str, str]:
    """Each node's HTTP address by node id, for those that said where it is (a single
    server: itself)."""
    if state.cluster is None:
        me = state.backend.servers()[0].id
        return {me: state.http_address} if state.http_address else {}
    nodes = state.cluster.topics_host.metadata.state.nodes
    return {name: info.http_address for name, info in nodes.items() if info.http_address}


def error_details(exc: ReplogError) -> dict[str, int] | None:
    """The numbers a client acts on: a refused produce's expected and actual offset or
    sequence (``{"expected": 5, "actual": 7}``)."""
    if isinstance(exc, OutOfOrderSequenceError):
        return {"expected": exc.expected, "actual": exc.got}
    if isinstance(exc, ExpectedOffsetError | ExpectedKeyOffsetError):
        return {"expected": exc.expected, "actual": exc.actual}
    if isinstance(exc, ProducerFencedError):
        return {"expected": exc.current, "actual": exc.epoch}
    return None


HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    500: "INTERNAL",
    504: "DEADLINE_EXCEEDED",
}


def check_json_size(body: bytes, max_batch_records: int) -> None:
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
        check_text(h["key"], f"{where}.headers[{i}].key")
        headers.append(
            Header(key=h["key"], value=_b64(h.get("value", ""), f"{where}.headers[{i}].value"))
        )
    if not key and not headers:
        return value
    return Record(value=value, key=key, headers=headers)


def check_text(text: str, where: str) -> None:
    """Refuse a string no UTF-8 can hold (JSON's ``"\\ud800"`` gives a lone surrogate)."""
    # Refused here, not with a 500 when a protobuf string field is set.
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(f"{where} holds a lone UTF-16 surrogate") from None


async def read_body(request: web.Request) -> bytes:
    """The request body (at most the app's client_max_size, else aiohttp's 413)."""
    try:
        return await request.read()  # 413 from aiohttp over client_max_size
    except web.RequestPayloadError:  # a bad chunk or Content-Encoding in the body
        raise InvalidArgumentError(
            "the request body is malformed (bad chunk or encoding)"
        ) from None


async def json_body(request: web.Request) -> Any:
    """The request body parsed as JSON, its number of values bounded first."""
    body = await read_body(request)
    check_json_size(body, request.app[STATE_KEY].limits.max_batch_records)
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8, huge integers
        raise InvalidArgumentError("the request body is not valid JSON") from None


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as an integer in ``low..high`` (``default`` if absent)."""
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


def check_writable(state: HttpState) -> None:
    """Refuse a write while the server shuts down (certainly not applied)."""
    if state.draining:
        raise UnavailableError("the server is shutting down", certainly_not_applied=True)


_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cross_site_refusal(request: web.Request) -> str | None:
    """Why a browser's request from another site that would change something is refused
    (None: it is not one). A browser holding a client certificate (the console's users)
    presents it on requests any page makes, and a ``text/plain`` POST needs no CORS
    preflight: so a write whose ``Sec-Fetch-Site`` says another site, or whose ``Origin``
    is not this server's, is refused before anything runs. Clients that are not browsers
    send neither header and are not affected."""
    if request.method not in _UNSAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site", "")
    origin = request.headers.get("Origin")
    if site in ("cross-site", "same-site"):
        return f"a request from another site ({origin or site}) may not change anything here"
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return f"a request from another origin ({origin}) may not change anything here"
    return None
