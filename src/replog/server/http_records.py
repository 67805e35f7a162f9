"""The record routes over one partition: produce one, produce a batch, read, read one, and
the event stream.

They are mounted twice with the same handlers: at ``/v1/records`` (the ``default`` topic's
partition 0, answers as before topics existed) and at
``/v1/topics/{name}/partitions/{p}/records`` (whose produce answers also give the partition).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from replog.api.backend import (
    NO_CONDITIONS,
    STALL_S,
    AppendValue,
    Conditions,
    DuplicateOffset,
    LogBackend,
)
from replog.errors import (
    BatchTooLargeError,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    ReplogError,
)
from replog.jsonform import record_to_json
from replog.server.auth import http_subject
from replog.server.http_common import (
    MAX_U64,
    STATE_KEY,
    HttpState,
    check_text,
    check_writable,
    int_param,
    json_body,
    read_body,
    record_from_json,
)
from replog.v1.record_pb2 import Record

__all__ = [
    "Resolve",
    "add_record_routes",
    "appended",
    "batch_values",
    "body_conditions",
    "one_value",
    "produce_body",
    "read_records",
]

MAX_RECORDS_LIMIT = 10_000
MAX_WAIT_MS_LIMIT = 60_000
KEEPALIVE_S = 15.0
READ_MAX_BYTES = 4 << 20
#: An event stream reads this much at a time: what it holds while its client is slow.
STREAM_READ_BYTES = 1 << 20

#: Finds the partition a request addresses: its backend, and the partition number its
#: produce answers report (None: the old routes, whose answers carry no partition).
Resolve = Callable[[web.Request], tuple[LogBackend, int | None]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_record_routes(router: web.UrlDispatcher, prefix: str, resolve: Resolve) -> None:
    """Add the five record routes under ``prefix``, reading and writing ``resolve``'s."""
    router.add_post(prefix, _produce(resolve))
    router.add_post(prefix + ":batch", _produce_batch(resolve))
    router.add_get(prefix + ":stream", _stream(resolve))
    router.add_get(prefix + "/{offset}", _consume_one(resolve))
    router.add_get(prefix, _consume(resolve))


def one_value(body: Any) -> AppendValue:
    """What to append for a ``{"record": {...}}`` body."""
    if not isinstance(body, dict) or "record" not in body:
        raise InvalidArgumentError('the body must be {"record": {...}}')
    return record_from_json(body["record"])


#: ``?encoding=`` of a produce: how its body carries the record.
ENCODINGS = ("base64", "utf8")
_MAX_KEY_PARAM = 4096


