"""The one file layer every storage class goes through.

Keeping all file access behind this small interface lets tests swap in
``replog.storage.faultfs.FaultyFileSystem``, which keeps unsynced writes in memory, throws
them away at a simulated power cut and injects disk errors. ``OsFileSystem`` is the real one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
from typing import Protocol

__all__ = ["FileHandle", "FileLock", "FileSystem", "MappedFile", "OsFileSystem"]


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
        """Create directory ``path`` and its parents if missing."""

    def sync_dir(self, path: str) -> None:
        """Make the creation and removal of names in directory ``path`` durable."""

    def lock(self, path: str) -> FileLock:
        """Take an exclusive lock on ``path``; raise BlockingIOError if another holder has it."""


class _OsFile:
    __slots__ = ("_fd",)

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

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
        os.close(self._fd)


class _OsMapped:
    __slots__ = ("_map",)

    def __init__(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
    __slots__ = ("_fd",)

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise
        # The holder's PID, for the error message of whoever finds the lock taken.
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


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
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
        os.makedirs(path, exist_ok=True)

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
