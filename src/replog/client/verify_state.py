"""The checkpoints a verifying client trusts, one per log origin, as a witness keeps them:
in memory, and in a small JSON state file when one is given, so a client that restarts still
refuses a log that was rolled back or forked behind its back.

The file is ``{"version": 1, "logs": {"<origin>": {"size": N, "root": "<base64>"}}}``,
replaced atomically (a temporary file, fsync, rename, fsync of the directory), mode 0600.
One client (process) per state file: the file is read once, when the client is made.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from replog.errors import InvalidArgumentError

__all__ = ["TrustStore", "Trusted"]

_VERSION = 1
_MAX_STATE_BYTES = 16 << 20
_HASH_SIZE = 32


@dataclass(frozen=True, slots=True)
class Trusted:
    """A checkpoint the client verified: log ``origin``'s tree ``size`` and ``root`` hash."""

    origin: str
    size: int
    root: bytes


class TrustStore:
    """The trusted checkpoint of each log origin (thread-safe); saved to ``path`` if given.

    InvalidArgumentError if ``path`` holds something other than a state file, or its
    directory does not exist."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._logs: dict[str, Trusted] = {} if self.path is None else _load(self.path)

    def get(self, origin: str) -> Trusted | None:
        """The checkpoint trusted for ``origin``, None before the first."""
        with self._lock:
            return self._logs.get(origin)

    def advance(self, expected: Trusted | None, new: Trusted) -> bool:
        """Trust ``new`` in place of ``expected`` (what the caller proved it extends), and
        save; False, changing nothing, if the trusted checkpoint is no longer ``expected``
        (another thread moved it on meanwhile)."""
        with self._lock:
            if self._logs.get(new.origin) != expected:
                return False
            if new != expected:
                self._logs[new.origin] = new
                if self.path is not None:
                    _save(self.path, self._logs)
            return True


def _load(path: Path) -> dict[str, Trusted]:
    if not path.parent.is_dir():
        raise InvalidArgumentError(f"the verify state file's directory {path.parent} is missing")
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidArgumentError(f"the verify state file {path} cannot be read: {exc}") from None
    try:
        if len(data) > _MAX_STATE_BYTES:
            raise ValueError("too large")
        document = json.loads(data)
        if document.get("version") != _VERSION or not isinstance(document.get("logs"), dict):
            raise ValueError("not a version 1 state")
        return {o: _trusted(o, entry) for o, entry in document["logs"].items()}
    except (ValueError, TypeError, AttributeError, KeyError, binascii.Error):
        raise InvalidArgumentError(f"{path} is not a replog verify state file") from None


def _trusted(origin: str, entry: dict[str, object]) -> Trusted:
    size, root_text = entry["size"], entry["root"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("a size is not a count")
    if not isinstance(root_text, str):
        raise ValueError("a root is not text")
    root = base64.b64decode(root_text, validate=True)
    if len(root) != _HASH_SIZE:
        raise ValueError("a root is not a hash")
    return Trusted(origin, size, root)


def _save(path: Path, logs: dict[str, Trusted]) -> None:
    document = {
        "version": _VERSION,
        "logs": {
            origin: {"size": t.size, "root": base64.b64encode(t.root).decode()}
            for origin, t in sorted(logs.items())
        },
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    with os.fdopen(os.open(tmp, flags, 0o600), "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # a leftover temporary file keeps its mode otherwise
        handle.write(json.dumps(document, indent=1).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
