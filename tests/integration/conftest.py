"""Real servers on ephemeral 127.0.0.1 ports: in-process (own thread + loop) and subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest

from replog.server.agent import Agent
from replog.server.settings import load_settings
from replog.v1 import admin_pb2_grpc, group_pb2_grpc


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class ThreadedServer:
    """An Agent running in its own event loop thread."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.data_dir = data_dir
        self.settings = {
            "data_dir": str(data_dir),
            "grpc_addr": "127.0.0.1:0",
            "http_addr": "127.0.0.1:0",
            "shutdown_grace_s": 5.0,
            **settings,
        }
        self.loop: asyncio.AbstractEventLoop | None = None
        self.agent: Agent | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ThreadedServer:
        """Start the server and wait until it listens."""
        started: Future[None] = Future()
        self.loop = asyncio.new_event_loop()

        def run() -> None:
            assert self.loop is not None
            asyncio.set_event_loop(self.loop)
            self.agent = Agent(load_settings(self.settings, env={}))
            try:
                self.loop.run_until_complete(self.agent.start())
            except BaseException as exc:
                started.set_exception(exc)
                return
            started.set_result(None)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.result(timeout=20)
        return self

    @property
    def grpc_address(self) -> str:
        assert self.agent is not None
        return self.agent.grpc_address

    @property
    def http_address(self) -> str:
        assert self.agent is not None
        return self.agent.http_address

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        """Shut down gracefully and stop the loop thread. Idempotent."""
        if self.loop is None or self.agent is None or self._thread is None:
            return
        if self.loop.is_running():
            self.call(self.agent.shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()
        self.loop = None


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ThreadedServer]]:
    servers: list[ThreadedServer] = []

    def make(data_dir: Path | None = None, **settings: Any) -> ThreadedServer:
        server = ThreadedServer(data_dir or tmp_path / f"data{len(servers)}", **settings)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(server_factory: Callable[..., ThreadedServer]) -> ThreadedServer:
    return server_factory()


class ServerProcess:
    """``replog serve`` in a subprocess, killed by PID at the end of the test."""

    def __init__(
        self, data_dir: Path, workdir: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.log_path = workdir / "server.log"
        self.ready_file = workdir / f"ready-{time.monotonic_ns()}.json"
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-c",
            "from replog.cli.app import main; main()",
            "serve",
            "--data-dir",
            str(data_dir),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--ready-file",
            str(self.ready_file),
            "--log-format",
            "json",
            *extra,
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=self.log_file, env=env)
        info = wait_until(self._ready, timeout=30, what="the server's ready file")
        self.grpc_address: str = info["grpc_addr"]
        self.http_address: str = info["http_addr"]

    def _ready(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}")
        if not self.ready_file.exists():
            return None
        data: dict[str, Any] = json.loads(self.ready_file.read_text())
        return data

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, and wait for the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the process if it still runs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log_file.close()


@pytest.fixture
def process_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    procs: list[ServerProcess] = []

    def make(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> ServerProcess:
        proc = ServerProcess(data_dir, tmp_path, *extra, env=env)
        procs.append(proc)
        return proc

    yield make
    for proc in procs:
        proc.kill()


@pytest.fixture
def stub_for() -> Iterator[Callable[[ThreadedServer], Any]]:
    """Groups and Admin stubs on a server's gRPC address; the channels close after the test."""
    channels: list[grpc.Channel] = []

    def make(server: ThreadedServer) -> Any:
        channel = grpc.insecure_channel(server.grpc_address)
        channels.append(channel)
        return group_pb2_grpc.GroupsStub(channel), admin_pb2_grpc.AdminStub(channel)

    yield make
    for channel in channels:
        channel.close()
