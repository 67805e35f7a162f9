"""The one file layer every storage class goes through.

Keeping all file access behind this small interface lets tests swap in
``replog.storage.faultfs.FaultyFileSystem``, which keeps unsynced writes in memory, throws
them away at a simulated power cut and injects disk errors. ``OsFileSystem`` is the real one.

Everything it creates is private to the process's user (directories 0700, files 0600), as
the log holds every record ever produced: the modes are given explicitly, so no umask is
needed, and a directory or file found open to others (an older build's) is made private.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import stat
from typing import Protocol

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "FileHandle",
    "FileLock",
    "FileSystem",
    "MappedFile",
    "OsFileSystem",
    "make_private_dir",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_OTHERS = 0o077  # group and other permission bits

log = logging.getLogger("replog.storage")


class FileHandle(Protocol):
    """An open file that is appended to at its end and read at any position."""

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` at the end of the file (one write call where the OS allows)."""

    def pread(self, size: int, position: int) -> bytes:
        """Return up to ``size`` bytes from ``position``; fewer only at the end of the file."""

    def size(self) -> int:
        """Return the file's current size in bytes."""

    def sync(self) -> None:
        """Make every byte written so far durable (fdatasync)."""

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes."""

    def close(self) -> None:
        """Close the file; further calls are errors."""


class MappedFile(Protocol):
    """A file mapped into memory at a fixed size; ``buffer`` supports slicing and struct."""

    @property
    def buffer(self) -> mmap.mmap | bytearray:
        """The mapped bytes; writes to it change the file."""

    def flush(self) -> None:
        """Make the mapped bytes durable (msync)."""

    def close(self) -> None:
        """Unmap the file."""


class FileLock(Protocol):
    """An exclusive lock held on a file until released."""

    def release(self) -> None:
        """Release the lock."""


class FileSystem(Protocol):
    """The operations storage needs from a file system."""

    def open(self, path: str) -> FileHandle:
        """Open ``path`` for appending and reading, creating it if missing."""

    def map(self, path: str, size: int) -> MappedFile:
        """Resize ``path`` (creating it if missing) to ``size`` bytes and map it."""

    def exists(self, path: str) -> bool:
        """Say whether ``path`` exists."""

    def is_dir(self, path: str) -> bool:
        """Say whether ``path`` is a directory (added so Log asks the FileSystem, not ``os``)."""

    def file_size(self, path: str) -> int:
        """Return the size of ``path`` in bytes."""

    def resize(self, path: str, size: int) -> None:
        """Set the size of ``path``, creating it if missing (growing with zeros or cutting)."""

    def remove(self, path: str) -> None:
        """Delete ``path`` if it exists."""

    def replace(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target`` atomically, replacing any file there (durable only
        after ``sync_dir`` of the directory)."""

    def listdir(self, path: str) -> list[str]:
        """Return the names in directory ``path``."""

    def makedirs(self, path: str) -> None:
        """Create directory ``path`` and its parents if missing; ``path`` is private (0700)."""

    def sync_dir(self, path: str) -> None:
        """Make the creation and removal of names in directory ``path`` durable."""

    def lock(self, path: str) -> FileLock:
        """Take an exclusive lock on ``path``; raise BlockingIOError if another holder has it.

        Deleting the file does not lift the lock (nor let a second locker in).
        """


def make_private_dir(path: str | os.PathLike[str]) -> None:
    """Create directory ``path`` (and missing parents) if needed and make it private (0700).

    A directory found open to other users is made 0700, and everything in it loses its
    group and other permissions too, once; a warning says so.
    """
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & _OTHERS:
        _make_tree_private(os.fspath(path))
        log.warning(
            "%s was open to other users (mode %o): made it 0700 and its files 0600", path, mode
        )


def _make_tree_private(top: str) -> None:
    os.chmod(top, stat.S_IMODE(os.stat(top).st_mode) & ~_OTHERS)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & _OTHERS:
                os.chmod(os.path.join(root, name), stat.S_IMODE(st.st_mode) & ~_OTHERS)


def _open_private(path: str, flags: int) -> int:
    """``os.open`` creating ``path`` 0600; an existing file open to others is made private."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & _OTHERS:  # O_CREAT leaves an existing file's mode as it was
            os.fchmod(fd, mode & ~_OTHERS)
    except BaseException:
        os.close(fd)
        raise
    return fd


class _OsFile:
    __slots__ = ("_fd",)

    def __init__(self, path: str) -> None:
        self._fd = _open_private(path, os.O_RDWR | os.O_APPEND)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        written = os.write(self._fd, data)
        if written == len(data):
            return
        view = memoryview(data)[written:]
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def pread(self, size: int, position: int) -> bytes:
        return os.pread(self._fd, size, position)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def close(self) -> None:
        # Forget the number first: the OS hands it to the next open file at once, and a late
        # pread through it (a reader racing a segment's removal) would read that file instead.
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class _OsMapped:
    __slots__ = ("_map",)

    def __init__(self, path: str, size: int) -> None:
        fd = _open_private(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
            _reserve(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    @property
    def buffer(self) -> mmap.mmap:
        return self._map

    def flush(self) -> None:
        self._map.flush()

    def close(self) -> None:
        self._map.close()


def _reserve(fd: int, size: int) -> None:
    """Allocate the blocks of a file that will be written through a memory map.

    A store into a mapped page of a sparse file needs a block at that moment; on a full disk
    the kernel can only answer with SIGBUS, which kills the process. Reserved up front, a
    full disk is an ENOSPC here (an OSError the log turns into StorageIOError), like Kafka's
    preallocated index files. File systems without fallocate keep the sparse file.
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


class _OsLock:
    """flock(2) on the lock file and on the directory that holds it.

    A flock is on an inode: once the file is deleted, a second locker creates and locks a
    new one, and two writers hand out the same offsets. The directory cannot be deleted
    while it holds the log's files, so its lock (taken first) is the one that counts; the
    file's keeps out older builds, which lock only the file.
    """

    __slots__ = ("_dir_fd", "_fd")

    def __init__(self, path: str) -> None:
        parent = os.path.dirname(path) or "."
        self._dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._fd = _open_private(path, os.O_RDWR)
        except OSError:
            os.close(self._dir_fd)
            raise
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            os.close(self._dir_fd)
            raise
        # The holder's PID, for the error message of whoever finds the lock taken.
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        fcntl.flock(self._dir_fd, fcntl.LOCK_UN)
        os.close(self._dir_fd)


class OsFileSystem:
    """The real file system, through ``os`` calls."""

    def open(self, path: str) -> FileHandle:
        return _OsFile(path)

    def map(self, path: str, size: int) -> MappedFile:
        return _OsMapped(path, size)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def file_size(self, path: str) -> int:
        return os.path.getsize(path)

    def resize(self, path: str, size: int) -> None:
        fd = _open_private(path, os.O_RDWR)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)

    def replace(self, source: str, target: str) -> None:
        os.replace(source, target)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        make_private_dir(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> FileLock:
        try:
            return _OsLock(path)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise BlockingIOError(exc.errno, "locked", path) from exc
            raise
