"""LogConfig: the knobs of a Log, validated before anything touches the disk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from replog.errors import ConfigError
from replog.storage.codec import FRAME_HEADER_BYTES
from replog.storage.index import ENTRY_BYTES

SyncPolicy = Literal["always", "interval", "never"]
SYNC_POLICIES: tuple[SyncPolicy, ...] = ("always", "interval", "never")

#: Upper bound of one offset: offsets are unsigned 64-bit numbers on the wire.
MAX_OFFSET = 2**64 - 1
_MAX_STORE_BYTES = 2**40
# Relative offsets are uint32 in the index, so one segment holds at most 2**32 entries.
_MAX_INDEX_BYTES = ENTRY_BYTES * (2**32 - 1)


@dataclass(frozen=True, slots=True)
class LogConfig:
    """How a Log sizes its segments and when it makes appends durable.

    - ``max_store_bytes``: a segment's store file rolls over once it reaches this size.
    - ``max_index_bytes``: a segment's index size (a whole number of 12-byte entries);
      a segment also rolls over when its index is full.
    - ``max_record_bytes``: the largest encoded record an append accepts.
    - ``initial_offset``: the offset of the first record of a new, empty log.
    - ``sync``: ``"always"`` — an append returns only after fdatasync (concurrent appends
      share one fsync: group commit); ``"interval"`` — a background fsync every
      ``sync_interval_ms``; ``"never"`` — the OS decides. Under every policy an append
      has reached the OS (it survives the process being killed) when it returns.
    - ``segment_ms``: when set, the active segment also rolls once its first record's
      timestamp is ``segment_ms`` or more older than now (Kafka's ``segment.ms``), checked
      before each append and by ``Log.roll_if_due``, so that time-based retention can
      delete a quiet partition's old records. None: segments roll by size only.
    """

    max_store_bytes: int = 64 * 1024 * 1024
    max_index_bytes: int = ENTRY_BYTES * 1024 * 1024
    max_record_bytes: int = 1024 * 1024
    initial_offset: int = 0
    sync: SyncPolicy = "always"
    sync_interval_ms: int = 100
    segment_ms: int | None = None

    def __post_init__(self) -> None:
        _check_int("max_store_bytes", self.max_store_bytes, 64, _MAX_STORE_BYTES)
        _check_int("max_index_bytes", self.max_index_bytes, ENTRY_BYTES, _MAX_INDEX_BYTES)
        if self.max_index_bytes % ENTRY_BYTES:
            low = self.max_index_bytes - self.max_index_bytes % ENTRY_BYTES
            raise ConfigError(
                f"max_index_bytes must be a whole number of {ENTRY_BYTES}-byte entries, "
                f"got {self.max_index_bytes} (try {low} or {low + ENTRY_BYTES})"
            )
        _check_int("max_record_bytes", self.max_record_bytes, 1, 2**31)
        if self.max_record_bytes + FRAME_HEADER_BYTES > self.max_store_bytes:
            raise ConfigError(
                f"max_record_bytes ({self.max_record_bytes}) plus the {FRAME_HEADER_BYTES}-byte "
                f"frame header must fit in max_store_bytes ({self.max_store_bytes})"
            )
        _check_int("initial_offset", self.initial_offset, 0, MAX_OFFSET)
        if self.sync not in SYNC_POLICIES:
            raise ConfigError(f"sync must be one of {', '.join(SYNC_POLICIES)}, got {self.sync!r}")
        _check_int("sync_interval_ms", self.sync_interval_ms, 1, 3_600_000)
        if self.segment_ms is not None:
            _check_int("segment_ms", self.segment_ms, 1, 2**62)


def is_offset(value: object) -> bool:
    """Whether ``value`` can be an offset's type: an int and not a bool (``truncate_after(True)``
    once cut the log after offset 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
