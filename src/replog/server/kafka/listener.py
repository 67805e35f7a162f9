"""The Kafka listener: an asyncio server that feeds each connection's bytes to the pure
codec and answers its requests in order.

A connection whose bytes break the framing or a request header is closed, with one log
line; one silent for ``idle_timeout_s`` is closed too. Nothing a client sends ends the
server or touches another connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from replog.errors import ConfigError, ProtocolError, UnsupportedError
from replog.server.kafka.codec import DEFAULT_MAX_FRAME_BYTES, FrameReader, decode_request
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.dispatch import answer, begin
from replog.server.kafka.security import KafkaSecurity, KafkaSession

__all__ = ["KafkaListener"]

log = logging.getLogger("replog.kafka")
_READ_BYTES = 256 * 1024
_PIPELINED = 16
"""Produce answers a connection may have pending (bounds the batches held per connection)."""


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
        """Answer the connection's requests in order. Produce requests are pipelined: each
        is submitted as soon as it is read (so appends keep the requests' order) and the
        next request is read while it is appended, up to ``_PIPELINED`` answers pending;
        any other request waits until every earlier one is answered, so it sees their
        effects, and is answered before the next is read."""
        peer = writer.get_extra_info("peername")
        frames = FrameReader(self.max_frame_bytes)
        session = None  # security hook: TLS handshake, then who the connection is
        if self.security is not None:
            session = await self.security.open(writer, peer)
            if session is None:
                return
            frames.max_frame_bytes = session.frame_limit(self.max_frame_bytes)
        answers: asyncio.Queue[Awaitable[bytes | None]] = asyncio.Queue(_PIPELINED)
        sender = asyncio.ensure_future(_send(answers, writer, peer))
        try:
            while not self.ctx.draining:
                data = await asyncio.wait_for(reader.read(_READ_BYTES), self.idle_timeout_s)
                if not data:
                    if frames.pending:
                        log.warning("kafka: the connection from %s ended inside a frame", peer)
                    break
                for frame in frames.feed(data):
                    request = decode_request(frame)
                    pipelined = begin(self.ctx, request) if _pipelines(session) else None
                    if pipelined is not None:
                        await answers.put(pipelined)
                        continue
                    await answers.join()
                    response = await answer(self.ctx, request, session)
                    if session is not None:  # security hook: the limit grows once authenticated
                        frames.max_frame_bytes = session.frame_limit(self.max_frame_bytes)
                    if response is not None:
                        writer.write(response)
                        await writer.drain()
                    if session is not None and session.failed:  # as Kafka: one try a connection
                        return
            await answers.join()  # the produces read before the end are answered
        except (ProtocolError, UnsupportedError) as exc:
            log.warning("kafka: closing the connection from %s: %s", peer, exc)
            await answers.join()
        except TimeoutError:
            log.info("kafka: closing the connection from %s: idle", peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("kafka: closing the connection from %s after an internal error", peer)
        finally:
            sender.cancel()  # the appends it awaits go on (data._outcome shields them)
            await asyncio.gather(sender, return_exceptions=True)
            _abandon(answers)


def _pipelines(session: KafkaSession | None) -> bool:
    """Whether a Produce may be pipelined on this connection: not before it authenticated
    nor under an ACL (those go through ``answer``, which checks them)."""
    return session is None or (session.authenticated and not session.checked)


_ABANDONED: set[asyncio.Future[bytes | None]] = set()
"""Answers nobody will read, run to their end (held here so they are not collected)."""


def _abandon(answers: asyncio.Queue[Awaitable[bytes | None]]) -> None:
    """Let the answers nobody will read finish unwritten: their appends were submitted and
    go on, and awaiting them keeps their outcomes from being reported as lost."""
    while not answers.empty():
        task = asyncio.ensure_future(answers.get_nowait())
        _ABANDONED.add(task)
        task.add_done_callback(_finished)
        answers.task_done()


def _finished(task: asyncio.Future[bytes | None]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()


async def _send(
    answers: asyncio.Queue[Awaitable[bytes | None]], writer: asyncio.StreamWriter, peer: object
) -> None:
    """Write each pipelined answer as it completes, in the order the requests came; after
    a failure the connection is closed and later answers are awaited but not written."""
    broken = False
    while True:
        pending = await answers.get()
        try:
            response = await pending
            if response is not None and not broken:
                writer.write(response)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            broken = True
            writer.close()
        except Exception:
            if not broken:
                log.exception("kafka: closing the connection from %s after an internal error", peer)
            broken = True
            writer.close()
        finally:
            answers.task_done()
