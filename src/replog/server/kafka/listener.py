"""The Kafka listener: an asyncio server that feeds each connection's bytes to the pure
codec and answers its requests in order.

A connection whose bytes break the framing or a request header is closed, with one log
line; one silent for ``idle_timeout_s`` is closed too. Nothing a client sends ends the
server or touches another connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from replog.errors import ConfigError, ProtocolError, UnsupportedError
from replog.server.kafka.codec import DEFAULT_MAX_FRAME_BYTES, FrameReader, decode_request
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.dispatch import answer
from replog.server.kafka.security import KafkaSecurity

__all__ = ["KafkaListener"]

log = logging.getLogger("replog.kafka")
_READ_BYTES = 256 * 1024


class KafkaListener:
    """Serves Kafka clients from ``ctx``'s topics once :meth:`start` has bound it."""

    def __init__(
        self,
        ctx: KafkaContext,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        idle_timeout_s: float = 600.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        """A listener over ``ctx``; frames over ``max_frame_bytes`` close their connection;
        ``security``: TLS, SASL and the ACL on every connection (``security.py``)."""
        self.ctx = ctx
        self.security = security
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout_s = idle_timeout_s
        self.address = ""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> str:
        """Listen on ``host:port`` (0: a free port); the bound ``HOST:PORT``.

        Raises ConfigError when the address cannot be bound."""
        try:
            self._server = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise ConfigError(f"cannot listen for Kafka on {host}:{port}: {exc.strerror}") from None
        bound = self._server.sockets[0].getsockname()
        self.address = f"{host}:{bound[1]}"
        return self.address

    async def stop(self) -> None:
        """Stop accepting and close every connection (requests in flight are dropped:
        Kafka clients retry them)."""
        self.ctx.draining = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # stop(): this connection ends with the listener
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        frames = FrameReader(self.max_frame_bytes)
        session = None  # security hook: TLS handshake, then who the connection is
        if self.security is not None:
            session = await self.security.open(writer, peer)
            if session is None:
                return
            frames.max_frame_bytes = session.frame_limit(self.max_frame_bytes)
        try:
            while not self.ctx.draining:
                data = await asyncio.wait_for(reader.read(_READ_BYTES), self.idle_timeout_s)
                if not data:
                    if frames.pending:
                        log.warning("kafka: the connection from %s ended inside a frame", peer)
                    return
                for frame in frames.feed(data):
                    response = await answer(self.ctx, decode_request(frame), session)
                    if session is not None:  # security hook: the limit grows once authenticated
                        frames.max_frame_bytes = session.frame_limit(self.max_frame_bytes)
                    if response is not None:
                        writer.write(response)
                        await writer.drain()
                    if session is not None and session.failed:  # as Kafka: one try a connection
                        return
        except (ProtocolError, UnsupportedError) as exc:
            log.warning("kafka: closing the connection from %s: %s", peer, exc)
        except TimeoutError:
            log.info("kafka: closing the connection from %s: idle", peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("kafka: closing the connection from %s after an internal error", peer)
