"""Three ``replog serve`` processes: bootstrap, join, produce with the CLI, kill -9, restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from replog.client import Client
from replog.errors import BatchTooLargeError
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


def _term(addr: str) -> int:
    from replog.v1 import cluster_pb2
    from tests.cluster.conftest import admin_call

    status = admin_call(addr, "Status", cluster_pb2.StatusRequest(), cluster_pb2.StatusResponse)
    return int(status.term)


def test_the_largest_batch_commits_without_a_leader_change_and_a_larger_one_is_refused(
    tmp_path: Path, process_factory: Callable[..., ServerProcess]
) -> None:
    # Issue 11 defect 2: one ProduceBatch of 300k small records kept the leader's loop busy
    # for seconds, the followers elected a new leader, and part of the batch was committed
    # while the producer was told "not written". A request is now at most
    # max_batch_records records (one atomic batch), small enough not to starve heartbeats.
    limit = 32768
    n1 = process_factory(tmp_path / "n1", "--node-id", "n1", "--bootstrap", *FAST)
    with Client(n1.grpc_address) as client:
        wait_until(lambda: _leader(client), 15, "n1 to lead")
    for name in ("n2", "n3"):
        process_factory(tmp_path / name, "--node-id", name, "--join", n1.grpc_address, *FAST)
    with Client(n1.grpc_address) as client:
        wait_until(lambda: len(client.servers()) == 3, 20, "three members")
        term = _term(n1.grpc_address)
        with pytest.raises(BatchTooLargeError):
            client.produce_batch([b"too many %d" % i for i in range(limit + 1)])
        _, count = client.produce_batch([b"r%07d" % i for i in range(limit)])
        assert count == limit
        assert _term(n1.grpc_address) == term, "the batch cost the leader its leadership"
        values: list[bytes] = []
        offset = 0
        while len(values) < limit:
            batch = client.consume_batch(offset, max_records=10_000)
            values += [r.value for r in batch.records]
            offset = batch.records[-1].offset + 1
        assert values == [b"r%07d" % i for i in range(limit)]
        assert not any(v.startswith(b"too many") for v in values)
