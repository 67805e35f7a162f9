"""A partition's producer state kept beside its log: rebuilt from the log on open, fed the
records as they are appended (or applied), checkpointed now and then.

The log is the truth, the state derived from it: ``producers.json`` in the partition's
directory holds the state as of an offset, so opening replays only the records after it
(as Kafka's producer-state snapshots do). A missing or damaged checkpoint, or one past the
log's end (a cut suffix), is ignored and the state rebuilt from the whole log. A
checkpoint older than the log's first offset still holds the producers of the records
retention deleted, so their retries are still recognised.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from replog.broker.producer_records import producer_fields
from replog.broker.producer_state import (
    PRODUCER_ID_EXPIRATION_MS,
    BatchMeta,
    ProducerEntry,
    ProducerStates,
)
from replog.storage.atomic import write_atomically

__all__ = ["CHECKPOINT_EVERY_RECORDS", "CHECKPOINT_NAME", "PartitionProducers"]

CHECKPOINT_NAME = "producers.json"
CHECKPOINT_EVERY_RECORDS = 1 << 20
"""Records between checkpoints: what a restart after a crash re-reads at most."""
_SCAN_RECORDS = 4096
_VERSION = 1

log = logging.getLogger("replog.broker")

ReadPayloads = Callable[[int, int], list[bytes]]
"""``read(offset, max_records)``: serialized records from ``offset`` (empty at the end)."""


class PartitionProducers:
    """The producer state of one partition's records below ``covered``."""

    def __init__(
        self, directory: Path | None, expiration_ms: int = PRODUCER_ID_EXPIRATION_MS
    ) -> None:
        """Checkpoints go to ``directory`` (None: none are kept; every open replays)."""
        self.path = directory / CHECKPOINT_NAME if directory is not None else None
        self.states = ProducerStates(expiration_ms)
        self.covered = 0
        """The offset after the last record the state reflects."""
        self._checkpointed = 0
        self._write_lock = threading.Lock()
        self._written = -1  # the offset of the newest checkpoint written

    # -- opening ------------------------------------------------------------------------------

    def rebuild(self, read: ReadPayloads, lowest: int, end: int) -> int:
        """Load the checkpoint and replay the records of ``[lowest, end)`` after it;
        return how many records were read."""
        start = lowest
        loaded = self._load()
        if loaded is not None and loaded <= end:
            start = max(loaded, lowest)
        else:
            self.states = ProducerStates(self.states.expiration_ms)
        self.covered = start
        self._checkpointed = start if loaded is not None and loaded <= end else 0
        offset = start
        while offset < end:
            payloads = read(offset, min(_SCAN_RECORDS, end - offset))
            if not payloads:
                break
            self.note(payloads, offset)
            offset += len(payloads)
        self.covered = end
        return offset - start

    def _load(self) -> int | None:
        if self.path is None:
            return None
        try:
            doc = json.loads(self.path.read_bytes())
            if doc.get("version") != _VERSION:
                return None
            entries = [_entry_from_json(e) for e in doc["producers"]]
            self.states.load(entries, int(doc["newest_timestamp_ms"]))
            return int(doc["offset"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("%s is unreadable (%s); rebuilding it from the log", self.path, exc)
            return None

    # -- feeding ------------------------------------------------------------------------------

    def note(self, payloads: Sequence[bytes], first_offset: int) -> None:
        """Feed serialized records from ``first_offset`` (appended or applied, in order)."""
        record = self.states.record
        for i, payload in enumerate(payloads):
            fields = producer_fields(payload)
            if fields is not None:
                batch = BatchMeta(fields.sequence, fields.records, first_offset + i, fields.term)
                record(fields.producer_id, fields.epoch, batch, fields.timestamp_ms)
        self.covered = max(self.covered, first_offset + len(payloads))

    def forget_after(self, offset: int) -> None:
        """The log lost its records above ``offset``."""
        self.states.forget_after(offset)
        self.covered = min(self.covered, offset + 1)
        self._checkpointed = min(self._checkpointed, self.covered)

    # -- checkpoints --------------------------------------------------------------------------

    def due(self) -> bool:
        """Whether enough records were fed since the last checkpoint to write one."""
        return self.covered - self._checkpointed >= CHECKPOINT_EVERY_RECORDS

    @property
    def checkpointed(self) -> int:
        """The offset the newest checkpoint (taken) covers records below."""
        return self._checkpointed

    def snapshot(self) -> bytes:
        """The checkpoint of the state now (serialize on the thread that feeds the state,
        write with ``write`` anywhere)."""
        doc = {
            "version": _VERSION,
            "offset": self.covered,
            "newest_timestamp_ms": self.states.newest_timestamp_ms,
            "producers": [_entry_json(pid, e) for pid, e in self.states.items()],
        }
        self._checkpointed = self.covered
        return json.dumps(doc, separators=(",", ":")).encode()

    def write(self, data: bytes) -> None:
        """Write a ``snapshot`` durably (a private file, replaced atomically). Writes are
        serialised, and one older than the checkpoint on disk is dropped."""
        if self.path is None:
            return
        offset = int(json.loads(data)["offset"])
        with self._write_lock:
            if offset < self._written:
                return
            write_atomically(self.path, data)
            self._written = offset


def _entry_json(pid: int, entry: ProducerEntry) -> list[Any]:
    batches = [[b.first_sequence, b.count, b.base_offset, b.term] for b in entry.batches]
    return [pid, entry.epoch, entry.last_timestamp_ms, batches]


def _entry_from_json(raw: Any) -> tuple[int, ProducerEntry]:
    pid, epoch, last_ts, batches = raw
    entry = ProducerEntry(int(epoch), int(last_ts))
    for first, count, base, term in batches:
        entry.batches.append(BatchMeta(int(first), int(count), int(base), int(term)))
    if not entry.batches:
        raise ValueError("a producer without batches")
    return int(pid), entry
