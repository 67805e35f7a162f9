"""The machine's own limits, measured in the same run as the peers: what no system on this
box can beat. Sequential write MB/s, fdatasync/s, and a loopback TCP round trip."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from peers_setup import LOOPBACK, Proc, start, wait_for

MiB = 1 << 20

ECHO = """
import socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    data = conn.recv(4096)
    if not data:
        break
    conn.sendall(data)
"""


def seq_write_mb_s(directory: Path, total_bytes: int) -> float:
    """1 MiB write() calls to a new file, then one fdatasync; MB/s (10^6) over it all."""
    path = directory / "seq.bin"
    chunk = os.urandom(MiB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start_t = time.perf_counter()
        for _ in range(total_bytes // MiB):
            os.write(fd, chunk)
        os.fdatasync(fd)
        elapsed = time.perf_counter() - start_t
    finally:
        os.close(fd)
        path.unlink()
    return total_bytes / elapsed / 1e6


def fdatasync_per_s(directory: Path, seconds: float) -> float:
    """Append 100 B and fdatasync, one after the other, for ``seconds``."""
    path = directory / "sync.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    record = os.urandom(100)
    try:
        count = 0
        start_t = time.perf_counter()
        deadline = start_t + seconds
        while time.perf_counter() < deadline:
            os.write(fd, record)
            os.fdatasync(fd)
            count += 1
        elapsed = time.perf_counter() - start_t
    finally:
        os.close(fd)
        path.unlink()
    return count / elapsed


def loopback_rtt(directory: Path, round_trips: int) -> dict[str, float]:
    """64 B ping-pong with an echo server in another process over 127.0.0.1 (TCP_NODELAY)."""
    procs: list[Proc] = []
    try:
        log = directory / "echo.log"
        log.unlink(missing_ok=True)  # it holds the port; an earlier run's must not be read
        proc = start("echo", [sys.executable, "-u", "-c", ECHO], log)
        procs.append(proc)
        port = wait_for(lambda: int(log.read_text().split()[0]), 10, "the echo server", procs)
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            payload = b"x" * 64
            samples = []
            for i in range(round_trips + 100):
                t0 = time.perf_counter()
                sock.sendall(payload)
                got = 0
                while got < len(payload):
                    data = sock.recv(4096)
                    if not data:
                        raise RuntimeError("echo server closed the connection")
                    got += len(data)
                if i >= 100:  # the first 100 warm up
                    samples.append(time.perf_counter() - t0)
    finally:
        for p in procs:
            p.stop()
    samples.sort()
    n = len(samples)
    return {"rtt_p50_us": samples[n // 2] * 1e6, "rtt_p99_us": samples[int(n * 0.99)] * 1e6}


def limits(directory: Path, quick: bool) -> dict[str, Any]:
    """One measurement of each limit (the caller repeats it for medians)."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "seq_write_mb_s": seq_write_mb_s(directory, (16 if quick else 256) * MiB),
        "fdatasync_per_s": fdatasync_per_s(directory, 0.2 if quick else 2.0),
    }
    out.update(loopback_rtt(directory, 500 if quick else 10_000))
    return out
