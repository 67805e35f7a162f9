"""Consumer group members as real processes: one killed with SIGKILL (no leave, no last
commit) has its partitions moved to the others within ``session_timeout_ms`` + 1 s, and
every record produced before and after is processed by the group (at least once, no gap)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from replog import Client
from replog.errors import NotFoundError
from tests.integration.conftest import ThreadedServer, wait_until

WORKER = Path(__file__).with_name("group_worker.py")
TOPIC = "jobs"
SESSION_MS = 3000


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[bytes], Path]]]:
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    yield started
    for proc, _ in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _start(server: ThreadedServer, tmp_path: Path, n: int) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / f"worker{n}.txt"
    out.touch()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, str(WORKER), server.grpc_address, "g", TOPIC, str(out)]
    proc = subprocess.Popen([*args, str(SESSION_MS)], env=env, stderr=subprocess.DEVNULL)
    return proc, out


def _values(files: list[Path]) -> list[str]:
    return [line.split()[2] for f in files for line in f.read_text().splitlines() if line]


def _owners(client: Client) -> dict[str, int]:
    try:
        members = client.describe_group("g").members
    except NotFoundError:  # no member has joined yet
        return {}
    return {m.member_id: len(m.assignment) for m in members}


def test_a_killed_members_partitions_move_within_the_session_and_no_record_is_missed(
    server: ThreadedServer,
    tmp_path: Path,
    workers: list[tuple[subprocess.Popen[bytes], Path]],
) -> None:
    with Client(server.grpc_address) as client:
        client.create_topic(TOPIC, 12)
        for p in range(12):
            client.produce_batch([b"a%d-%d" % (p, i) for i in range(50)], topic=TOPIC, partition=p)
        workers.extend(_start(server, tmp_path, n) for n in range(3))
        wait_until(lambda: sorted(_owners(client).values()) == [4, 4, 4], 30, "4 partitions each")
        files = [out for _, out in workers]
        wait_until(lambda: len(_values(files)) >= 600, 30, "the first wave consumed")
        victim, _ = workers[0]
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(10)
        wait_until(
            lambda: sorted(_owners(client).values()) == [6, 6], 30, "the survivors own all 12"
        )
        moved_s = time.monotonic() - killed_at
        for p in range(12):
            client.produce_batch([b"b%d-%d" % (p, i) for i in range(50)], topic=TOPIC, partition=p)
        wanted = {f"{w}{p}-{i}" for w in "ab" for p in range(12) for i in range(50)}
        wait_until(lambda: wanted <= set(_values(files)), 30, "every record processed")
    print(f"moved {moved_s:.2f} s after the kill")
    assert moved_s <= SESSION_MS / 1000 + 1, f"moved after {moved_s:.2f} s"
