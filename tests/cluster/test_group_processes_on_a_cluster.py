"""A consumer group of real processes on a 3-node cluster of real processes: the node that
leads most of the topic's partitions (and perhaps the group's coordinator) is killed with
SIGKILL while the group consumes, and every record produced before and after is still
processed by the group (at least once, no gap)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from replog import Client, Producer
from tests.cluster.conftest import ProcCluster, wait_until
from tests.cluster.test_partitions_faults import BALANCE, create_topic, leaders

WORKER = Path(__file__).parents[1] / "integration" / "group_worker.py"
TOPIC = "jobs"
PARTITIONS = 6


@pytest.fixture
def procs(direct_procs: ProcCluster) -> ProcCluster:
    """The processes talk straight to each other: no network fault here."""
    return direct_procs


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _values(files: list[Path]) -> set[str]:
    return {line.split()[2] for f in files for line in f.read_text().splitlines() if line}


def _produce(procs: ProcCluster, tag: str) -> set[str]:
    values = {f"{tag}{p}-{i}" for p in range(PARTITIONS) for i in range(40)}
    with Client(procs.addresses(), timeout=10) as client, Producer(client, topic=TOPIC) as producer:
        futures = [producer.send(v.encode(), key=v.encode()) for v in sorted(values)]
        for future in futures:
            future.result(60)
    return values


def test_the_group_processes_every_record_across_a_kill_9_of_the_busiest_leader(
    procs: ProcCluster, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    procs.bootstrap(3, *BALANCE)
    create_topic(procs, TOPIC, PARTITIONS)
    wanted = _produce(procs, "a")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    files = [tmp_path / f"worker{n}.txt" for n in range(2)]
    for out in files:
        out.touch()
        args = [sys.executable, str(WORKER), ",".join(procs.addresses()), "g", TOPIC, str(out)]
        workers.append(subprocess.Popen([*args, "4000"], env=env, stderr=subprocess.DEVNULL))
    wait_until(lambda: wanted <= _values(files), 60, "the first wave consumed")
    led = wait_until(lambda: leaders(procs, TOPIC), 20, "every partition led")
    busiest = Counter(led.values()).most_common(1)[0][0]
    procs.nodes[busiest].kill()
    wanted |= _produce(procs, "b")
    wait_until(lambda: wanted <= _values(files), 90, "every record processed after the kill")
