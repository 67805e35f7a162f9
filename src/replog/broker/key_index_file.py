"""The key index's checkpoint file: the whole index as of one log offset.

Layout (integers big-endian, arrays in the writer's byte order, flagged in the header)::

    header   "RLKI" u16 version u16 little-endian? q next_offset q journal_floor
             u32 identity length, identity (which hash function filled the table)
    shards   64 x (q slots, q used, slots x u64 hash, slots x i64 offset)
    journal  q entries, q batches, entries x (u64, i64), batches x (i64 base, end, start)
    exact    q keys, keys x (u32 length, key, i64 offset); q hashes, hashes x u64
    trailer  u32 crc32 of everything before it, "IKLR"

Written to a temporary file, fsynced and renamed over the old one (then the directory
fsynced), so a crash leaves the old checkpoint or the new, never half of one; the file is
private (0600) like everything ``replog.storage.files`` creates. A file that fails any
check raises ``CheckpointDamagedError``: the index is derived data and is rebuilt from the log.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from replog.broker.key_journal import JournalArrays
from replog.broker.key_table import SHARD_BITS, Shard
from replog.storage.files import FileHandle, FileSystem

__all__ = [
    "CHECKPOINT_NAME",
    "CUT_NAME",
    "Checkpoint",
    "CheckpointDamagedError",
    "clear_cut",
    "read_checkpoint",
    "read_cut",
    "write_checkpoint",
    "write_cut",
]

CHECKPOINT_NAME = "key-index.ckpt"
#: The lowest offset ``truncate_after`` cut to since the checkpoint: the checkpoint holds
#: records past it that the log no longer has (and may have replaced with others).
CUT_NAME = "key-index.cut"
_CUT = struct.Struct(">4sqI")
_MAGIC, _END = b"RLKI", b"IKLR"
_VERSION = 1
_HEADER = struct.Struct(">4sHHqqI")
_PAIR = struct.Struct(">qq")
_COUNT = struct.Struct(">q")
_KEY = struct.Struct(">Iq")
_TRAILER = struct.Struct(">I4s")
_LITTLE = sys.byteorder == "little"
_SHARDS = 1 << SHARD_BITS


class CheckpointDamagedError(Exception):
    """The checkpoint file is truncated, corrupt, or of another version or layout."""


@dataclass(slots=True)
class Checkpoint:
    """A key index's state as of ``next_offset`` (every record below it was added)."""

    next_offset: int
    identity: bytes
    shards: list[Shard]
    journal_floor: int
    journal: JournalArrays
    exact: dict[bytes, int]
    collided: set[int]


class _Writer:
    def __init__(self, handle: FileHandle) -> None:
        self._handle = handle
        self.crc = 0

    def put(self, data: bytes | memoryview) -> None:
        if len(data):
            self.crc = zlib.crc32(data, self.crc)
            self._handle.append(data)

    def put_array(self, values: array[int]) -> None:
        self.put(_COUNT.pack(len(values)))
        self.put(memoryview(values).cast("B"))


def _replace(
    fs: FileSystem, directory: str, name: str, write: Callable[[FileHandle], None]
) -> None:
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    fs.remove(tmp)  # one a crash left behind
    handle = fs.open(tmp)
    try:
        write(handle)
        handle.sync()
    finally:
        handle.close()
    fs.replace(tmp, path)
    fs.sync_dir(directory)


def write_cut(fs: FileSystem, directory: str, offset: int) -> None:
    """Record, durably, that the log was cut after ``offset`` since the checkpoint."""
    body = struct.pack(">4sq", _MAGIC, offset)

    def write(handle: FileHandle) -> None:
        handle.append(body + struct.pack(">I", zlib.crc32(body)))

    _replace(fs, directory, CUT_NAME, write)


def read_cut(fs: FileSystem, directory: str) -> int | None:
    """The offset of ``write_cut``, None if none. Raises CheckpointDamagedError."""
    path = os.path.join(directory, CUT_NAME)
    if not fs.exists(path):
        return None
    handle = fs.open(path)
    try:
        data = handle.pread(_CUT.size + 1, 0)
    finally:
        handle.close()
    if len(data) != _CUT.size:
        raise CheckpointDamagedError("the cut marker has the wrong size")
    magic, offset, crc = _CUT.unpack(data)
    if magic != _MAGIC or crc != zlib.crc32(data[:-4]):
        raise CheckpointDamagedError("the cut marker fails its checksum")
    return int(offset)


