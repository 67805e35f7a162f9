"""What a node knows of the members: the address book (of two addresses of one node the later
epoch wins, wherever each was learnt: replicated record, the node's own message, another
node's gossip), its data directory's start-epoch counter and its cluster id."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from replog.cluster.members import (
    CLUSTER_ID_FILE,
    START_EPOCH_FILE,
    AddressBook,
    load_cluster_id,
    mark_join_pending,
    next_start_epoch,
    raft_id,
    raise_start_epoch,
    save_cluster_id,
)
from replog.errors import ConfigError


def test_the_address_of_the_latest_epoch_wins_in_any_order(tmp_path: Path) -> None:
    book = AddressBook(tmp_path / "members.json")
    book.learn("n1", "127.0.0.1:1001", epoch=10)  # n1 spoke to us before it restarted
    book.set("n1", "127.0.0.1:2002", epoch=20)  # then the record of its restart applied
    assert book.address(raft_id("n1")) == "127.0.0.1:2002"  # a stale word does not win
    book.set("n1", "127.0.0.1:1001", epoch=10)  # an old record applied late (catch-up)
    assert book.address(raft_id("n1")) == "127.0.0.1:2002"
    book.learn("n1", "127.0.0.1:3003", epoch=30)  # gossip of a newer start
    assert book.address(raft_id("n1")) == "127.0.0.1:3003"
    assert book.address(raft_id("nobody")) is None


def test_replicated_records_persist_and_reload_below_any_learnt_epoch(tmp_path: Path) -> None:
    path = tmp_path / "members.json"
    AddressBook(path).set("n2", "127.0.0.1:4004", epoch=40)
    assert json.loads(path.read_text()) == {"n2": "127.0.0.1:4004"}
    reloaded = AddressBook(path)
    assert reloaded.address(raft_id("n2")) == "127.0.0.1:4004"
    assert reloaded.gossip() == []  # what was only loaded from disk is not passed on
    reloaded.learn("n2", "127.0.0.1:5005", epoch=1)  # any word of a real epoch is newer
    assert reloaded.address(raft_id("n2")) == "127.0.0.1:5005"
    assert reloaded.gossip() == [("n2", "127.0.0.1:5005", 1)]
    reloaded.learn("n2", "", epoch=99)  # an empty address says nothing
    assert reloaded.address(raft_id("n2")) == "127.0.0.1:5005"


def test_the_cluster_id_is_drawn_at_bootstrap_learnt_at_a_join_and_empty_for_old_clusters(
    tmp_path: Path,
) -> None:
    first = tmp_path / "n1"
    drawn = load_cluster_id(str(first), bootstrap=True)
    assert drawn and load_cluster_id(str(first)) == drawn  # saved
    assert stat.S_IMODE((first / CLUSTER_ID_FILE).stat().st_mode) == 0o600
    joiner = tmp_path / "n2"
    assert load_cluster_id(str(joiner)) is None  # a fresh joiner does not know it yet
    mark_join_pending(str(joiner))
    (joiner / "raft-state.json").write_text("{}")  # it crashed after writing state
    assert load_cluster_id(str(joiner)) is None  # still unconfirmed
    save_cluster_id(str(joiner), drawn)
    assert load_cluster_id(str(joiner)) == drawn
    old = tmp_path / "n3"
    old.mkdir()
    (old / "raft-state.json").write_text("{}")  # a member from before cluster ids
    assert load_cluster_id(str(old), bootstrap=True) == ""


def test_every_start_of_a_data_dir_counts_one_epoch_higher_durably(tmp_path: Path) -> None:
    data = str(tmp_path / "n1")
    assert [next_start_epoch(data) for _ in range(3)] == [1, 2, 3]
    path = tmp_path / "n1" / START_EPOCH_FILE
    assert path.read_text() == "3\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raise_start_epoch(data, 2)  # never lowered
    assert next_start_epoch(data) == 4
    raise_start_epoch(data, 40)  # a leader gave this start a higher one
    assert next_start_epoch(data) == 41
    path.write_text("garbage\n")
    with pytest.raises(ConfigError, match="start-epoch"):
        next_start_epoch(data)


def test_a_joiner_whose_epoch_does_not_beat_the_known_one_gets_one_above_it(
    tmp_path: Path,
) -> None:
    book = AddressBook(tmp_path / "members.json")
    assert book.epoch_for("n1", "127.0.0.1:1", 1) == 1  # nothing known: its own
    book.learn("n1", "127.0.0.1:1", 7)  # the old incarnation's seventh start
    assert book.epoch_for("n1", "127.0.0.1:2", 8) == 8  # a later start of it
    assert book.epoch_for("n1", "127.0.0.1:1", 7) == 7  # the same word again
    assert book.epoch_for("n1", "127.0.0.1:2", 1) == 8  # wiped: counting from 1 again
    assert book.epoch_for("n1", "127.0.0.1:2", 7) == 8  # same epoch, another address


def test_a_data_dir_of_the_wall_clock_build_counts_on_from_its_clock_once(
    tmp_path: Path,
) -> None:
    old = tmp_path / "n1"
    old.mkdir()
    (old / "raft-state.json").write_text("{}")  # clustered, but no start-epoch yet
    before = time.time_ns()  # what that build stamped its records with, at the latest
    first = next_start_epoch(str(old))
    assert first >= before
    assert next_start_epoch(str(old)) == first + 1  # a counter from then on
