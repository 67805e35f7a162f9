"""FaultyFileSystem: an in-memory FileSystem that loses unsynced data and injects disk errors.

It plays the part Jepsen's LazyFS plays for a real process: every file keeps two versions of
its bytes, the ones the process sees and the ones that would survive a power cut, and every
directory keeps two versions of its names.

- ``FileHandle.sync()`` and ``MappedFile.flush()`` make a file's current bytes durable.
- Creating, removing or renaming (``replace``) a name becomes durable only after ``sync_dir``
  of its directory: at a power cut, files created since then vanish and removed ones come
  back with their durable bytes (names point at inodes, so an open handle keeps working on a
  removed file).
- ``power_cut()`` reverts every file to its durable bytes. With an ``rng`` it is crueller:
  an append-only file may keep a random prefix of its unsynced tail (a torn write) and each
  page of a mapped file independently keeps or loses its unsynced changes.
- ``fail()`` injects errors (ENOSPC, EIO, ...) into chosen operations, optionally after some
  successful calls, a number of times, and for writes after writing a prefix.
- ``crash_after(n)`` freezes the disk after ``n`` more mutating operations: every later call
  fails with EIO and changes nothing, as if the machine stopped in the middle of an operation;
  a ``power_cut()`` then restarts it.

Handles opened before a power cut belong to the process that "died": their operations raise
EIO (closing them is allowed) and writes through their maps land nowhere.

Directories are simple: ``makedirs`` is durable at once (the log's parent directory is not
the log's business) and they are never removed.
"""

from __future__ import annotations

import errno
import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from replog.storage.faultfs_handles import (
    _FaultyHandle,
    _FaultyLock,
    _FaultyMapped,
    _Inode,
    _os_error,
    _set_size,
)
from replog.storage.files import FileHandle, FileLock, MappedFile

__all__ = ["Fault", "FaultyFileSystem", "Operation"]

#: The operations errors can be injected into.
Operation = Literal[
    "open",
    "write",
    "sync",
    "truncate",
    "map",
    "msync",
    "resize",
    "remove",
    "replace",
    "sync_dir",
    "lock",
]

PAGE_BYTES = 4096

# Operations that change what is on the disk; ``crash_after`` counts these.
_MUTATING = frozenset(
    {"write", "sync", "truncate", "map", "msync", "resize", "remove", "replace", "sync_dir"}
)


@dataclass
class Fault:
    """An injected error: ``op`` succeeds ``after`` more times, then fails ``times`` times
    (forever when None) with ``error``; ``hits`` counts the failures so far."""

    op: Operation
    error: int
    after: int
    times: int | None
    partial: bool
    path_contains: str
    hits: int = field(default=0)

    @property
    def exhausted(self) -> bool:
        """True once the fault has failed ``times`` times."""
        return self.times is not None and self.hits >= self.times


