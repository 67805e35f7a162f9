"""One ``replog serve`` subprocess on 127.0.0.1 for a benchmark: a fresh temporary data
directory, free ports, started and waited for, killed and removed afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from replog.client import Client

__all__ = ["REPLOG", "free_port", "local_server"]

REPLOG = str(Path(sys.executable).with_name("replog"))
"""The ``replog`` command of the interpreter running the benchmark."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def local_server(*args: str, prefix: str = "replog-bench-") -> Iterator[str]:
    """A fresh ``replog serve`` with ``args`` (e.g. ``--sync never``); yields its gRPC
    address once it answers, kills it and removes its data directory at the end."""
    data = tempfile.mkdtemp(prefix=prefix)
    grpc_port, http_port = free_port(), free_port()
    cmd = [REPLOG, "serve", "--data-dir", data, *args]
    cmd += ["--grpc-addr", f"127.0.0.1:{grpc_port}", "--http-addr", f"127.0.0.1:{http_port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    addr = f"127.0.0.1:{grpc_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with Client(addr, timeout=1) as probe:
                    probe.servers()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield addr
    finally:
        proc.kill()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)
