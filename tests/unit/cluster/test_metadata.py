"""Metadata: the controller state folded from the controller log's kind-4 entries."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from replog.cluster.controller_commands import (
    METADATA_RECORD_TYPE,
    CreateTopic,
    DeleteTopic,
    RegisterNode,
)
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.metadata import Metadata
from replog.cluster.raft_node import RaftNode
from replog.errors import AlreadyExistsError, UnsupportedError
from replog.raft.messages import Entry, HardState, Membership


def _store(path: Path, commands: list[bytes], commit: int) -> ReplogLogStore:
    store = ReplogLogStore(path, bootstrap=Membership(frozenset({1})))
    entries = [Entry(1, i, METADATA_RECORD_TYPE, data) for i, data in enumerate(commands, 1)]
    store.append(entries)
    store.save_hard_state(HardState(1, 1, commit, Membership(frozenset({1}))))
    store.flush()
    return store


def _metadata(store: ReplogLogStore) -> Metadata:
    return Metadata(RaftNode(store, 1, random.Random()), store, lambda node: None)


COMMANDS = [
    RegisterNode("n1", "127.0.0.1:1").encode(),
    RegisterNode("n2", "127.0.0.1:2").encode(),
    CreateTopic("orders", 4, 2, {"retention.ms": "1000"}).encode(),
    CreateTopic("orders", 1, 1, {}).encode(),  # refused when it applies: already exists
    DeleteTopic("orders").encode(),
]


def test_a_rebuild_replays_the_metadata_entries_up_to_the_saved_commit_only(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path, COMMANDS, commit=4)  # the delete is not committed yet
    metadata = _metadata(store)
    changes: list[int] = []
    metadata.listeners.append(lambda old, new: changes.append(new.version))
    metadata.rebuild()
    state = metadata.state
    assert sorted(state.nodes) == ["n1", "n2"]
    orders = state.topics["orders"]
    assert len(orders.partitions) == 4 and orders.topic_id == 3
    assert orders.config == {"retention_ms": "1000"}
    assert all(len(p.replicas) == 2 and len(set(p.replicas)) == 2 for p in orders.partitions)
    assert state.version == 4  # the refused create still advanced the version
    assert changes == [1, 2, 3]  # the refusal changed nothing: no listener call
    store.close()


def test_a_command_refused_when_it_applies_is_kept_for_its_proposer(tmp_path: Path) -> None:
    store = _store(tmp_path, COMMANDS, commit=5)
    metadata = _metadata(store)
    metadata.rebuild()
    assert isinstance(metadata._refusals.pop(4), AlreadyExistsError)
    assert "orders" not in metadata.state.topics  # the delete at 5 applied
    store.close()


def test_a_metadata_encoding_this_node_does_not_know_stops_the_apply(tmp_path: Path) -> None:
    future = json.dumps({"v": 99, "type": "create_topic"}).encode()
    store = _store(tmp_path, [*COMMANDS[:2], future], commit=3)
    metadata = _metadata(store)
    with pytest.raises(UnsupportedError):
        metadata.rebuild()
    assert metadata.state.version == 2  # never skipped: nothing after it applies either
    store.close()


def test_bytes_that_are_no_command_apply_as_a_no_op_on_every_node(tmp_path: Path) -> None:
    store = _store(tmp_path, [COMMANDS[0], b"not json", COMMANDS[1]], commit=3)
    metadata = _metadata(store)
    metadata.rebuild()
    assert sorted(metadata.state.nodes) == ["n1", "n2"] and metadata.state.version == 3
    store.close()
