"""The open files of a FaultyFileSystem: inodes, handles, maps and locks."""

from __future__ import annotations

import errno
import mmap
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replog.storage.faultfs import FaultyFileSystem

__all__: list[str] = []


class _Inode:
    """One file's bytes: what the process sees and what survives a power cut."""

    __slots__ = ("data", "dead", "durable", "mapped")

    def __init__(self, data: bytes = b"", durable: bytes = b"", *, mapped: bool = False) -> None:
        self.data = bytearray(data)
        self.durable = bytes(durable)
        # Set once the file has been memory-mapped: a power cut then tears it page by page.
        self.mapped = mapped
        # Set at a power cut: the process that held this inode open is gone.
        self.dead = False


def _os_error(code: int, path: str, what: str) -> OSError:
    # OSError(errno, ...) returns the matching subclass (PermissionError for EACCES, ...).
    return OSError(code, f"{os.strerror(code)} (injected {what})", path)


def _set_size(data: bytearray, size: int) -> None:
    if size < len(data):
        del data[size:]
    else:
        data.extend(bytes(size - len(data)))


class _FaultyHandle:
    """A FileHandle on an inode of a FaultyFileSystem."""

    def __init__(self, fs: FaultyFileSystem, path: str, inode: _Inode) -> None:
        self._fs = fs
        self._path = path
        self._inode = inode
        self._closed = False

    def _live(self) -> _Inode:
        if self._closed:
            raise ValueError(f"I/O on closed file {self._path}")
        if self._inode.dead:
            raise _os_error(errno.EIO, self._path, "use after power cut")
        return self._inode

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; an injected fault may first append half of it."""
        with self._fs._mutex:
            inode = self._live()
            fault = self._fs._check("write", self._path)
            if fault is not None:
                if fault.partial:
                    chunk = bytes(data)
                    inode.data += chunk[: len(chunk) // 2]
                raise _os_error(fault.error, self._path, "write")
            inode.data += bytes(data)

    def pread(self, size: int, position: int) -> bytes:
        """Return up to ``size`` bytes from ``position``."""
        with self._fs._mutex:
            inode = self._live()
            return bytes(inode.data[position : position + size])

    def size(self) -> int:
        """Return the file's current size."""
        with self._fs._mutex:
            return len(self._live().data)

    def sync(self) -> None:
        """Make the file's current bytes durable."""
        with self._fs._mutex:
            inode = self._live()
            self._fs._raise_if_fault("sync", self._path)
            inode.durable = bytes(inode.data)

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (durable only after ``sync``)."""
        with self._fs._mutex:
            inode = self._live()
            self._fs._raise_if_fault("truncate", self._path)
            _set_size(inode.data, size)

    def close(self) -> None:
        """Close the handle (allowed after a power cut)."""
        self._closed = True


class _FaultyMapped:
    """A MappedFile on an inode of a FaultyFileSystem; ``buffer`` is the live bytes."""

    def __init__(self, fs: FaultyFileSystem, path: str, inode: _Inode) -> None:
        self._fs = fs
        self._path = path
        self._inode = inode
        self._size = len(inode.data)
        self._closed = False

    @property
    def buffer(self) -> mmap.mmap | bytearray:
        """The file's bytes; after a power cut, a detached copy whose writes go nowhere."""
        if self._closed:
            raise ValueError(f"mmap of {self._path} is closed")
        if self._inode.dead:
            return bytearray(self._size)
        return self._inode.data

    def flush(self) -> None:
        """Make the file's current bytes durable (msync)."""
        with self._fs._mutex:
            if self._inode.dead:
                raise _os_error(errno.EIO, self._path, "use after power cut")
            self._fs._raise_if_fault("msync", self._path)
            self._inode.durable = bytes(self._inode.data)

    def close(self) -> None:
        """Unmap (allowed after a power cut)."""
        self._closed = True


class _FaultyLock:
    """A lock of a FaultyFileSystem; a power cut releases it."""

    def __init__(self, fs: FaultyFileSystem, path: str, epoch: int) -> None:
        self._fs = fs
        self._path = path
        self._epoch = epoch

    def release(self) -> None:
        """Release the lock (a no-op for a lock a power cut already released)."""
        self._fs._release(self._path, self._epoch)
