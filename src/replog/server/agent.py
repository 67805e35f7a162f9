"""The server process wiring: one Log, one backend, the gRPC and HTTP servers, shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl

from aiohttp import web
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from replog.errors import ConfigError
from replog.server.backend import SingleNodeBackend
from replog.server.grpc_service import SERVICE_NAME, LogService
from replog.server.http_app import HttpState, make_app
from replog.server.metrics import ServerMetrics
from replog.server.settings import ServerSettings, split_addr
from replog.storage import Log

__all__ = ["Agent", "serve"]

log = logging.getLogger("replog.server")

_GRPC_MAX_MESSAGE_BYTES = 128 * 1024 * 1024


class Agent:
    """Hosts the gRPC and HTTP APIs over one Log in the running event loop.

    ``start()`` opens the log and binds both servers (port 0 picks a free port; the real
    addresses are then in ``grpc_address`` and ``http_address``); ``shutdown()`` stops
    accepting, lets in-flight calls finish, and closes the log (flush + fsync).
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        registry: CollectorRegistry | None = None,
        http_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServerMetrics(registry)
        self._http_ssl_context = http_ssl_context  # the hook for TLS (next issue)
        self.grpc_address = ""
        self.http_address = ""
        self._log: Log | None = None
        self._backend: SingleNodeBackend | None = None
        self._grpc: aio.Server | None = None
        self._service: LogService | None = None
        self._health: health.aio.HealthServicer | None = None
        self._http_state: HttpState | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = False

    async def start(self) -> None:
        """Open the log and start listening on both APIs."""
        s = self.settings
        self._log = await asyncio.to_thread(Log, s.data_dir, s.log_config())
        try:
            await self._start_servers()
        except BaseException:
            await self.shutdown()
            raise
        log.info(
            "listening",
            extra={
                "grpc_addr": self.grpc_address,
                "http_addr": self.http_address,
                "data_dir": s.data_dir,
                "sync": s.sync,
            },
        )

    async def _start_servers(self) -> None:
        s = self.settings
        assert self._log is not None
        backend = SingleNodeBackend(
            self._log,
            server_id=s.server_id,
            rpc_addr=s.grpc_addr,
            on_appended=self.metrics.on_appended,
        )
        self._backend = backend
        backend.start()
        self.metrics.bind_log(lambda: backend.size_bytes, lambda: backend.segment_count)

        self._service = LogService(backend, self.metrics)
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", _GRPC_MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _GRPC_MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        self._grpc = server
        server.add_generic_rpc_handlers((self._service.generic_handler(),))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        host, _ = split_addr(s.grpc_addr, "grpc_addr")
        try:
            port = server.add_insecure_port(s.grpc_addr)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen for gRPC on {s.grpc_addr}: {exc}") from None
        if not port:
            raise ConfigError(f"cannot listen for gRPC on {s.grpc_addr}")
        await server.start()
        self.grpc_address = _join(host, port)
        backend.rpc_addr = self.grpc_address
        if not s.server_id:
            backend.server_id = self.grpc_address
        serving = health_pb2.HealthCheckResponse.SERVING
        await self._health.set("", serving)
        await self._health.set(SERVICE_NAME, serving)

        self._http_state = HttpState(backend, self.metrics)
        app = make_app(self._http_state, max_body_bytes=s.http_max_body_bytes)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=s.shutdown_grace_s
        )
        await runner.setup()
        self._runner = runner
        host, port = split_addr(s.http_addr, "http_addr")
        site = web.TCPSite(runner, host, port, ssl_context=self._http_ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen for HTTP on {s.http_addr}: {exc.strerror}") from None
        bound = runner.addresses[0]
        self.http_address = _join(host, int(bound[1]))

    async def shutdown(self) -> None:
        """Stop accepting, finish in-flight requests, close the log. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_s
        log.info("shutting down", extra={"grace_s": grace})
        if self._service is not None:
            self._service.draining = True
        if self._http_state is not None:
            self._http_state.draining = True
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._backend is not None:
            self._backend.begin_shutdown()  # refuses new appends, ends tailing streams
        if self._grpc is not None:
            await self._grpc.stop(grace)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._backend is not None:
            await self._backend.close()
        elif self._log is not None:
            await asyncio.to_thread(self._log.close)
        log.info("stopped")


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _write_ready_file(path: str, agent: Agent) -> None:
    data = {"grpc_addr": agent.grpc_address, "http_addr": agent.http_address, "pid": os.getpid()}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


async def serve(settings: ServerSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run a server until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully."""
    agent = Agent(settings)
    await agent.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.ready_file:
            _write_ready_file(settings.ready_file, agent)
        print(
            f"replog serving gRPC on {agent.grpc_address}, HTTP on http://{agent.http_address}",
            flush=True,
        )
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await agent.shutdown()
