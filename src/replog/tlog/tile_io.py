"""Reading, writing and removing tile files under one directory (private, atomic, no links).

Tiles are derived data (the records are the truth): each file is replaced atomically (written
aside, then renamed), not fsynced, directories 0700 and files 0600, never through a symlink.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from replog.storage.files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE
from replog.tlog.tiles import TILE_WIDTH, Tile

__all__ = ["TileFiles"]


class TileFiles:
    """The tile files under ``directory`` (which must exist)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: set[Path] = set()  # directories this object created or found

    def path_of(self, tile: Tile) -> Path:
        """Where ``tile``'s file is."""
        return self.directory / tile.path()

    def read(self, tile: Tile) -> bytes | None:
        """The file of exactly ``tile`` (at most one byte more than its data, so a longer file
        shows), or None if it is missing or a link."""
        try:
            fd = os.open(self.path_of(tile), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read(tile.data_size + 1)

    def read_prefix(self, level: int, index: int, width: int) -> bytes:
        """The longest prefix, at most ``width`` hashes, of tile ``(level, index)`` that its
        full file or its widest intact partial holds (b"" if none)."""
        full = self.read(Tile(level, index))
        if full is not None and len(full) == Tile(level, index).data_size:
            return full[: width * 32]
        partials = self._partials_dir(level, index)
        try:
            widths = sorted((int(n) for n in os.listdir(partials) if n.isdigit()), reverse=True)
        except OSError:
            return b""
        for wide in widths:
            if 0 < wide < TILE_WIDTH:
                data = self.read(Tile(level, index, wide))
                if data is not None and len(data) == wide * 32:
                    return data[: width * 32]
        return b""

    def write(self, tile: Tile, data: bytes, *, in_place: bool = False) -> None:
        """Replace ``tile``'s file with ``data`` (OSError if it cannot): written aside and
        renamed, or with ``in_place`` straight into the file (a full tile written once: a
        torn one is found by its length, and nobody reads it before the write returns)."""
        path = self.path_of(tile)
        if path.parent not in self._made:
            self._make_dirs(path.parent)
            self._made.add(path.parent)
        tmp = path if in_place else path.with_name(f".{path.name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        try:
            fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
        except FileNotFoundError:  # a directory removed behind our back
            self._made.clear()
            self._make_dirs(path.parent)
            fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        if tmp != path:
            os.replace(tmp, path)

    def remove_other_partials(self, tile: Tile) -> None:
        """Remove the partial files of ``tile``'s index other than ``tile`` itself (all of
        them when ``tile`` is full)."""
        partials = self._partials_dir(tile.level, tile.index)
        if not partials.is_dir() or partials.is_symlink():
            if partials.is_symlink():
                partials.unlink()
            return
        for entry in partials.iterdir():
            if not tile.partial or entry.name != str(tile.width):
                remove_path(entry)
        if not tile.partial:
            remove_path(partials)
            self._made.discard(partials)

    def remove_full(self, level: int, index: int) -> bool:
        """Remove the full file of tile ``(level, index)``; whether there was one."""
        full = self.path_of(Tile(level, index))
        if full.exists() or full.is_symlink():
            remove_path(full)
            return True
        return False

    def remove_index(self, level: int, index: int) -> bool:
        """Remove every file of tile ``(level, index)``; whether there was any."""
        found = self.remove_full(level, index)
        partials = self._partials_dir(level, index)
        if partials.exists() or partials.is_symlink():
            remove_path(partials)
            self._made.discard(partials)
            found = True
        return found

    def forget_dirs(self) -> None:
        """Forget which directories exist (after removing some)."""
        self._made.clear()

    def remove_strays(self, expected: set[str]) -> None:
        """Remove every file under ``tile/`` whose path is not in ``expected``, links, and
        directories left empty."""
        root = self.directory / "tile"
        self._made.clear()
        if not root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for name in filenames:
                path = Path(dirpath) / name
                if path.relative_to(self.directory).as_posix() not in expected:
                    remove_path(path)
            for name in dirnames:
                path = Path(dirpath) / name
                if path.is_symlink():
                    path.unlink()
                    continue
                with contextlib.suppress(OSError):
                    path.rmdir()  # only when empty

    def _partials_dir(self, level: int, index: int) -> Path:
        full = self.path_of(Tile(level, index))
        return full.with_name(full.name + ".p")

    def _make_dirs(self, path: Path) -> None:
        """Create each directory from ``directory`` down to ``path``, 0700."""
        relative = path.relative_to(self.directory)
        current = self.directory
        for part in relative.parts:
            current = current / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(current, PRIVATE_DIR_MODE)
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                remove_path(current)  # a file or symlink where a directory belongs
                os.mkdir(current, PRIVATE_DIR_MODE)


def remove_path(path: Path) -> None:
    """Remove a file, link or directory tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
