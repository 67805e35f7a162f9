"""Controller snapshot files: written privately and atomically, read back only when valid,
pruned, and checked against the records they travel with to a follower."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from replog.cluster.controller import apply
from replog.cluster.controller_commands import CreateTopic, RegisterNode
from replog.cluster.controller_files import ControllerSnapshots, decode_file, encode_file
from replog.cluster.controller_snapshot import encode_state
from replog.cluster.controller_state import ControllerState
from replog.cluster.metadata import empty_state
from replog.cluster.snapshot import group_state_of, set_group_state
from replog.errors import InvalidArgumentError, UnavailableError
from replog.storage.files import OsFileSystem
from replog.v1 import raft_pb2


def _state(topics: int) -> ControllerState:
    state = apply(empty_state(), RegisterNode("n1", "127.0.0.1:1"), 1)
    for i in range(topics):
        state = apply(state, CreateTopic(f"t{i}", 2, 1, {"retention.ms": "1000"}), i + 2)
    return state


def test_a_snapshot_is_written_private_and_atomically_and_read_back_equal(
    tmp_path: Path,
) -> None:
    snaps = ControllerSnapshots(tmp_path)
    snaps.write(7, 2, _state(3))
    [saved] = ControllerSnapshots(tmp_path).load()
    assert (saved.index, saved.term) == (7, 2)
    assert encode_state(saved.state) == encode_state(_state(3))
    path = snaps.path(7)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left
    assert snaps.newest_index == 7 and snaps.newest_version == 4


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "renamed"])
def test_a_damaged_snapshot_is_ignored_for_the_older_one(tmp_path: Path, damage: str) -> None:
    snaps = ControllerSnapshots(tmp_path)
    snaps.write(5, 1, _state(1))
    snaps.write(9, 1, _state(2))
    newest = snaps.path(9)
    data = bytearray(newest.read_bytes())
    if damage == "flip":
        data[-3] ^= 0x01
        newest.write_bytes(bytes(data))
    elif damage == "truncate":
        newest.write_bytes(bytes(data[:-1]))
    elif damage == "empty":
        newest.write_bytes(b"")
    else:  # the file of another index under this name: never taken for index 9
        newest.write_bytes(snaps.path(5).read_bytes())
    loaded = ControllerSnapshots(tmp_path)
    assert [s.index for s in loaded.load()] == [5]
    assert loaded.newest_index == 5
    assert loaded.indexes() == [9, 5]  # kept on disk for an operator to look at


def test_a_checksum_covers_index_term_and_state(tmp_path: Path) -> None:
    data = bytearray(encode_file(12, 3, _state(1)))
    assert decode_file(bytes(data)).index == 12
    for position in (8, 16, len(data) - 1):  # the index, the term, the state
        broken = bytearray(data)
        broken[position] ^= 0x40
        with pytest.raises(InvalidArgumentError):
            decode_file(bytes(broken))


def test_writing_keeps_the_new_snapshot_one_older_and_any_newer(tmp_path: Path) -> None:
    snaps = ControllerSnapshots(tmp_path)
    for index in (3, 6, 9):
        snaps.write(index, 1, _state(1))
    assert snaps.indexes() == [9, 6]
    snaps.write(4, 1, _state(1))  # an older one received from a leader: newer ones stay
    assert snaps.indexes() == [9, 6, 4]
    (tmp_path / "controller-00000000000000000009.snapshot.tmp").write_bytes(b"half")
    snaps.write(10, 1, _state(2))
    assert snaps.indexes() == [10, 9]
    ControllerSnapshots(tmp_path)  # a crash's temp files go at the next start (not mid-run:
    assert not list(tmp_path.glob("*.tmp"))  # another thread's write may be filling one)


def test_the_snapshot_sent_is_the_newest_the_records_continue(tmp_path: Path) -> None:
    snaps = ControllerSnapshots(tmp_path)
    snaps.write(40, 1, _state(1))
    snaps.write(80, 1, _state(2))
    assert decode_file(snaps.outgoing(100, 41)).index == 80
    assert decode_file(snaps.outgoing(79, 41)).index == 40  # 80 is past the records
    assert snaps.outgoing(30, 1) == b""  # the records alone rebuild it all
    with pytest.raises(UnavailableError):
        snaps.outgoing(100, 90)  # deleted below 89, and no snapshot there (yet)


def test_a_received_snapshot_is_kept_only_if_the_records_continue_it(tmp_path: Path) -> None:
    sender, receiver = ControllerSnapshots(tmp_path / "a"), ControllerSnapshots(tmp_path / "b")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = sender.write(50, 2, _state(2)).data
    for first, index in ((60, 90), (10, 40)):  # records after a gap, or ending before it
        with pytest.raises(InvalidArgumentError):
            receiver.accept(data, first, index)
    with pytest.raises(InvalidArgumentError):
        receiver.accept(b"", 20, 90)  # records that do not start at 1 need a state
    with pytest.raises(InvalidArgumentError):
        receiver.accept(data[:-1], 51, 90)
    assert receiver.indexes() == []
    receiver.accept(b"", 1, 90)  # nothing to keep: the records hold everything
    receiver.accept(data, 51, 90)
    assert receiver.indexes() == [50] and receiver.newest_index == 50


def test_the_group_state_travels_in_the_first_chunk_as_field_10() -> None:
    chunk = raft_pb2.SnapshotChunk(from_id="n1", first_offset=7, group="")
    state = encode_file(6, 1, _state(40))
    set_group_state(chunk, state)
    wire = chunk.SerializeToString()
    received = raft_pb2.SnapshotChunk.FromString(wire)
    assert group_state_of(received) == state and received.first_offset == 7
    assert group_state_of(raft_pb2.SnapshotChunk(from_id="n1")) == b""
    # field 10, length-delimited (tag 0x52), as `bytes group_state = 10` is encoded
    size = len(state)
    assert 128 <= size < 16384
    assert wire.endswith(bytes([0x52, size & 0x7F | 0x80, size >> 7]) + state)


class _Interleaving(OsFileSystem):
    """Runs ``between`` once, when the first writer has filled its temp file and is about
    to rename it: the point another thread's write may reach its _prune."""

    def __init__(self) -> None:
        super().__init__()
        self.between = None

    def replace(self, source: str, target: str) -> None:
        hook, self.between = self.between, None
        if hook is not None:
            hook()
        super().replace(source, target)


def test_a_write_meanwhile_does_not_break_another_and_leftover_temps_go_at_start(
    tmp_path: Path,
) -> None:
    fs = _Interleaving()
    snaps = ControllerSnapshots(tmp_path, fs)
    state = empty_state()
    # e.g. save_snapshot's worker thread writes index 10 while the loop thread installs a
    # leader's snapshot at index 20 (Metadata.installed -> snapshots.write).
    fs.between = lambda: snaps.write(20, 1, state)
    snaps.write(10, 1, state)  # FileNotFoundError: its .tmp was pruned by the other write
    assert {s.index for s in snaps.load()} == {10, 20}
    leftover = tmp_path / "controller-00000000000000000030.snapshot.tmp"
    leftover.write_bytes(b"torn")
    ControllerSnapshots(tmp_path)  # a restart: what a crash left behind goes
    assert not leftover.exists()
