"""Index: entries, boundaries, the structural prefix, seal/unseal and reopen."""

from __future__ import annotations

import pytest

from replog.storage.faultfs import FaultyFileSystem
from replog.storage.index import ENTRY, ENTRY_BYTES, Index

D = "/d"
PATH = f"{D}/i.index"


@pytest.fixture
def fs(fault_fs: FaultyFileSystem) -> FaultyFileSystem:
    fault_fs.makedirs(D)
    return fault_fs


def test_a_new_index_is_presized_and_empty(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 5 * ENTRY_BYTES, sealed=False)
    assert (index.entries, index.max_entries, index.is_full) == (0, 5, False)
    assert fs.file_size(PATH) == 5 * ENTRY_BYTES
    # Slot 0 of zeros reads as (relative 0, position 0): the segment checks it on the store.
    assert index.structural_entries() == 1


def test_entries_map_relative_offsets_to_positions(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 5 * ENTRY_BYTES, sealed=False)
    index.append_many(0, [0, 20])
    index.append_many(2, [45])
    assert [index.position(i) for i in range(3)] == [0, 20, 45]
    assert index.positions(1, 2) == [20, 45]


def test_the_last_slot_fills_the_index_and_one_more_is_refused(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 3 * ENTRY_BYTES, sealed=False)
    index.append_many(0, [0, 10, 20])
    assert index.is_full
    with pytest.raises(ValueError):
        index.append_many(3, [30])


def test_an_out_of_order_append_is_refused(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 3 * ENTRY_BYTES, sealed=False)
    with pytest.raises(ValueError):
        index.append_many(1, [0])


def test_structural_entries_stop_at_the_zero_filled_tail(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 10 * ENTRY_BYTES, sealed=False)
    index.append_many(0, [0, 5, 9, 14])
    index.close()
    fs.resize(PATH, 10 * ENTRY_BYTES)  # a crash before the trim leaves zeros after them
    reopened = Index(fs, PATH, 10 * ENTRY_BYTES, sealed=False)
    assert reopened.structural_entries() == 4


def test_an_entry_naming_the_wrong_slot_ends_the_structural_prefix(
    fs: FaultyFileSystem,
) -> None:
    index = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=False)
    index.append_many(0, [0, 5, 9, 14])
    ENTRY.pack_into(index._map.buffer, 2 * ENTRY_BYTES, 7, 9)  # type: ignore[union-attr]
    assert index.structural_entries() == 2
    with pytest.raises(IndexError):
        index.position(2)
    with pytest.raises(IndexError):
        index.positions(1, 2)


def test_truncate_zeroes_forgotten_entries(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=False)
    index.append_many(0, [0, 5, 9])
    index.truncate(1)
    assert index.entries == 1
    assert index.structural_entries() == 1
    index.append_many(1, [7])
    assert index.position(1) == 7


def test_unseal_grows_a_trimmed_index_back_to_its_maximum(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=False)
    index.append_many(0, [0, 5])
    index.close()
    sealed = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=True)
    sealed.entries = sealed.structural_entries()
    assert fs.file_size(PATH) == 2 * ENTRY_BYTES
    sealed.unseal()
    assert fs.file_size(PATH) == 4 * ENTRY_BYTES
    sealed.append_many(2, [9])
    assert sealed.positions(0, 3) == [0, 5, 9]


def test_a_cleanly_closed_index_reopens_sealed_with_its_entries(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=False)
    index.append_many(0, [0, 5, 9])
    index.close()
    assert fs.file_size(PATH) == 3 * ENTRY_BYTES
    sealed = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=True)
    assert (sealed.existed, sealed.file_bytes_on_open, sealed.max_entries) == (True, 36, 3)
    assert sealed.structural_entries() == 3


def test_an_empty_sealed_index_needs_no_map(fs: FaultyFileSystem) -> None:
    Index(fs, PATH, 4 * ENTRY_BYTES, sealed=False).close()
    assert fs.file_size(PATH) == 0
    sealed = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=True)
    assert (sealed.max_entries, sealed.structural_entries()) == (0, 0)
    sealed.close()


def test_entries_survive_a_power_cut_only_after_sync(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 4 * ENTRY_BYTES, sealed=False)
    fs.sync_dir(D)
    index.append_many(0, [0])
    index.sync()
    index.append_many(1, [5])
    fs.power_cut()
    assert Index(fs, PATH, 4 * ENTRY_BYTES, sealed=False).structural_entries() == 1


def test_a_large_index_reserves_little_until_its_entries_need_more(fs: FaultyFileSystem) -> None:
    maximum = 1_000_000 * ENTRY_BYTES
    index = Index(fs, PATH, maximum, sealed=False)
    small = fs.file_size(PATH)
    assert small < maximum // 100
    positions = list(range(0, 10 * (small // ENTRY_BYTES + 1), 10))
    index.append_many(0, positions)
    index.append_one(len(positions) * 10)
    assert small < fs.file_size(PATH) <= maximum
    assert index.positions(0, len(positions) + 1) == [*positions, len(positions) * 10]
    assert (index.capacity, index.is_full) == (1_000_000, False)


def test_a_growing_index_stops_at_its_maximum(fs: FaultyFileSystem) -> None:
    index = Index(fs, PATH, 5000 * ENTRY_BYTES, sealed=False)
    index.append_many(0, list(range(5000)))
    assert index.is_full and fs.file_size(PATH) == 5000 * ENTRY_BYTES
    with pytest.raises(ValueError):
        index.append_one(5000)
