"""A small in-test network between ``replog serve`` processes: partitions per directed link.

Every node process gets its own *egress* proxy through the ``grpc_proxy`` environment variable,
which gRPC core honours for every outgoing channel (Raft streams, snapshots, joins, forwarded
produce calls): a node opens ``CONNECT host:port`` to its proxy, so the proxy knows both ends
of every connection: the source node (which listening port was dialled) and the destination
node (the CONNECT target, mapped to a node name through :meth:`NetProxy.register`). No
advertised-address setting is needed in ``src/`` and clients of the test talk to nodes
directly, as clients on either side of a real partition would.

A *directed link* ``(a, b)`` carries every byte flowing from node ``a`` to node ``b``, whichever
side opened the connection. Blocking a link behaves like ``iptables -j DROP`` with TCP
retransmission underneath: bytes in that direction are held (the proxy stops reading, so TCP
backpressure reaches the sender) and new connections between the pair are not established
until both directions are open again. Healing releases everything that was held, late, as a
real network would. :meth:`NetProxy.cut` closes a pair's connections (a reset).

The proxy runs an asyncio loop in one daemon thread; :meth:`NetProxy.stop` closes every
listener and connection and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

__all__ = ["NetProxy"]

_CHUNK = 64 * 1024
_HEADER_MAX = 8192


class _Link:
    """One direction between two nodes: open or blocked (an event the pumps wait on)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()


class NetProxy:
    """Egress proxies for named nodes and the link table that partitions them."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="net-proxy", daemon=True)
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._ports: dict[str, int] = {}
        self._names: dict[str, str] = {}  # "host:port" -> node name (every address ever used)
        self._links: dict[tuple[str, str], _Link] = {}
        self._conns: dict[tuple[str, str], set[asyncio.StreamWriter]] = {}
        self.connections: Counter[tuple[str, str]] = Counter()
        """How many connections each (source, destination) pair opened (to prove routing)."""
        self.unknown: list[str] = []
        """CONNECT targets that were not a registered node (refused)."""
        self._thread.start()

    # -- thread plumbing --------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` (a plain function) on the proxy loop and return its result."""
        done: Future[Any] = Future()

        def run() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=10)

    def _await(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- nodes ------------------------------------------------------------------------------

    def add_node(self, name: str) -> str:
        """Start ``name``'s egress proxy (once); return the ``grpc_proxy`` URL for its process."""
        if name not in self._servers:

            async def listen() -> asyncio.AbstractServer:
                return await asyncio.start_server(
                    lambda r, w: self._handle(name, r, w), "127.0.0.1", 0
                )

            server = self._await(listen())
            self._servers[name] = server
            self._ports[name] = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self._ports[name]}"

    def register(self, name: str, grpc_addr: str) -> None:
        """Say that ``name`` now listens on ``grpc_addr`` (older addresses stay known)."""
        self._call(self._names.__setitem__, grpc_addr, name)

    # -- faults -----------------------------------------------------------------------------

    def _link(self, src: str, dst: str) -> _Link:
        link = self._links.get((src, dst))
        if link is None:
            link = self._links[(src, dst)] = _Link()
        return link

    def block(self, src: str, dst: str) -> None:
        """Hold every byte from ``src`` to ``dst`` (one way) until healed."""
        self._call(lambda: self._link(src, dst).open.clear())  # noqa: PLW0108  (on the loop)

    def unblock(self, src: str, dst: str) -> None:
        """Let bytes from ``src`` to ``dst`` flow again (the held ones first)."""
        self._call(lambda: self._link(src, dst).open.set())  # noqa: PLW0108  (on the loop)

    def partition(self, *groups: Iterable[str]) -> None:
        """Block both directions between every pair of nodes in different groups."""
        sides = [set(g) for g in groups]
        for i, a in enumerate(sides):
            for b in sides[i + 1 :]:
                for x in a:
                    for y in b:
                        self.block(x, y)
                        self.block(y, x)

    def isolate(self, name: str, others: Iterable[str]) -> None:
        """Cut ``name`` off from every node in ``others`` (both directions)."""
        self.partition([name], [o for o in others if o != name])

    def heal(self) -> None:
        """Open every link."""

        def open_all() -> None:
            for link in self._links.values():
                link.open.set()

        self._call(open_all)

    def cut(self, a: str, b: str) -> None:
        """Close every open connection between ``a`` and ``b`` (a connection reset)."""

        def close() -> None:
            for key in ((a, b), (b, a)):
                for writer in list(self._conns.get(key, ())):
                    writer.close()

        self._call(close)

    def blocked(self) -> list[tuple[str, str]]:
        """The directed links currently blocked."""
        return self._call(lambda: sorted(k for k, v in self._links.items() if not v.open.is_set()))

    # -- connections ------------------------------------------------------------------------

    async def _handle(
        self, src: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream: asyncio.StreamWriter | None = None
        key: tuple[str, str] | None = None
        try:
            header = await reader.readuntil(b"\r\n\r\n")
            if len(header) > _HEADER_MAX:
                return
            parts = header.split(b"\r\n", 1)[0].split()
            if len(parts) < 2 or parts[0] != b"CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            target = parts[1].decode()
            dst = self._names.get(target)
            if dst is None:
                self.unknown.append(target)
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            key = (src, dst)
            self.connections[key] += 1
            self._conns.setdefault(key, set()).add(writer)
            out, back = self._link(src, dst), self._link(dst, src)
            while not (out.open.is_set() and back.open.is_set()):  # no handshake across a cut
                await asyncio.gather(out.open.wait(), back.open.wait())
            host, port = target.rsplit(":", 1)
            up_reader, upstream = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(
                self._pump(reader, upstream, out),
                self._pump(up_reader, writer, back),
                return_exceptions=True,
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:  # stop(): end quietly (asyncio logs a cancelled handler)
            return
        finally:
            if key is not None:
                self._conns.get(key, set()).discard(writer)
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        try:
            while True:
                if not link.open.is_set():
                    await link.open.wait()  # hold: stop reading, TCP backpressure builds up
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if not link.open.is_set():
                    await link.open.wait()  # read just before the block: deliver it late
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()  # the other side sees EOF/reset, so the peer's pump ends too

    # -- teardown ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Close every listener and connection and stop the thread. Idempotent."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            for link in self._links.values():
                link.open.set()
            for server in self._servers.values():
                server.close()
            for conns in self._conns.values():
                for writer in list(conns):
                    writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._await(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
