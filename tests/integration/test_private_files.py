"""What a node writes is private to its user: directories 0700, files 0600, whatever the umask.

The log holds every record ever produced; on a shared host a world-readable data directory
hands it to every local user (PostgreSQL refuses to start on one).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from replog.client import Client
from replog.v1 import log_pb2, log_pb2_grpc
from replog.v1.record_pb2 import Record
from tests.cluster.conftest import Cluster
from tests.integration.conftest import ThreadedServer, wait_until

SMALL_SEGMENTS = {"segment_bytes": 4096, "max_record_bytes": 1024}  # several segments


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: what a node gets from a plain shell
    try:
        yield
    finally:
        os.umask(old)


def loose_modes(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that is not 0700 (directory) / 0600."""
    found = []
    paths = [root, *root.rglob("*")]
    for path in paths:
        st = path.lstat()
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if stat.S_IMODE(st.st_mode) != want:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(st.st_mode):o}")
    assert len(paths) > 3, paths  # the tree really was written
    return found


def produce_some(address: str, count: int = 50) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = log_pb2_grpc.LogStub(channel)
        for i in range(count):
            stub.Produce(log_pb2.ProduceRequest(record=Record(value=b"secret %d" % i * 20)))


def test_a_single_node_writes_only_private_files_under_umask_022(
    umask_022: None, server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    data = tmp_path / "deep" / "data"
    server = server_factory(data, **SMALL_SEGMENTS)
    produce_some(server.grpc_address)
    server.stop()
    assert len(list((data / "topics" / "default" / "0").glob("*.store"))) > 1
    assert loose_modes(data) == []


def test_a_raft_node_writes_only_private_files_under_umask_022(
    umask_022: None, tmp_path: Path
) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start_node("n1", bootstrap=True, **SMALL_SEGMENTS)
        wait_until(node.is_leader, 10, "n1 to lead")
        produce_some(node.grpc_address)
        # The address book is written once the node has learnt its own address.
        wait_until((tmp_path / "n1" / "members.json").exists, 10, "members.json written")
    finally:
        cluster.stop_all()
    data = tmp_path / "n1"
    assert (data / "raft-state.json").exists() and (data / "members.json").exists()
    assert loose_modes(data) == []


def test_an_existing_world_readable_data_directory_is_tightened_on_open(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = server_factory(data)
    produce_some(server.grpc_address, 3)
    server.stop()
    for path in [data, *data.rglob("*")]:  # what an older build left behind
        path.chmod(0o755 if path.is_dir() else 0o644)
    server = server_factory(data)
    produce_some(server.grpc_address, 3)
    server.stop()
    assert loose_modes(data) == []


def test_a_cluster_node_writes_its_topics_partitions_privately_under_umask_022(
    umask_022: None, tmp_path: Path
) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start_node("n1", bootstrap=True, **SMALL_SEGMENTS)
        wait_until(node.is_leader, 10, "n1 to lead")
        with Client(node.grpc_address) as client:
            client.create_topic("orders", 2, replication_factor=1)
            for p in range(2):
                client.produce(b"secret", topic="orders", partition=p)
    finally:
        cluster.stop_all()
    data = tmp_path / "n1"
    assert (data / "topics" / "orders" / "1" / "raft-state.json").exists()
    assert loose_modes(data) == []
