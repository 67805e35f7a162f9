"""A single node with a signing key signs each partition's checkpoint as its log grows: origin
``<server id>/<topic>/<partition>``, the durable size, the root of the stored records; without
a key none is signed, and an unusable key stops the server from starting."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from replog.client import Client
from replog.errors import ConfigError
from replog.storage import Log
from replog.tlog.checkpoint import open_checkpoint
from replog.tlog.checkpoints import CheckpointStore
from replog.tlog.hashing import leaf_hash
from replog.tlog.keyfile import write_key_files
from replog.tlog.tree import MerkleTree
from tests.integration.conftest import ThreadedServer, wait_until

PARTITION = Path("topics") / "default" / "0"


def test_a_checkpoint_is_signed_for_the_records_produced(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys = write_key_files(tmp_path / "keys", "n1")
    data = tmp_path / "data"
    server = server_factory(
        data,
        tlog_tiles=True,
        server_id="n1",
        signing_key=str(keys.private),
        checkpoint_interval_ms=20,
    )
    with Client(server.grpc_address) as client:
        client.produce_batch([f"record {i}".encode() for i in range(300)])
    store = CheckpointStore(data / PARTITION / "tlog" / "checkpoints")
    wait_until(lambda: store.latest_size() == 300, 10, "the checkpoint of 300 records")
    with Client(server.grpc_address) as client:
        client.produce_batch([b"more"] * 5)
    wait_until(lambda: store.latest_size() == 305, 10, "the checkpoint of 305 records")
    server.stop()
    checkpoint = open_checkpoint(store.read(305), keys.verifier, origin="n1/default/0")
    with Log(data / PARTITION) as log_:
        payloads = log_.read_payloads(0, max_records=1_000, max_bytes=1 << 24)
    assert checkpoint.root == MerkleTree.from_leaf_hashes(map(leaf_hash, payloads)).root()
    assert stat_mode(store.directory / "305") == 0o600


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_without_a_key_no_checkpoint_is_signed(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    server = server_factory(tmp_path / "data", tlog_tiles=True, checkpoint_interval_ms=20)
    with Client(server.grpc_address) as client:
        client.produce_batch([b"x"] * 10)
    assert server.agent is not None and server.agent.checkpointer is None
    server.stop()
    assert not (tmp_path / "data" / PARTITION / "tlog" / "checkpoints").exists()


def test_a_signing_key_others_may_read_stops_the_server_from_starting(
    server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    keys = write_key_files(tmp_path / "keys", "n1")
    os.chmod(keys.private, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        server_factory(tmp_path / "data", tlog_tiles=True, signing_key=str(keys.private))
