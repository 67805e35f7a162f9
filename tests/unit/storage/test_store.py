"""Store: framing, positions, buffered reads and truncation."""

from __future__ import annotations

import pytest

from replog.storage.codec import FRAME_HEADER_BYTES, encode_frames
from replog.storage.faultfs import FaultyFileSystem
from replog.storage.store import Store, StoreCorruptionError

D = "/d"


@pytest.fixture
def store(fault_fs: FaultyFileSystem) -> Store:
    fault_fs.makedirs(D)
    return Store(fault_fs, f"{D}/s.store")


def test_appends_return_their_size_and_consecutive_positions(store: Store) -> None:
    assert store.append(b"abc") == (FRAME_HEADER_BYTES + 3, 0)
    assert store.append(b"de") == (FRAME_HEADER_BYTES + 2, FRAME_HEADER_BYTES + 3)
    assert store.size == 2 * FRAME_HEADER_BYTES + 5


def test_reads_see_buffered_frames_before_any_flush(
    store: Store, fault_fs: FaultyFileSystem
) -> None:
    _, position = store.append(b"payload")
    assert fault_fs.read_bytes(store.path) == b""
    assert store.read(position) == b"payload"
    assert store.read_at(3, FRAME_HEADER_BYTES) == b"pay"


def test_a_size_hint_reads_the_frame_in_one_go_and_a_wrong_small_one_still_works(
    store: Store,
) -> None:
    size, position = store.append(b"x" * 50)
    assert store.read(position, size) == b"x" * 50
    assert store.read(position, FRAME_HEADER_BYTES + 1) == b"x" * 50


def test_append_frames_puts_preframed_bytes_at_the_end(store: Store) -> None:
    store.append(b"first")
    frames, starts = encode_frames([b"a", b"bb"])
    position = store.append_frames(frames)
    assert [store.read(position + s) for s in starts] == [b"a", b"bb"]


def test_a_flipped_payload_byte_fails_the_crc(store: Store, fault_fs: FaultyFileSystem) -> None:
    store.append(b"abcdef")
    store.flush()
    data = bytearray(fault_fs.read_bytes(store.path))
    data[-1] ^= 1
    fault_fs.write_bytes(store.path, bytes(data))
    with pytest.raises(StoreCorruptionError):
        store.read(0)


def test_a_frame_running_past_the_end_is_torn(store: Store, fault_fs: FaultyFileSystem) -> None:
    store.append(b"abcdef")
    store.flush()
    fault_fs.write_bytes(store.path, fault_fs.read_bytes(store.path)[:-2])
    reopened = Store(fault_fs, store.path)
    with pytest.raises(StoreCorruptionError):
        reopened.read(0)


def test_scan_finds_every_frame_and_the_end(store: Store) -> None:
    for value in (b"a", b"b" * 100, b"c"):
        store.append(value)
    scan = store.scan(0, 1000)
    assert scan.payloads == [b"a", b"b" * 100, b"c"]
    assert (scan.end, scan.stop) == (store.size, "end")


def test_scan_reads_frames_that_straddle_its_chunks(
    fault_fs: FaultyFileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    import replog.storage.store as store_module

    monkeypatch.setattr(store_module, "_SCAN_CHUNK_BYTES", 50)
    fault_fs.makedirs(D)
    store = Store(fault_fs, f"{D}/s.store")
    values = [bytes([65 + i]) * (7 * i + 1) for i in range(20)]
    for value in values:
        store.append(value)
    scan = store.scan(0, 1000)
    assert scan.payloads == values
    assert scan.stop == "end"


def test_truncate_cuts_durably_and_appends_continue_from_the_cut(
    store: Store, fault_fs: FaultyFileSystem
) -> None:
    fault_fs.sync_dir(D)
    store.append(b"keep")
    _, cut = store.append(b"drop")
    store.truncate(cut)
    assert store.size == cut
    _, position = store.append(b"new")
    assert position == cut
    assert store.read(position) == b"new"
    fault_fs.power_cut()
    assert Store(fault_fs, store.path).size == cut


def test_close_flushes_buffered_frames(store: Store, fault_fs: FaultyFileSystem) -> None:
    store.append(b"abc")
    store.close()
    assert len(fault_fs.read_bytes(store.path)) == FRAME_HEADER_BYTES + 3
