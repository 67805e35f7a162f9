"""Three ``replog serve`` processes: bootstrap, join, produce with the CLI, kill -9, restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from replog.client import Client
from tests.integration.conftest import ServerProcess, wait_until

FAST = ("--log-level", "warning")


def _cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-c", "from replog.cli.app import main; main()", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=60, check=False)


def _leader(client: Client) -> str:
    leaders = [s.rpc_addr for s in client.servers() if s.is_leader]
    return leaders[0] if leaders else ""


def test_three_processes_keep_acknowledged_records_through_a_kill_and_restart(
    tmp_path: Path, process_factory: Callable[..., ServerProcess]
) -> None:
    n1 = process_factory(tmp_path / "n1", "--node-id", "n1", "--bootstrap", *FAST)
    with Client(n1.grpc_address) as client:
        wait_until(lambda: _leader(client), 15, "n1 to lead")
    n2 = process_factory(tmp_path / "n2", "--node-id", "n2", "--join", n1.grpc_address, *FAST)
    n3 = process_factory(tmp_path / "n3", "--node-id", "n3", "--join", n1.grpc_address, *FAST)
    with Client(n1.grpc_address) as client:
        wait_until(lambda: len(client.servers()) == 3, 20, "three members")
    lines = b"".join(b"line %d\n" % i for i in range(200))
    done = _cli("produce", "--server", n2.grpc_address, stdin=lines)
    assert done.returncode == 0, done.stderr
    victim = n1
    victim.kill()  # SIGKILL, by PID
    with Client(n3.grpc_address) as client:
        wait_until(lambda: _leader(client) not in ("", n1.grpc_address), 15, "a new leader")
        client.produce(b"after the kill")
    restarted = process_factory(tmp_path / "n1", "--node-id", "n1", *FAST)  # no --bootstrap/--join
    with Client(restarted.grpc_address) as client:
        wait_until(
            lambda: len(client.consume_batch(0, max_records=1000).records) == 201, 20, "catch-up"
        )
        values = [r.value for r in client.consume_batch(0, max_records=1000).records]
    assert values == [b"line %d" % i for i in range(200)] + [b"after the kill"]
