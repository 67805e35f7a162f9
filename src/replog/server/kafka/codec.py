"""Kafka request and response framing and headers, with message bodies via ``kio``.

Pure (sans-I/O): a :class:`FrameReader` is fed the bytes a connection received and
hands back whole request frames; :func:`decode_request` parses a frame's header (v0-v2)
and body; :func:`encode_response` gives the bytes to send back. ``kio`` (Apache-2.0,
generated from Kafka's own JSON schemas) supplies the message classes and their codecs,
so no Kafka struct is written by hand here."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from kio.index import KioIndexError, load_request_schema
from kio.schema.request_header.v1.header import RequestHeader as HeaderV1
from kio.schema.request_header.v2.header import RequestHeader as HeaderV2
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError
from kio.static.protocol import RequestPayload, ResponsePayload

from replog.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "FrameReader",
    "Request",
    "RequestHeader",
    "decode_request",
    "encode_response",
    "request_schema",
]

DEFAULT_MAX_FRAME_BYTES = 100 * 1024 * 1024
"""Kafka's default ``socket.request.max.bytes``."""
_SIZE = struct.Struct(">i")
_FIXED = struct.Struct(">hhi")
_DECODE_ERRORS = (SerialError, ValueError, TypeError, IndexError, struct.error)


class FrameReader:
    """Cuts a connection's byte stream into request frames (an int32 size, then that
    many bytes); a frame whose size is negative or over ``max_frame_bytes`` is refused."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        """A reader that refuses frames larger than ``max_frame_bytes``."""
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The whole frames that ``data`` completes, in order (their size prefix removed).

        Raises ProtocolError for a frame size that is negative or over the limit; the
        stream cannot be resynchronised after it, so the connection must be closed."""
        self._buffer += data
        frames: list[bytes] = []
        position = 0
        while len(self._buffer) - position >= _SIZE.size:
            (size,) = _SIZE.unpack_from(self._buffer, position)
            if size < 0 or size > self.max_frame_bytes:
                raise ProtocolError(
                    f"request frame of {size} bytes (the limit is {self.max_frame_bytes})"
                )
            end = position + _SIZE.size + size
            if end > len(self._buffer):
                break
            frames.append(bytes(self._buffer[position + _SIZE.size : end]))
            position = end
        del self._buffer[:position]
        return frames


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The fields every request starts with."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request: its header and body (None when ``kio`` has no schema for that
    API key and version, which the server answers as unsupported)."""

    header: RequestHeader
    body: RequestPayload | None


def request_schema(api_key: int, api_version: int) -> type[RequestPayload] | None:
    """The kio request class for an API key and version, None when there is none."""
    try:
        return load_request_schema(api_key, api_version)
    except (KioIndexError, ImportError, ValueError, AttributeError):
        return None


def decode_request(frame: bytes) -> Request:
    """The header and body of one request frame (without its size prefix).

    Raises ProtocolError when the header or a known body does not parse or does not
    fill the frame exactly."""
    if len(frame) < _FIXED.size:
        raise ProtocolError(f"request frame of {len(frame)} bytes is shorter than a header")
    api_key, api_version, _ = _FIXED.unpack_from(frame)
    schema = request_schema(api_key, api_version)
    flexible_header = schema is not None and schema.__header_schema__ is HeaderV2
    header_class: Any = HeaderV2 if flexible_header else HeaderV1
    try:
        parsed, position = entity_reader(header_class)(frame, 0)
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"request header does not parse: {exc}") from None
    header = RequestHeader(api_key, api_version, parsed.correlation_id, parsed.client_id)
    if schema is None:
        return Request(header, None)
    try:
        body, size = entity_reader(schema)(memoryview(frame)[position:], 0)
    except _DECODE_ERRORS as exc:
        raise ProtocolError(f"{schema.__name__} v{api_version} does not parse: {exc}") from None
    if position + size != len(frame):
        raise ProtocolError(f"{len(frame) - position - size} bytes after {schema.__name__}")
    return Request(header, body)


def encode_response(correlation_id: int, body: ResponsePayload) -> bytes:
    """The frame (size prefix included) answering the request ``correlation_id`` with
    ``body``, its header in the version ``body``'s schema names (ApiVersions: always v0)."""
    buffer = io.BytesIO()
    buffer.write(_SIZE.pack(0))
    buffer.write(_SIZE.pack(correlation_id))
    if body.__header_schema__.__flexible__:
        buffer.write(b"\x00")  # no tagged fields
    entity_writer(type(body))(buffer, body)
    frame = buffer.getbuffer()
    _SIZE.pack_into(frame, 0, len(frame) - _SIZE.size)
    return bytes(frame)
