"""KeyTable: the compact hash -> offset map under the key index."""

from __future__ import annotations

import pytest

from replog.broker.key_table import KeyTable


def test_a_hash_never_stored_has_no_offset() -> None:
    assert KeyTable().get(12345) == -1


def test_put_many_returns_the_offsets_it_replaced_in_order() -> None:
    table = KeyTable()
    assert table.put_many([5, 7, 5], [0, 1, 2]) == [-1, -1, 0]
    assert table.get(5) == 2
    assert table.get(7) == 1
    assert table.used_slots == 2


def test_growing_past_three_quarters_keeps_every_entry() -> None:
    table = KeyTable()
    slots_before = table.slots
    hashes = [(i * 0x9E3779B97F4A7C15) % (1 << 64) or 1 for i in range(1, 60_001)]
    table.put_many(hashes, range(len(hashes)))
    assert table.slots > slots_before
    assert all(table.get(h) == i for i, h in enumerate(hashes))
    assert table.used_slots == len(hashes)


def test_hashes_that_land_on_one_slot_probe_past_each_other() -> None:
    table = KeyTable()
    same_home = [1 << 40 | 1, 1 << 41 | 1, 1 << 42 | 1]  # equal low bits: one shard, one slot
    table.put_many(same_home, [10, 11, 12])
    assert [table.get(h) for h in same_home] == [10, 11, 12]
    assert table.get(1 << 43 | 1) == -1


def test_restore_sets_a_stored_hash_back_and_refuses_an_unknown_one() -> None:
    table = KeyTable()
    table.put_many([9], [4])
    table.restore(9, -1)
    assert table.get(9) == -1
    with pytest.raises(KeyError):
        table.restore(10, 3)


def test_a_capacity_hint_sizes_the_table_up_front() -> None:
    assert KeyTable(capacity_hint=100_000).slots >= 100_000 * 4 // 3


def test_shards_of_a_wrong_shape_are_refused() -> None:
    table = KeyTable()
    shards = list(table.shards())
    with pytest.raises(ValueError):
        KeyTable(shards=shards[:-1])
    hashes, offsets, _ = shards[0]
    with pytest.raises(ValueError):
        KeyTable(shards=[(hashes, offsets[:-1], 0), *shards[1:]])
