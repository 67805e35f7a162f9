"""Replacing a small state file durably (hard state, address book, group markers,
producer-state checkpoints)."""

from __future__ import annotations

from pathlib import Path

from replog.storage.files import FileSystem, OsFileSystem

__all__ = ["write_atomically"]


def write_atomically(path: Path, data: bytes, fs: FileSystem | None = None) -> None:
    """Replace ``path`` with ``data`` durably: temp file, fsync, rename, fsync the directory."""
    fs = fs or OsFileSystem()
    tmp = str(path.with_name(path.name + ".tmp"))
    handle = fs.open(tmp)
    try:
        handle.truncate(0)  # a temp file a crash left behind
        handle.append(data)
        handle.sync()
    finally:
        handle.close()
    fs.replace(tmp, str(path))
    fs.sync_dir(str(path.parent))
