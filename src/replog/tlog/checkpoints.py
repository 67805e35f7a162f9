"""A partition's signed checkpoints on disk, and publishing the next one (an I/O edge of tlog).

Under ``<tlog dir>/checkpoints/`` each checkpoint is one file named by its tree size (decimal),
holding the signed note, 0600, replaced atomically; the newest ``keep`` are kept, so a reader
holding any of them can be given a consistency proof to any later one (the tree itself keeps
every size). A checkpoint is only ever signed for a durable, committed size, and never twice for
one size: two different roots signed for one size would prove the log forked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from replog.errors import InvalidArgumentError
from replog.storage.files import PRIVATE_FILE_MODE, make_private_dir
from replog.tlog.checkpoint import Checkpoint, sign_checkpoint
from replog.tlog.log_tree import LogTree
from replog.tlog.note import Signer

__all__ = ["CHECKPOINTS_DIR", "CheckpointStore", "publish_checkpoint"]

CHECKPOINTS_DIR = "checkpoints"
"""The directory under a partition's ``tlog`` directory holding its checkpoints."""


class CheckpointStore:
    """The signed checkpoints of one partition in ``directory``, the newest ``keep`` kept."""

    def __init__(self, directory: Path, keep: int = 100) -> None:
        if keep < 1:
            raise InvalidArgumentError(f"at least one checkpoint must be kept, not {keep}")
        self.directory = directory
        self.keep = keep

    def sizes(self) -> list[int]:
        """The tree sizes of the checkpoints kept, smallest first."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit() and n == str(int(n)))

    def latest_size(self) -> int | None:
        """The largest tree size a checkpoint was published for (None if none was)."""
        sizes = self.sizes()
        return sizes[-1] if sizes else None

    def read(self, size: int | None = None) -> str:
        """The signed note of the checkpoint of ``size`` (default: the newest);
        InvalidArgumentError if there is none."""
        size = self.latest_size() if size is None else size
        if size is None:
            raise InvalidArgumentError("no checkpoint has been published yet")
        try:
            fd = os.open(self.directory / str(size), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            raise InvalidArgumentError(f"no checkpoint of tree size {size} is kept") from None
        with os.fdopen(fd, "rb") as handle:
            return handle.read().decode("utf-8")

    def write(self, size: int, note: str) -> None:
        """Keep ``note`` as the checkpoint of ``size`` and drop the oldest beyond ``keep``."""
        make_private_dir(self.directory)
        path = self.directory / str(size)
        tmp = self.directory / f".{size}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
        try:
            os.write(fd, note.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        for old in self.sizes()[: -self.keep]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / str(old))


def publish_checkpoint(
    tree: LogTree, store: CheckpointStore, size: int, origin: str, signer: Signer
) -> Checkpoint | None:
    """Sign and keep the checkpoint of tree ``size`` (a committed, durable size) if it is
    larger than the newest kept; return it, or None when there was nothing new."""
    latest = store.latest_size()
    if size <= 0 or (latest is not None and size <= latest):
        return None
    tree.flush()  # every tile of the tree on disk, so a reader can fetch them all
    root = tree.read(lambda tiles: tiles.root(size))
    checkpoint = Checkpoint(origin, size, root)
    store.write(size, sign_checkpoint(checkpoint, signer))
    return checkpoint