class FaultyFileSystem:
    """An in-memory ``FileSystem`` with power cuts, torn writes and injected disk errors.

    Task-safe: one lock serialises every operation, like a disk queue.
    """

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._files: dict[str, _Inode] = {}  # the names the process sees
        self._durable_names: dict[str, _Inode] = {}  # the names a power cut keeps
        self._dirs: set[str] = {os.sep}
        self._locks: set[str] = set()
        self._faults: list[Fault] = []
        self._crash_countdown: int | None = None
        self.crashed = False
        #: How many times each operation was called (failed calls included).
        self.op_counts: Counter[str] = Counter()
        #: How many power cuts happened.
        self.power_cuts = 0

    # -- fault control ---------------------------------------------------------------------

    def fail(
        self,
        op: Operation,
        error: int = errno.ENOSPC,
        *,
        after: int = 0,
        times: int | None = None,
        partial: bool = False,
        path_contains: str = "",
    ) -> Fault:
        """Make ``op`` fail with ``error`` after ``after`` more successful calls.

        ``times`` bounds the failures (None: every later call fails). ``partial`` makes a
        failing ``write`` first append the first half of its data, as a full disk can.
        ``path_contains`` restricts the fault to paths containing that text.
        """
        fault = Fault(op, error, after, times, partial, path_contains)
        with self._mutex:
            self._faults.append(fault)
        return fault

    def heal(self) -> None:
        """Remove every injected fault and any pending crash point."""
        with self._mutex:
            self._faults.clear()
            self._crash_countdown = None

    def crash_after(self, operations: int) -> None:
        """Freeze the disk after ``operations`` more mutating operations (see module doc)."""
        with self._mutex:
            self._crash_countdown = operations

    def _check(self, op: str, path: str) -> Fault | None:
        """Count ``op``; raise for a frozen disk; return the fault that fires, if any."""
        self.op_counts[op] += 1
        if self.crashed:
            raise _os_error(errno.EIO, path, "crash: the machine stopped")
        if op in _MUTATING and self._crash_countdown is not None:
            if self._crash_countdown <= 0:
                self.crashed = True
                raise _os_error(errno.EIO, path, "crash: the machine stopped")
            self._crash_countdown -= 1
        for fault in self._faults:
            if fault.op != op or fault.exhausted or fault.path_contains not in path:
                continue
            if fault.after > 0:
                fault.after -= 1
                continue
            fault.hits += 1
            return fault
        return None

    def _raise_if_fault(self, op: str, path: str) -> None:
        fault = self._check(op, path)
        if fault is not None:
            raise _os_error(fault.error, path, op)

    # -- power cut ---------------------------------------------------------------------------

    def power_cut(self, rng: random.Random | None = None) -> None:
        """Lose everything not durable; every open handle and lock dies with the process.

        Without ``rng`` every file reverts exactly to its durable bytes. With it, an
        append-only file keeps a random prefix of its unsynced tail and every page of a
        mapped file keeps or loses its unsynced changes at random.
        """
        with self._mutex:
            survivors: dict[str, _Inode] = {}
            fresh: dict[int, _Inode] = {}  # one new inode per old one (hard links stay links)
            for path in sorted(self._durable_names):
                old = self._durable_names[path]
                new = fresh.get(id(old))
                if new is None:
                    content = _after_power_cut(old, rng)
                    new = _Inode(content, content, mapped=old.mapped)
                    fresh[id(old)] = new
                survivors[path] = new
            for inode in [*self._files.values(), *self._durable_names.values()]:
                inode.dead = True
            self._files = dict(survivors)
            self._durable_names = dict(survivors)
            self._locks.clear()
            self._crash_countdown = None
            self.crashed = False
            self.power_cuts += 1

    # -- inspection (for tests) --------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        """The bytes the process would read from ``path`` now."""
        path = os.path.normpath(path)
        with self._mutex:
            return bytes(self._inode(path).data)

    def durable_bytes(self, path: str) -> bytes:
        """The bytes of ``path`` that a power cut would keep (without an rng)."""
        path = os.path.normpath(path)
        with self._mutex:
            inode = self._durable_names.get(path)
            if inode is None:
                raise FileNotFoundError(errno.ENOENT, "not durable", path)
            return inode.durable

    def write_bytes(self, path: str, data: bytes, *, durable: bool = True) -> None:
        """Replace the bytes of ``path`` (creating it), durable at once unless told not to;
        for tests that damage files."""
        path = os.path.normpath(path)
        with self._mutex:
            self._require_parent(path)
            inode = self._files.get(path)
            if inode is None:
                inode = self._files[path] = _Inode()
                if durable:
                    self._durable_names[path] = inode
            inode.data = bytearray(data)
            if durable:
                inode.durable = bytes(data)

    def snapshot(self) -> dict[str, bytes]:
        """Every visible file and its bytes (to compare the disk before and after a call)."""
        with self._mutex:
            return {path: bytes(inode.data) for path, inode in sorted(self._files.items())}

    # -- helpers -------------------------------------------------------------------------------

    def _inode(self, path: str) -> _Inode:
        inode = self._files.get(path)
        if inode is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return inode

    def _require_parent(self, path: str) -> None:
        parent = os.path.dirname(path) or os.curdir
        if parent not in self._dirs:
            if parent in self._files:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if path in self._dirs:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)

    def _create(self, path: str) -> _Inode:
        inode = self._files.get(path)
        if inode is None:
            self._require_parent(path)
            inode = self._files[path] = _Inode()
        return inode

    # -- the FileSystem protocol -----------------------------------------------------------------

    def open(self, path: str) -> FileHandle:
        """Open ``path`` for appending and reading, creating it if missing."""
        path = os.path.normpath(path)
        with self._mutex:
            self._raise_if_fault("open", path)
            return _FaultyHandle(self, path, self._create(path))

    def map(self, path: str, size: int) -> MappedFile:
        """Resize ``path`` (creating it) to ``size`` bytes and map it."""
        path = os.path.normpath(path)
        with self._mutex:
            self._raise_if_fault("map", path)
            inode = self._create(path)
            _set_size(inode.data, size)
            inode.mapped = True
            return _FaultyMapped(self, path, inode)

    def exists(self, path: str) -> bool:
        """Say whether ``path`` is a file or directory."""
        path = os.path.normpath(path)
        with self._mutex:
            return path in self._files or path in self._dirs

    def is_dir(self, path: str) -> bool:
        """Say whether ``path`` is a directory."""
        path = os.path.normpath(path)
        with self._mutex:
            return path in self._dirs

    def file_size(self, path: str) -> int:
        """Return the size of ``path`` in bytes."""
        path = os.path.normpath(path)
        with self._mutex:
            return len(self._inode(path).data)

    def resize(self, path: str, size: int) -> None:
        """Set the size of ``path`` (creating it); durable only after a sync or msync."""
        path = os.path.normpath(path)
        with self._mutex:
            self._raise_if_fault("resize", path)
            _set_size(self._create(path).data, size)

    def remove(self, path: str) -> None:
        """Remove the name ``path`` if it exists; durable only after ``sync_dir``."""
        path = os.path.normpath(path)
        with self._mutex:
            self._raise_if_fault("remove", path)
            self._files.pop(path, None)

    def replace(self, source: str, target: str) -> None:
        """Give ``source``'s inode the name ``target``; durable only after ``sync_dir`` (a
        power cut before it keeps the old names: the old ``target``, no new one)."""
        source, target = os.path.normpath(source), os.path.normpath(target)
        with self._mutex:
            self._raise_if_fault("replace", source)
            inode = self._inode(source)
            self._require_parent(target)
            del self._files[source]
            self._files[target] = inode

    def listdir(self, path: str) -> list[str]:
        """Return the names in directory ``path``."""
        path = os.path.normpath(path)
        with self._mutex:
            if path not in self._dirs:
                if path in self._files:
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            names = [os.path.basename(p) for p in self._files if os.path.dirname(p) == path]
            names += [os.path.basename(d) for d in self._dirs if os.path.dirname(d) == path]
            return sorted(name for name in names if name)

    def makedirs(self, path: str) -> None:
        """Create directory ``path`` and its parents (durable at once)."""
        path = os.path.normpath(path)
        with self._mutex:
            missing: list[str] = []
            current = path
            while current not in self._dirs:
                if current in self._files:
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), current)
                missing.append(current)
                parent = os.path.dirname(current)
                if parent == current:
                    break
                current = parent
            self._dirs.update(missing)

    def sync_dir(self, path: str) -> None:
        """Make every creation and removal of a name in ``path`` durable."""
        path = os.path.normpath(path)
        with self._mutex:
            self._raise_if_fault("sync_dir", path)
            if path not in self._dirs:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            for name in [p for p in self._durable_names if os.path.dirname(p) == path]:
                if self._files.get(name) is not self._durable_names[name]:
                    del self._durable_names[name]
            for name, inode in self._files.items():
                if os.path.dirname(name) == path:
                    self._durable_names[name] = inode

    def lock(self, path: str) -> FileLock:
        """Take the lock on ``path`` (creating the file); BlockingIOError if already held."""
        path = os.path.normpath(path)
        with self._mutex:
            self._raise_if_fault("lock", path)
            self._create(path)
            if path in self._locks:
                raise BlockingIOError(errno.EWOULDBLOCK, "locked", path)
            self._locks.add(path)
            return _FaultyLock(self, path, self.power_cuts)

    # -- used by the handles ------------------------------------------------------------------

    def _release(self, path: str, epoch: int) -> None:
        with self._mutex:
            if epoch == self.power_cuts:
                self._locks.discard(path)


def _after_power_cut(inode: _Inode, rng: random.Random | None) -> bytes:
    """What a power cut leaves of a file."""
    durable, visible = inode.durable, bytes(inode.data)
    if rng is None or durable == visible:
        return durable
    if inode.mapped:
        # Pages reach the disk independently; so does the file's size.
        size = rng.choice((len(durable), len(visible)))
        pages = []
        for start in range(0, size, PAGE_BYTES):
            source = visible if rng.random() < 0.5 else durable
            length = min(PAGE_BYTES, size - start)
            page = source[start : start + length]
            pages.append(page + bytes(length - len(page)))
        return b"".join(pages)
    if visible.startswith(durable):
        # An appended tail reaches the disk as some prefix of itself: a torn write.
        return visible[: rng.randint(len(durable), len(visible))]
    # The file was cut or rewritten since its last sync: old or (a prefix of) new.
    if rng.random() < 0.5:
        return durable
    common = next(
        (i for i, (a, b) in enumerate(zip(durable, visible, strict=False)) if a != b),
        min(len(durable), len(visible)),
    )
    return visible[: rng.randint(common, len(visible))]
