"""Peers' plumbing for bench_peers.py: installing them, free ports, processes, versions.

Every process started here is a ``Proc`` and is stopped by its PID (SIGTERM, then SIGKILL
after a grace period) by whoever started it, in a ``finally`` block.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

LOOPBACK = "127.0.0.1"

# executable -> Debian package; Python module -> PyPI distribution
APT_PACKAGES = {"redis-server": "redis-server", "nats-server": "nats-server"}
PIP_PACKAGES = {"redis": "redis", "hiredis": "hiredis", "nats": "nats-py"}
# which peer needs what
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "redis": (("redis-server",), ("redis", "hiredis")),
    "nats": (("nats-server",), ("nats",)),
}


def have_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _run(cmd: Sequence[str], timeout: float, say: Callable[[str], None]) -> bool:
    say("  $ " + " ".join(cmd))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"    failed: {exc}")
        return False
    if proc.returncode != 0:
        say(f"    failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-400:].strip()}")
    return proc.returncode == 0


def _apt_install(package: str, say: Callable[[str], None], updated: list[bool]) -> bool:
    if shutil.which("apt-get") is None:
        say(f"  no apt-get here: cannot install {package}")
        return False
    if _run(["apt-get", "install", "-y", "-q", package], 600, say):
        return True
    if not updated[0]:  # an old package list is the usual cause; refresh it once
        updated[0] = True
        _run(["apt-get", "update", "-q"], 600, say)
        return _run(["apt-get", "install", "-y", "-q", package], 600, say)
    return False


def ensure_peer(peer: str, install: bool, say: Callable[[str], None], updated: list[bool]) -> str:
    """Make the peer's server binary and Python client available; return "" when ready or
    the reason it is not. Installs only what is missing, and only when ``install``."""
    binaries, modules = NEEDS[peer]
    for binary in binaries:
        if shutil.which(binary):
            continue
        if not install:
            return f"`{binary}` is not installed (--quick does not install peers)"
        say(f"{binary} missing: installing Debian package {APT_PACKAGES[binary]}")
        if not _apt_install(APT_PACKAGES[binary], say, updated) or not shutil.which(binary):
            return f"could not install Debian package `{APT_PACKAGES[binary]}`"
    for module in modules:
        if have_module(module):
            continue
        if not install:
            return f"Python module `{module}` is missing (--quick does not install peers)"
        dist = PIP_PACKAGES[module]
        say(f"Python module {module} missing: pip install {dist}")
        pip = [sys.executable, "-m", "pip", "install", "--quiet", dist]
        importlib.invalidate_caches()
        if not _run(pip, 600, say) or not have_module(module):
            return f"could not pip install `{dist}`"
    return ""


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for servers that cannot take :0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A started server process; ``stop`` ends it by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(10)
        if self.log is not None:
            self.log.close()
            self.log = None


def start(name: str, cmd: Sequence[str], log_path: Path, **kwargs: Any) -> Proc:
    log = open(log_path, "ab")  # noqa: SIM115 - closed by Proc.stop
    try:
        popen = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, **kwargs)
    except BaseException:
        log.close()
        raise
    print(f"  started {name} (pid {popen.pid})", flush=True)
    return Proc(name, popen, log)


@contextlib.contextmanager
def running(procs: list[Proc]) -> Iterator[list[Proc]]:
    """Stop every process in ``procs`` (appended to while inside) on the way out."""
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            proc.stop()


def wait_for(check: Callable[[], Any], seconds: float, what: str, procs: Sequence[Proc]) -> Any:
    """Poll ``check`` until truthy (returned) or the deadline; fail early if a process died."""
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}) before {what}")
        try:
            value = check()
        except Exception as exc:
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _output(cmd: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (
        (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.stdout or proc.stderr else ""
    )


def versions() -> dict[str, str]:
    """Versions of every server and client taking part (absent ones say so)."""

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    out = {"replog": dist("replog"), "grpcio": dist("grpcio")}
    out["redis-server"] = (
        _output(["redis-server", "--version"]) if shutil.which("redis-server") else "not installed"
    )
    out["nats-server"] = (
        _output(["nats-server", "--version"]) if shutil.which("nats-server") else "not installed"
    )
    for name in ("redis", "hiredis", "nats-py", "matplotlib"):
        out[name + " (Python)"] = dist(name)
    return out