def clear_cut(fs: FileSystem, directory: str) -> None:
    """Remove the cut marker (a newer checkpoint supersedes it), durably."""
    path = os.path.join(directory, CUT_NAME)
    if fs.exists(path):
        fs.remove(path)
        fs.sync_dir(directory)


def write_checkpoint(fs: FileSystem, directory: str, state: Checkpoint) -> None:
    """Replace the checkpoint in ``directory`` with ``state``, durably and atomically."""
    _replace(fs, directory, CHECKPOINT_NAME, lambda handle: _write_state(handle, state))


def _write_state(handle: FileHandle, state: Checkpoint) -> None:
    out = _Writer(handle)
    out.put(
        _HEADER.pack(
            _MAGIC, _VERSION, _LITTLE, state.next_offset, state.journal_floor, len(state.identity)
        )
    )
    out.put(state.identity)
    for hashes, offsets, used in state.shards:
        out.put(_PAIR.pack(len(hashes), used))
        out.put(memoryview(hashes).cast("B"))
        out.put(memoryview(offsets).cast("B"))
    for part in state.journal:
        out.put_array(part)
    out.put(_COUNT.pack(len(state.exact)))
    for key, offset in state.exact.items():
        out.put(_KEY.pack(len(key), offset))
        out.put(key)
    out.put_array(array("Q", sorted(state.collided)))
    handle.append(_TRAILER.pack(out.crc, _END))


class _Reader:
    def __init__(self, handle: FileHandle, size: int) -> None:
        self._handle = handle
        self._size = size
        self.position = 0
        self.crc = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.position + size > self._size - _TRAILER.size:
            raise CheckpointDamagedError("the checkpoint is shorter than its contents say")
        data = self._handle.pread(size, self.position)
        if len(data) != size:
            raise CheckpointDamagedError("the checkpoint was cut short while reading")
        self.position += size
        self.crc = zlib.crc32(data, self.crc)
        return data

    def unpack(self, form: struct.Struct) -> tuple[Any, ...]:
        return form.unpack(self.take(form.size))

    def values(self, typecode: str, count: int, swap: bool) -> array[int]:
        values = array(typecode)
        values.frombytes(self.take(count * values.itemsize))
        if swap:
            values.byteswap()
        return values

    def counted_array(self, typecode: str, swap: bool) -> array[int]:
        (count,) = self.unpack(_COUNT)
        return self.values(typecode, count, swap)


def read_checkpoint(fs: FileSystem, directory: str) -> Checkpoint | None:
    """The checkpoint in ``directory``; None if there is none. Raises CheckpointDamagedError."""
    path = os.path.join(directory, CHECKPOINT_NAME)
    if not fs.exists(path):
        return None
    handle = fs.open(path)
    try:
        size = handle.size()
        if size < _HEADER.size + _TRAILER.size:
            raise CheckpointDamagedError("the checkpoint is too short")
        return _parse(_Reader(handle, size), handle, size)
    except (struct.error, ValueError, OverflowError, MemoryError) as exc:
        raise CheckpointDamagedError(f"the checkpoint does not parse: {exc}") from exc
    finally:
        handle.close()


def _parse(reader: _Reader, handle: FileHandle, size: int) -> Checkpoint:
    magic, version, little, next_offset, floor, identity_size = reader.unpack(_HEADER)
    if magic != _MAGIC or version != _VERSION:
        raise CheckpointDamagedError(f"not a version {_VERSION} key index checkpoint")
    swap = bool(little) != _LITTLE
    identity = reader.take(identity_size)
    shards: list[Shard] = []
    for _ in range(_SHARDS):
        slots, used = reader.unpack(_PAIR)
        hashes = reader.values("Q", slots, swap)
        shards.append((hashes, reader.values("q", slots, swap), used))
    typecodes = ("Q", "q", "q", "q", "q")
    hashes, previous, bases, ends, starts = (reader.counted_array(t, swap) for t in typecodes)
    exact: dict[bytes, int] = {}
    (keys,) = reader.unpack(_COUNT)
    for _ in range(keys):
        length, offset = reader.unpack(_KEY)
        exact[reader.take(length)] = offset
    collided: set[int] = set(reader.counted_array("Q", swap))
    crc, end = _TRAILER.unpack(handle.pread(_TRAILER.size, reader.position))
    if reader.position + _TRAILER.size != size or end != _END or crc != reader.crc:
        raise CheckpointDamagedError("the checkpoint fails its checksum")
    return Checkpoint(
        next_offset,
        identity,
        shards,
        floor,
        (hashes, previous, bases, ends, starts),
        exact,
        collided,
    )
