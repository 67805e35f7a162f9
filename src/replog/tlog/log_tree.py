"""A partition's tree kept in step with its ``Log`` (the I/O edge between storage and tlog).

The leaf of offset ``i`` is the record's canonical stored bytes: the frame payload exactly as
``replog.storage`` stores it (the serialized Record, offset and timestamp included), so
``leaf index == offset`` and the tree of the first ``n`` records is the tree of size ``n``.
Every stored offset is a leaf, control records (a cluster's Raft no-op, configuration and
address-book entries) included: every replica stores byte-identical payloads at each offset
(the leader serializes each data entry once; a control record is built from the entry's
index, term, kind and data alone). Offsets below the log's first offset (0, in a cluster
partition whose Raft log starts at 1) are the empty leaf ``b""``.

Hashing runs in the appending thread, under the Log's write lock, once per write (a batch);
a truncation (a follower's replaced suffix) cuts the tree. Retention deleting records does not
delete tiles. A tree the records cannot vouch for (its log was reset to install a snapshot,
or the records under the tiles' edge were deleted and the tiles do not check out) is
``unavailable`` and says why.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from replog.errors import InvalidArgumentError, ReplogError, UnavailableError
from replog.storage import Log
from replog.tlog.tile_files import TileDirectory
from replog.tlog.tiles import Tile

__all__ = ["TLOG_DIR", "LogTree", "attach_tree", "tree_of"]

TLOG_DIR = "tlog"
"""The directory under a partition's directory that holds its tiles."""

log = logging.getLogger("replog.tlog")

_T = TypeVar("_T")
_trees: weakref.WeakKeyDictionary[Log, LogTree] = weakref.WeakKeyDictionary()
_READ_BYTES = 1 << 24


class LogTree:
    """The Merkle tree of one Log's records, its tiles under ``directory``."""

    def __init__(self, log_: Log, directory: Path) -> None:
        """Open the tiles for ``log_``'s records (use ``attach_tree``: it also subscribes)."""
        self._log = log_
        self.directory = directory
        self._base = log_.config.initial_offset
        self._lock = threading.Lock()  # the tree's state
        self._io_lock = threading.Lock()  # tile files being written, cut or flushed
        self._queued = False
        self.unavailable: str | None = None
        """Why the tree cannot be trusted or kept (None while it is)."""
        self.tiles: TileDirectory | None = None
        try:
            self.tiles = TileDirectory.open(directory, log_.next_offset, self._read_leaves)
        except (ReplogError, OSError) as exc:
            self._disable(f"its tiles could not be opened: {exc}")

    def _read_leaves(self, start: int, stop: int) -> list[bytes]:
        """The leaves ``[start, stop)``: records' stored bytes, ``b""`` below the base."""
        leaves = [b""] * max(0, min(stop, self._base) - start)
        offset = max(start, self._base)
        if offset < stop and offset < self._log.lowest_offset:
            raise InvalidArgumentError(f"record {offset} is no longer stored (retention)")
        while offset < stop:
            chunk = self._log.read_payloads(
                offset, max_records=stop - offset, max_bytes=_READ_BYTES
            )
            leaves.extend(chunk)
            offset += len(chunk)
        return leaves

    def _disable(self, reason: str) -> None:
        log.warning("the verifiable log of %s is unavailable: %s", self._log.directory, reason)
        self.unavailable = reason
        self.tiles = None

    @property
    def size(self) -> int:
        """How many leaves the tree holds (the log's next offset while it is kept)."""
        return 0 if self.tiles is None else self.tiles.size

    def read(self, fn: Callable[[TileDirectory], _T]) -> _T:
        """``fn(tiles)`` with appends held off (a root, a proof, a tile); UnavailableError when
        the tree is unavailable."""
        with self._lock:
            if self.tiles is None:
                raise UnavailableError(f"the verifiable log is unavailable: {self.unavailable}")
            return fn(self.tiles)

    def flush(self) -> None:
        """Write the partial tiles too (before a checkpoint is published, or on close), so
        the files on disk are every tile of the tree."""
        with self._io_lock, self._lock:
            if self.tiles is None:
                return
            try:
                self.tiles.flush()
            except OSError as exc:
                log.warning("writing tiles under %s failed: %s", self.directory, exc)

    # -- LogListener -----------------------------------------------------------------------

    def appended(self, first: int, payloads: Sequence[bytes]) -> None:
        """Hash the records just written (one batch) and write the tiles that changed."""
        sha256 = hashlib.sha256  # leaf_hash inlined: this runs on every append
        hashes = [sha256(b"\x00" + payload).digest() for payload in payloads]
        with self._lock:
            tiles = self.tiles
            if tiles is None:
                return
            if first != tiles.size:
                self._disable(f"record {first} was appended to a tree of {tiles.size} leaves")
                return
            try:
                tiles.append_hashes(hashes, write=False)
            except OSError as exc:  # the leaves are in the tree; the next append retries
                log.warning("writing tiles under %s failed: %s", self.directory, exc)
            if tiles.unwritten() and not self._queued:
                self._queued = True
                _WRITER.submit(self)

    def write_tiles(self) -> None:
        """Write the full tiles the appends left in memory (the tile writer thread's work,
        outside the tree's lock: appends and reads go on meanwhile)."""
        with self._io_lock:
            with self._lock:
                self._queued = False
                tiles = self.tiles
                pending = tiles.unwritten() if tiles is not None else []
            if tiles is None or not pending:
                return
            done: list[tuple[Tile, bytes]] = []
            try:
                for tile, data in pending:
                    tiles.write_full(tile, data)
                    done.append((tile, data))
            except OSError as exc:  # kept in memory: the next round or flush retries
                log.warning("writing tiles under %s failed: %s", self.directory, exc)
            with self._lock:
                tiles.mark_written(done)

    def truncated_after(self, offset: int) -> None:
        """Drop the hashes of the records removed after ``offset``."""
        with self._io_lock, self._lock:
            if self.tiles is None:
                return
            try:
                self.tiles.truncate(min(self.tiles.size, offset + 1))
            except (ReplogError, OSError) as exc:
                self._disable(f"cutting the tree after {offset} failed: {exc}")

    def closing(self) -> None:
        """The log is closing: write every tile (the partial ones too)."""
        self.flush()

    def was_reset(self, next_offset: int) -> None:
        """Every record is gone: the records no longer vouch for the tree."""
        with self._lock:
            if self.tiles is not None and next_offset == self._base == 0:
                self.tiles.truncate(0)
                return
            self._disable(f"the log was reset to continue at {next_offset}")


class _TileWriter:
    """One daemon thread writing the full tiles of every tree, in the order they filled."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[LogTree] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, tree: LogTree) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="replog-tile-writer", daemon=True
                )
                self._thread.start()
        self._queue.put(tree)

    def _run(self) -> None:
        while True:
            tree = self._queue.get()
            try:
                tree.write_tiles()
            except Exception:  # a tree's failure is its own; the others go on
                log.exception("writing the tiles under %s failed", tree.directory)


_WRITER = _TileWriter()


def attach_tree(log_: Log, directory: Path) -> LogTree:
    """Open ``log_``'s tree under ``directory`` and keep it from every later change."""
    tree = LogTree(log_, directory)
    log_.add_listener(tree)
    _trees[log_] = tree
    return tree


def tree_of(log_: Log) -> LogTree | None:
    """The tree attached to ``log_`` (None if none is)."""
    return _trees.get(log_)
