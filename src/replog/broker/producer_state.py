"""Idempotent producers' state on one partition: which batch of each producer comes next.

Pure: no I/O, no clock (the newest record timestamp seen stands in for "now"). Every
replica feeds it the same records in log order (``record``), so every replica holds the
same state and a new leader deduplicates a retry of a batch its predecessor appended.

Per producer id the partition keeps its epoch and its last ``KEEP_BATCHES`` batches (first
and last sequence, base offset). A batch from that producer is, in this order (Kafka's
rules, ``ProducerStateManager``):

- refused (``ProducerFencedError``) when its epoch is older than the one known;
- appended when its epoch is newer and its sequence starts at 0;
- a duplicate when its sequence range equals one of the kept batches: the caller answers
  with that batch's offsets and appends nothing;
- appended when it starts right after the last kept batch (sequences wrap at 2^31);
- refused (``OutOfOrderSequenceError``) otherwise, naming the sequence that comes next.

A producer the partition knows nothing of (new, or silent for longer than the expiration)
must start at sequence 0, else ``UnknownProducerError``: without that, a pipelined batch 1
arriving before batch 0 would be appended out of order.

The leader checks proposals against the state of its whole log, committed or not: an
``Overlay`` on top of the applied state holds the batches proposed but not yet applied.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from replog.errors import OutOfOrderSequenceError, ProducerFencedError, UnknownProducerError

__all__ = [
    "KEEP_BATCHES",
    "PRODUCER_ID_EXPIRATION_MS",
    "SEQUENCE_MODULUS",
    "BatchMeta",
    "Overlay",
    "ProducerEntry",
    "ProducerStates",
    "next_sequence",
]

KEEP_BATCHES = 5
"""Batches remembered per producer (Kafka's ``max.in.flight.requests.per.connection`` cap)."""
SEQUENCE_MODULUS = 1 << 31
PRODUCER_ID_EXPIRATION_MS = 7 * 24 * 3600 * 1000
"""A producer silent for this long is forgotten (Kafka's ``producer.id.expiration.ms``)."""


def next_sequence(sequence: int, count: int) -> int:
    """The sequence after ``count`` records from ``sequence``."""
    return (sequence + count) % SEQUENCE_MODULUS


@dataclass(frozen=True, slots=True)
class BatchMeta:
    """One appended batch of a producer: its sequences, base offset and record count."""

    first_sequence: int
    count: int
    base_offset: int
    term: int = 0
    """The Raft term of its entries (0 on a single node): what a duplicate waits on."""

    @property
    def last_offset(self) -> int:
        """The offset of the batch's last record."""
        return self.base_offset + self.count - 1


@dataclass(slots=True)
class ProducerEntry:
    """What a partition knows of one producer id."""

    epoch: int
    last_timestamp_ms: int
    batches: deque[BatchMeta] = field(default_factory=lambda: deque(maxlen=KEEP_BATCHES))

    def copy(self) -> ProducerEntry:
        """An independent copy (the overlay changes copies, never the applied state)."""
        return ProducerEntry(
            self.epoch, self.last_timestamp_ms, deque(self.batches, maxlen=KEEP_BATCHES)
        )


def _decide(
    entry: ProducerEntry | None, producer_id: int, epoch: int, sequence: int, count: int
) -> BatchMeta | None:
    """None: append the batch; a BatchMeta: it duplicates that batch; else raises."""
    if entry is None:
        if sequence != 0:
            raise UnknownProducerError(producer_id)
        return None
    if epoch < entry.epoch:
        raise ProducerFencedError(epoch, entry.epoch)
    if epoch > entry.epoch:
        if sequence != 0:
            raise OutOfOrderSequenceError(0, sequence)
        return None
    for batch in entry.batches:
        if batch.first_sequence == sequence and batch.count == count:
            return batch
    expected = next_sequence(entry.batches[-1].first_sequence, entry.batches[-1].count)
    if sequence != expected:
        raise OutOfOrderSequenceError(expected, sequence)
    return None


def _recorded(
    entry: ProducerEntry | None, epoch: int, batch: BatchMeta, timestamp_ms: int
) -> ProducerEntry:
    if entry is None or epoch != entry.epoch:
        entry = ProducerEntry(epoch, timestamp_ms)
    entry.batches.append(batch)
    entry.last_timestamp_ms = max(entry.last_timestamp_ms, timestamp_ms)
    return entry


class ProducerStates:
    """The producer state of a partition's applied records (see the module docstring)."""

    def __init__(self, expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        self.expiration_ms = expiration_ms
        self.entries: dict[int, ProducerEntry] = {}
        self.newest_timestamp_ms = 0
        """The newest record timestamp recorded: "now" for expiration, the same on every
        replica."""

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        """The state of ``producer_id``; None when unknown or expired."""
        entry = self.entries.get(producer_id)
        if entry is not None and self._expired(entry):
            return None
        return entry

    def _expired(self, entry: ProducerEntry) -> bool:
        return entry.last_timestamp_ms < self.newest_timestamp_ms - self.expiration_ms

    def check(self, producer_id: int, epoch: int, sequence: int, count: int) -> BatchMeta | None:
        """None when the batch is to be appended; the batch it duplicates; or raises
        ProducerFencedError, OutOfOrderSequenceError or UnknownProducerError."""
        return _decide(self.entry(producer_id), producer_id, epoch, sequence, count)

    def record(self, producer_id: int, epoch: int, batch: BatchMeta, timestamp_ms: int) -> None:
        """Note an appended batch of ``producer_id`` (fed in log order)."""
        self.entries[producer_id] = _recorded(self.entry(producer_id), epoch, batch, timestamp_ms)
        self.newest_timestamp_ms = max(self.newest_timestamp_ms, timestamp_ms)
        if len(self.entries) > 64 and len(self.entries) & 1023 == 0:
            self.sweep()

    def sweep(self) -> int:
        """Forget expired producers; return how many."""
        expired = [pid for pid, e in self.entries.items() if self._expired(e)]
        for pid in expired:
            del self.entries[pid]
        return len(expired)

    def forget_after(self, offset: int) -> None:
        """Drop the batches at offsets above ``offset`` (a log suffix was cut). A producer
        left without batches is forgotten."""
        for pid in list(self.entries):
            entry = self.entries[pid]
            kept = [b for b in entry.batches if b.last_offset <= offset]
            if len(kept) == len(entry.batches):
                continue
            if kept:
                entry.batches = deque(kept, maxlen=KEEP_BATCHES)
            else:
                del self.entries[pid]

    def items(self) -> Iterator[tuple[int, ProducerEntry]]:
        """Every (producer id, entry) held, expired ones included."""
        return iter(self.entries.items())

    def load(self, entries: Iterable[tuple[int, ProducerEntry]], newest_timestamp_ms: int) -> None:
        """Replace the state (from a checkpoint)."""
        self.entries = dict(entries)
        self.newest_timestamp_ms = newest_timestamp_ms


class Overlay:
    """The leader's view: the applied state plus the batches it proposed that are not
    applied yet. Checks see both; ``prune`` drops what the applied state has caught up on."""

    def __init__(self, base: ProducerStates) -> None:
        self.base = base
        self._entries: dict[int, ProducerEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, producer_id: int) -> ProducerEntry | None:
        entry = self._entries.get(producer_id)
        return entry if entry is not None else self.base.entry(producer_id)

    def check(self, producer_id: int, epoch: int, sequence: int, count: int) -> BatchMeta | None:
        """As ``ProducerStates.check``, over the applied and the pending batches."""
        return _decide(self._entry(producer_id), producer_id, epoch, sequence, count)

    def record(self, producer_id: int, epoch: int, batch: BatchMeta, timestamp_ms: int) -> None:
        """Note a batch proposed (appended to the leader's log, not yet applied)."""
        entry = self._entries.get(producer_id)
        if entry is None:
            base = self.base.entry(producer_id)
            entry = base.copy() if base is not None else None
        self._entries[producer_id] = _recorded(entry, epoch, batch, timestamp_ms)

    def prune(self, applied: int) -> None:
        """Drop producers whose pending batches are all at or below offset ``applied``."""
        if not self._entries:
            return
        done = [pid for pid, e in self._entries.items() if e.batches[-1].last_offset <= applied]
        for pid in done:
            del self._entries[pid]

    def commit_into_base(self) -> None:
        """Make every pending batch applied (a single node: appended = applied)."""
        self.base.entries.update(self._entries)
        for entry in self._entries.values():
            self.base.newest_timestamp_ms = max(
                self.base.newest_timestamp_ms, entry.last_timestamp_ms
            )
        self._entries.clear()

    def clear(self) -> None:
        """Forget every pending batch."""
        self._entries.clear()
