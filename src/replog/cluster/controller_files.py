"""Snapshot files of the controller state, so the controller log can be compacted.

A snapshot is the ``ControllerState`` a node applied as of log index ``index`` (and the term
of the entry there), written by the node itself into the controller group's directory as
``controller-<index>.snapshot`` (private, 0600; replaced atomically: temp file, fsync,
rename, directory fsync). Retention of the controller log (topic ``default``/0) deletes
segments only below the newest durable snapshot's index, so a restart loads the newest valid
snapshot and folds the metadata entries after it; a follower caught up by a Raft snapshot
receives the sender's snapshot file with the records (``accept``) and so never needs the
entries the leader deleted.

File layout: ``MAGIC`` (8 bytes), index (u64), term (u64), length of the state (u32),
CRC-32C of those 20 header bytes and the state (u32), then the state's canonical bytes
(``controller_snapshot.encode_state``). A file that is short, fails its checksum or does not
decode is damaged: it is ignored (and logged), never used.

Blocking; the owner calls it from a worker thread or accepts a short fsync on its loop.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from replog.cluster.controller_snapshot import decode_state, encode_state
from replog.cluster.controller_state import ControllerState
from replog.errors import InvalidArgumentError, ReplogError, UnavailableError
from replog.storage.atomic import write_atomically
from replog.storage.codec import crc32c
from replog.storage.files import FileSystem, OsFileSystem

__all__ = ["MAGIC", "ControllerSnapshots", "SavedSnapshot", "decode_file", "encode_file"]

log = logging.getLogger("replog.cluster.metadata")

MAGIC = b"RLCTLSN1"
_HEADER = struct.Struct(">QQI")
_CRC = struct.Struct(">I")
_PREFIX = len(MAGIC) + _HEADER.size + _CRC.size
_NAME = re.compile(r"controller-(\d{20})\.snapshot")


@dataclass(frozen=True, slots=True)
class SavedSnapshot:
    """One valid snapshot: the state as of ``index`` (entry term ``term``), and the file's
    bytes (what is sent to a follower as they are)."""

    index: int
    term: int
    state: ControllerState
    data: bytes


def encode_file(index: int, term: int, state: ControllerState) -> bytes:
    """The bytes of a snapshot file of ``state`` as of ``index``."""
    body = encode_state(state)
    header = _HEADER.pack(index, term, len(body))
    return MAGIC + header + _CRC.pack(crc32c(header + body)) + body


def decode_file(data: bytes) -> SavedSnapshot:
    """The snapshot ``data`` holds. InvalidArgumentError if it is damaged (short, another
    format, a failed checksum, a state that does not decode); UnsupportedError for a state
    format this node does not know."""
    if len(data) < _PREFIX or not data.startswith(MAGIC):
        raise InvalidArgumentError("not a controller snapshot file (short, or no magic)")
    header = data[len(MAGIC) : len(MAGIC) + _HEADER.size]
    index, term, size = _HEADER.unpack(header)
    (crc,) = _CRC.unpack_from(data, len(MAGIC) + _HEADER.size)
    body = data[_PREFIX:]
    if len(body) != size or crc32c(header + body) != crc:
        raise InvalidArgumentError("controller snapshot file fails its checksum")
    return SavedSnapshot(index, term, decode_state(body), data)


class ControllerSnapshots:
    """The snapshot files in one directory (the controller group's); see the module
    docstring. ``newest_index`` is the index of the newest one known valid and durable (0:
    none), the bound below which the controller log may be compacted."""

    def __init__(self, directory: str | Path, fs: FileSystem | None = None) -> None:
        """Follow the snapshots in ``directory`` (call ``load`` to read them)."""
        self.directory = Path(directory)
        self._fs = fs or OsFileSystem()
        self.newest_index = 0
        self.newest_version = -1
        """The state version (last metadata command's index) of the newest snapshot."""
        # Writers run on several threads (a save in a worker, an install on the node's loop,
        # a received snapshot in another worker): one at a time, so none prunes or renames
        # a file another is writing. Temp files a crash left behind go now, not per write.
        self._writing = threading.RLock()
        self._remove_temps()

    def path(self, index: int) -> Path:
        """Where the snapshot as of ``index`` is kept."""
        return self.directory / f"controller-{index:020d}.snapshot"

    def indexes(self) -> list[int]:
        """The indexes of the snapshot files present (valid or not), newest first."""
        names = (_NAME.fullmatch(n) for n in self._fs.listdir(str(self.directory)))
        return sorted((int(m.group(1)) for m in names if m is not None), reverse=True)

    def load(self) -> list[SavedSnapshot]:
        """Every valid snapshot, newest first (a damaged one is logged and skipped; one
        whose file name and contents disagree counts as damaged). Raises ``newest_index``
        to the newest found (never lowers it: a write may finish meanwhile)."""
        valid = []
        for index in self.indexes():
            try:
                saved = decode_file(self._read(self.path(index)))
                if saved.index != index:
                    raise InvalidArgumentError(f"it holds the state as of {saved.index}")
            except (ReplogError, OSError) as exc:
                log.warning("controller snapshot %s is damaged, ignored: %s", index, exc)
                continue
            valid.append(saved)
        if valid and valid[0].index > self.newest_index:
            self._note(valid[0])
        return valid

    def write(self, index: int, term: int, state: ControllerState) -> SavedSnapshot:
        """Durably keep ``state`` as of ``index``; prune older files (see ``_prune``)."""
        data = encode_file(index, term, state)
        saved = SavedSnapshot(index, term, state, data)
        self._keep(saved)
        return saved

    def _keep(self, saved: SavedSnapshot) -> None:
        with self._writing:
            write_atomically(self.path(saved.index), saved.data, self._fs)
            self._prune(saved.index)
            if saved.index > self.newest_index:
                self._note(saved)

    def _note(self, saved: SavedSnapshot) -> None:
        self.newest_index, self.newest_version = saved.index, saved.state.version

    def _prune(self, kept: int) -> None:
        """Delete the files older than ``kept`` except the newest of them (a fallback).
        Newer files stay."""
        older = [i for i in self.indexes() if i < kept]
        for index in older[1:]:
            self._fs.remove(str(self.path(index)))

    def _remove_temps(self) -> None:
        """Delete the temp files a crash left behind (none is being written yet)."""
        try:
            names = self._fs.listdir(str(self.directory))
        except OSError:
            return  # no directory yet: nothing left behind
        for name in names:
            if name.startswith("controller-") and name.endswith(".snapshot.tmp"):
                self._fs.remove(str(self.directory / name))

    def _read(self, path: Path) -> bytes:
        handle = self._fs.open(str(path))
        try:
            return handle.pread(handle.size(), 0)
        finally:
            handle.close()

    # -- catching a follower up (the snapshot's group state, see cluster/snapshot.py) -------

    def outgoing(self, index: int, first_offset: int) -> bytes:
        """The snapshot file to send with the records from ``first_offset`` up to ``index``:
        the newest valid one those records continue (its index within ``[first_offset - 1,
        index]``). Empty when the records start at 1 and none fits (the receiver folds them
        all). UnavailableError when none fits otherwise (the send is retried later)."""
        for saved in self.load():
            if first_offset - 1 <= saved.index <= index:
                return saved.data
        if first_offset == 1:
            return b""
        raise UnavailableError(
            f"no controller snapshot between {first_offset - 1} and {index} to send yet"
        )

    def accept(self, data: bytes, first_offset: int, index: int) -> None:
        """Keep a leader's snapshot file received with its records from ``first_offset`` up
        to ``index``, before they are installed. InvalidArgumentError (nothing kept) if it
        is damaged or those records do not continue it: installing them would leave this
        node without the metadata."""
        if not data:
            if first_offset != 1:
                raise InvalidArgumentError(
                    f"a controller snapshot stream from {first_offset} came without the state"
                )
            return
        saved = decode_file(data)
        if not first_offset - 1 <= saved.index <= index:
            raise InvalidArgumentError(
                f"the controller snapshot as of {saved.index} does not fit records "
                f"{first_offset}..{index}"
            )
        self._keep(saved)
