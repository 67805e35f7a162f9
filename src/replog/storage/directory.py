"""A log directory: its lock and the segments it holds."""

from __future__ import annotations

import errno
import os
import re

from replog.errors import ConfigError, LogLockedError
from replog.storage.files import FileLock, FileSystem
from replog.storage.segment import INDEX_SUFFIX

__all__ = ["LOCK_NAME", "SEGMENT_NAME", "discover_segments", "lock_directory"]

LOCK_NAME = ".lock"
SEGMENT_NAME = re.compile(r"^(\d{20})\.(store|index)$")
# What flock(2) on a directory answers where it cannot lock one (NFS: EBADF, as the lock is
# emulated with a write lock, which needs a file open for writing).
_CANNOT_LOCK = (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)


def lock_directory(fs: FileSystem, directory: str) -> FileLock:
    """Create ``directory`` if needed and take its exclusive lock.

    Raises ConfigError when the path is not a usable directory and LogLockedError when
    another Log, in this process or another, holds the lock.
    """
    # Asks the FileSystem (not os.path) so an in-memory FileSystem works too.
    if fs.exists(directory) and not fs.is_dir(directory):
        raise ConfigError(f"{directory} exists and is not a directory")
    try:
        fs.makedirs(directory)
        return fs.lock(os.path.join(directory, LOCK_NAME))
    except BlockingIOError as exc:
        raise LogLockedError(
            f"{directory} is already open in another Log (in this process or another)"
        ) from exc
    except PermissionError as exc:
        raise ConfigError(f"{directory} is not writable: {exc.strerror}") from exc
    except NotADirectoryError as exc:
        raise ConfigError(f"{directory} is not a directory: {exc.strerror}") from exc
    except OSError as exc:
        if exc.errno not in _CANNOT_LOCK:
            raise
        raise ConfigError(
            f"cannot lock {directory}: {exc.strerror} (keep logs on a local file system)"
        ) from exc


def discover_segments(fs: FileSystem, directory: str) -> list[int]:
    """Return the base offsets of the segments in ``directory``, in order.

    The store is the truth: an index file without its store is left from an interrupted
    removal and is deleted.
    """
    kinds: dict[int, set[str]] = {}
    for name in fs.listdir(directory):
        match = SEGMENT_NAME.match(name)
        if match:
            kinds.setdefault(int(match.group(1)), set()).add(match.group(2))
    bases = []
    for base, found in sorted(kinds.items()):
        if "store" in found:
            bases.append(base)
        else:
            fs.remove(os.path.join(directory, f"{base:020d}{INDEX_SUFFIX}"))
    return bases
