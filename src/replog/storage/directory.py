"""A log directory: its lock and the segments it holds."""

from __future__ import annotations

import errno
import os
import re

from replog.errors import ConfigError, LogLockedError
from replog.storage.config import LogConfig
from replog.storage.files import FileLock, FileSystem
from replog.storage.segment import INDEX_SUFFIX, Segment

__all__ = [
    "LOCK_NAME",
    "SEGMENT_NAME",
    "discover_segments",
    "load_segments",
    "lock_directory",
    "new_segment",
    "open_segment",
]

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


def open_segment(
    fs: FileSystem, directory: str, config: LogConfig, base: int, sealed_next: int | None
) -> Segment:
    """Open the segment at ``base``: sealed (ending at ``sealed_next``) or active (None)."""
    return Segment(
        fs,
        directory,
        base,
        max_store_bytes=config.max_store_bytes,
        max_index_bytes=config.max_index_bytes,
        max_record_bytes=config.max_record_bytes,
        sealed_next_offset=sealed_next,
    )


def new_segment(fs: FileSystem, directory: str, config: LogConfig, base: int) -> Segment:
    """Start an empty active segment at ``base`` (emptying leftovers of a removed one)."""
    segment = open_segment(fs, directory, config, base, None)
    if segment.next_offset != base:  # leftover files of a removed segment
        segment.truncate_after(base - 1)
    return segment


def load_segments(fs: FileSystem, directory: str, config: LogConfig) -> list[Segment]:
    """Open every segment of ``directory``, or start its first one at the initial offset."""
    bases = discover_segments(fs, directory)
    if not bases:
        segments = [new_segment(fs, directory, config, config.initial_offset)]
        fs.sync_dir(directory)
        return segments
    nexts: list[int | None] = [*bases[1:], None]
    return [
        open_segment(fs, directory, config, base, sealed_next)
        for base, sealed_next in zip(bases, nexts, strict=True)
    ]
