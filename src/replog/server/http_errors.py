"""aiohttp's own error answers, as JSON like every other error of the HTTP API.

A request aiohttp's parser refuses (a bad request line or header, a header over the size
limit, conflicting lengths) never reaches the application or its middleware: the connection's
``RequestHandler.handle_error`` answers it, in text/plain, with the parser's message. Here a
RequestHandler subclass answers with ``{"error": {"code": ..., "message": ...}}`` instead, and
an AppRunner makes every connection use it.

A connection whose first bytes are another protocol's (gRPC's HTTP/2 preface, a TLS
handshake on the plaintext port) gets one log line naming the peer and the mistake.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from replog.server.http_app import HTTP_CODES, error_response

__all__ = ["JsonErrorAppRunner", "wrong_protocol"]

log = logging.getLogger("replog.server.http")

_MAX_DETAIL = 200


def _message(status: int, exc: BaseException | None) -> str:
    if status >= 500:
        return "internal server error" if status == 500 else "the request timed out"
    if isinstance(exc, HttpProcessingError) and exc.message:
        # The parser's first line says what is wrong; what follows it echoes the input.
        detail = exc.message.split("\n", 1)[0].split(": b'", 1)[0].rstrip(": ")
        return f"malformed HTTP request: {detail[:_MAX_DETAIL]}"
    return "malformed HTTP request"


def wrong_protocol(first: bytes) -> str | None:
    """What a connection to the HTTP port whose first bytes are ``first`` got wrong, or None
    when they may be HTTP/1."""
    if first.startswith(b"PRI * HTTP/2.0"):
        return "it speaks HTTP/2 (a gRPC client?); the gRPC API listens on the gRPC port"
    if len(first) >= 2 and first[0] == 0x16 and first[1] == 0x03:
        return "it began a TLS handshake, but this HTTP port is plaintext (use http://)"
    return None


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "an unknown peer")


class _JsonErrorHandler(RequestHandler):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._first_bytes = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._first_bytes and data:
            self._first_bytes = False
            mistake = wrong_protocol(data)
            if mistake is not None:
                log.warning("refused a connection from %s: %s", _peer(self.transport), mistake)
        super().data_received(data)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("a response is already under way; cannot send an error")
        if status >= 500:
            log.error("unexpected error handling a request from %s", request.remote, exc_info=exc)
        else:  # anyone who can connect can send these: no traceback, no noise
            log.debug("refused a request from %s: %s", request.remote, message)
        response = error_response(
            status, HTTP_CODES.get(status, "HTTP_ERROR"), _message(status, exc)
        )
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorAppRunner(web.AppRunner):
    """A ``web.AppRunner`` whose connections answer aiohttp's own errors in JSON."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _JsonErrorServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