def body_encoding(request: web.Request) -> str:
    """How a produce's body carries its record: ``base64`` (the JSON body, the default) or
    ``utf8`` (the body is one record's value, UTF-8 text), from ``?encoding=`` or else the
    Content-Type (``text/plain`` is utf8). InvalidArgumentError for any other encoding."""
    named = request.query.get("encoding")
    if named is None:
        if request.content_type != "text/plain":
            return "base64"
        charset = (request.charset or "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise InvalidArgumentError(f"a text/plain body must be UTF-8, not {charset[:40]!r}")
        return "utf8"
    encoding = "utf8" if named.lower() == "utf-8" else named.lower()
    if encoding not in ENCODINGS:
        raise InvalidArgumentError(
            f"encoding must be base64 (a JSON body, the default) or utf8 (the body is the "
            f"value), got {named[:40]!r}"
        )
    return encoding


async def produce_body(request: web.Request) -> tuple[AppendValue, Conditions]:
    """The record of a one-record produce and its conditions: from the JSON body, or with
    ``encoding=utf8`` the raw body as the value and ``?key=`` (text) as the key."""
    key = request.query.get("key")
    if body_encoding(request) == "base64":
        if key is not None:
            raise InvalidArgumentError("?key= goes with encoding=utf8; a JSON body gives its key")
        body = await json_body(request)
        return one_value(body), body_conditions(body, producer=False)
    value = await read_body(request)
    try:
        value.decode()
    except UnicodeDecodeError:
        raise InvalidArgumentError("the body is not UTF-8 text (encoding=utf8)") from None
    if not key:
        return value, NO_CONDITIONS
    check_text(key, "key")
    if len(key) > _MAX_KEY_PARAM:
        raise InvalidArgumentError(f"key must be at most {_MAX_KEY_PARAM} characters")
    return Record(value=value, key=key.encode()), NO_CONDITIONS


def batch_encoding(request: web.Request) -> None:
    """Refuse an encoding other than base64 (the JSON body) for a batch."""
    if body_encoding(request) != "base64" or "key" in request.query:
        raise InvalidArgumentError(
            "a batch is a JSON body (encoding=base64); encoding=utf8 and ?key= take one record"
        )


def batch_values(state: HttpState, body: Any) -> list[AppendValue]:
    """What to append for a ``{"records": [{...}, ...]}`` body (1..max_batch_records)."""
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise InvalidArgumentError('the body must be {"records": [{...}, ...]}')
    records = body["records"]
    if not records:
        raise InvalidArgumentError("records must hold at least one record")
    if len(records) > state.limits.max_batch_records:
        raise BatchTooLargeError(len(records), state.limits.max_batch_records)
    return [record_from_json(r, f"records[{i}]") for i, r in enumerate(records)]


_U64 = 2**64
_CONDITION_RANGES = {
    "producer_id": (0, 2**63),
    "producer_epoch": (0, 2**32),
    "base_sequence": (0, 2**31),
    "expected_offset": (0, _U64),
    "expected_key_offset": (-1, 2**63),
}


def body_conditions(body: Any, *, producer: bool) -> Conditions:
    """The conditions of a produce body: ``expected_offset``, ``expected_key_offset`` and,
    when ``producer`` (a batch to a named partition), an idempotent producer's
    ``producer_id``, ``producer_epoch`` and ``base_sequence`` (see ProduceBatchRequest)."""
    if not isinstance(body, dict):
        return NO_CONDITIONS
    found: dict[str, int] = {}
    for name, (lo, hi) in _CONDITION_RANGES.items():
        if name not in body:
            continue
        value = body[name]
        if not producer and name in ("producer_id", "producer_epoch", "base_sequence"):
            raise InvalidArgumentError(f"{name} needs a batch to one partition (.../records:batch)")
        if type(value) is not int or not lo <= value < hi:
            raise InvalidArgumentError(f"{name} must be an integer in [{lo}, {hi})")
        found[name] = value
    if not found:
        return NO_CONDITIONS
    return Conditions(
        producer_id=found.get("producer_id", 0),
        producer_epoch=found.get("producer_epoch", 0),
        base_sequence=found.get("base_sequence", 0),
        expected_offset=found.get("expected_offset"),
        expected_key_offset=found.get("expected_key_offset"),
    )


def appended(base: int, count: int | None = None) -> dict[str, Any]:
    """The answer to a produce: its (base) offset, and whether it was a producer's retry."""
    answer: dict[str, Any] = {"offset": base} if count is None else {"base_offset": base}
    if count is not None:
        answer["count"] = count
    if isinstance(base, DuplicateOffset):
        answer["duplicate"] = True
    return answer


def _with_partition(answer: dict[str, Any], partition: int | None) -> web.Response:
    if partition is not None:
        answer["partition"] = partition
    return web.json_response(answer)


def _produce(resolve: Resolve) -> Handler:
    async def produce(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        check_writable(state)
        backend, partition = resolve(request)
        value, conditions = await produce_body(request)
        offset = await backend.submit([value], conditions)
        return _with_partition(appended(offset), partition)

    return produce


def _produce_batch(resolve: Resolve) -> Handler:
    async def produce_batch(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        check_writable(state)
        backend, partition = resolve(request)
        batch_encoding(request)
        body = await json_body(request)
        values = batch_values(state, body)
        conditions = body_conditions(body, producer=True)  # one partition: this route's
        base = await backend.submit(values, conditions)
        return _with_partition(appended(base, len(values)), partition)

    return produce_batch


def read_records(
    state: HttpState,
    backend: LogBackend,
    offset: int,
    max_records: int,
    max_bytes: int = READ_MAX_BYTES,
) -> tuple[list[Record], int]:
    """Records from ``offset`` and the offset the next read starts at (past control records)."""
    lowest, high = backend.lowest_offset, backend.high_watermark
    if not lowest <= offset <= high:
        raise OffsetOutOfRangeError(offset, lowest, high)
    payloads, next_offset = backend.read_from(offset, max_records, max_bytes)
    state.metrics.on_read("http", len(payloads), sum(map(len, payloads)))
    return [Record.FromString(p) for p in payloads], next_offset


def _consume_one(resolve: Resolve) -> Handler:
    async def consume_one(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        raw = request.match_info["offset"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 20 or int(raw) > MAX_U64:
            raise InvalidArgumentError(f"offset must be a non-negative 64-bit integer, got {raw!r}")
        backend, _ = resolve(request)
        offset = int(raw)
        records, _ = read_records(state, backend, offset, 1)
        if not records or records[0].offset != offset:  # a read skips control records
            raise OffsetOutOfRangeError(offset, backend.lowest_offset, backend.high_watermark)
        return web.json_response({"record": record_to_json(records[0])})

    return consume_one


def _consume(resolve: Resolve) -> Handler:
    async def consume(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        offset = int_param(request, "offset", 0, 0, MAX_U64)
        max_records = int_param(request, "max_records", 100, 1, MAX_RECORDS_LIMIT)
        wait_ms = int_param(request, "wait_ms", 0, 0, MAX_WAIT_MS_LIMIT)
        backend, _ = resolve(request)
        records, next_offset = read_records(state, backend, offset, max_records)
        if not records and wait_ms and await backend.wait_for_data(next_offset, wait_ms / 1000):
            records, next_offset = read_records(state, backend, next_offset, max_records)
        return web.json_response(
            {
                "records": [record_to_json(r) for r in records],
                "next_offset": next_offset,
                "high_watermark": backend.high_watermark,
            }
        )

    return consume


def _stream(resolve: Resolve) -> Handler:
    async def stream(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        offset = int_param(request, "offset", 0, 0, MAX_U64)
        backend, _ = resolve(request)
        read_records(state, backend, offset, 1)  # range check before the 200 goes out
        with state.limits.streams.hold(http_subject(request)):  # else 429 before the 200
            return await _send_events(request, state, backend, offset)

    return stream


async def _send_events(
    request: web.Request, state: HttpState, backend: LogBackend, offset: int
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        woken = False
        while not state.draining:  # each turn writes, moves past control records, or waits
            records, next_offset = read_records(state, backend, offset, 1000, STREAM_READ_BYTES)
            if records:
                chunk = "".join(
                    f"id: {r.offset}\nevent: record\ndata: {json.dumps(record_to_json(r))}\n\n"
                    for r in records
                )
                await response.write(chunk.encode())
            elif next_offset <= offset:
                if woken:  # woken, yet nothing to read: a backend bug must not spin the loop
                    await asyncio.sleep(STALL_S)
                woken = await backend.wait_for_data(offset, KEEPALIVE_S)
                if not woken:
                    await response.write(b": keep-alive\n\n")
                continue
            woken = False
            offset = max(offset, next_offset)
    except (ReplogError, ConnectionResetError):
        pass  # shutting down, the partition went away, or the client did: end the stream
    return response
