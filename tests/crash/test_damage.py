"""Damaged files on the real disk: torn tails, garbage, lost indexes and flipped bytes."""

from __future__ import annotations

import glob
import os
import random
from pathlib import Path

import pytest

from replog.errors import CorruptRecordError
from replog.storage import Log, LogConfig

SMALL = LogConfig(max_store_bytes=512, max_index_bytes=120, max_record_bytes=200)
VALUES = [b"record-%03d-" % i + bytes(i % 17) for i in range(60)]


@pytest.fixture
def closed_log(log_dir: str) -> str:
    with Log(log_dir, SMALL) as log:
        log.append_batch(VALUES)
        assert log.segment_count >= 4
    return log_dir


def files(directory: str, suffix: str) -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(os.path.join(directory, f"*.{suffix}")))]


def all_values(log: Log) -> list[bytes]:
    return [log.read(o).value for o in range(log.lowest_offset, log.next_offset)]


def test_a_store_cut_mid_frame_loses_only_the_torn_record(closed_log: str) -> None:
    active = files(closed_log, "store")[-1]
    active.write_bytes(active.read_bytes()[:-5])
    with Log(closed_log, SMALL) as log:
        assert all_values(log) == VALUES[:-1]
        assert log.append(b"next") == len(VALUES) - 1
    with Log(closed_log, SMALL) as log:
        assert all_values(log) == [*VALUES[:-1], b"next"]


@pytest.mark.parametrize(
    "garbage",
    [b"\x00" * 40, b"\xff" * 3, random.Random(100).randbytes(100)],
    ids=["zeros", "ones", "random"],  # fixed bytes: every pytest worker collects the same ids
)
def test_garbage_after_the_last_frame_is_cut(closed_log: str, garbage: bytes) -> None:
    active = files(closed_log, "store")[-1]
    size = active.stat().st_size
    with active.open("ab") as f:
        f.write(garbage)
    with Log(closed_log, SMALL) as log:
        assert all_values(log) == VALUES
    assert active.stat().st_size == size


@pytest.mark.parametrize("damage", ["zero", "delete"])
@pytest.mark.parametrize("which", [0, 1, -1])
def test_a_lost_index_is_rebuilt_from_the_store(closed_log: str, damage: str, which: int) -> None:
    index = files(closed_log, "index")[which]
    if damage == "zero":
        index.write_bytes(bytes(index.stat().st_size or 120))
    else:
        index.unlink()
    with Log(closed_log, SMALL) as log:
        assert all_values(log) == VALUES
        assert log.read_batch(0, max_records=1000)[0].value == VALUES[0]


def flip_inside_record(store: Path, record_number: int) -> None:
    """Flip a byte inside the payload of the ``record_number``-th frame of ``store``."""
    data = bytearray(store.read_bytes())
    position = 0
    for _ in range(record_number):
        position += 12 + int.from_bytes(data[position : position + 8], "big")
    data[position + 12 + 3] ^= 0x40
    store.write_bytes(bytes(data))


@pytest.mark.parametrize("segment", [0, 1, -1])
def test_a_flipped_byte_makes_only_that_record_corrupt(closed_log: str, segment: int) -> None:
    with Log(closed_log, SMALL) as log:
        base = log._segments[segment].base_offset
        end = log._segments[segment].end_offset
    victim = base + 1  # a record in the middle: it has a neighbour on each side
    assert victim + 1 < end
    flip_inside_record(files(closed_log, "store")[segment], 1)
    with Log(closed_log, SMALL) as log:
        assert log.next_offset == len(VALUES)
        with pytest.raises(CorruptRecordError) as info:
            log.read(victim)
        assert info.value.offset == victim
        with pytest.raises(CorruptRecordError):
            log.read_batch(victim)
        for offset in range(len(VALUES)):
            if offset != victim:
                assert log.read(offset).value == VALUES[offset]
        assert [r.value for r in log.read_batch(victim + 1, max_records=2)] == VALUES[
            victim + 1 : victim + 3
        ]
