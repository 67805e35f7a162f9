"""Consumer groups' durable state as records of the internal offsets topic, and the state
those records add up to. Pure: no I/O.

Every group lives in one partition of ``__consumer_offsets`` (``OFFSETS_TOPIC``), chosen by
the group name; the leader of that partition is the group's coordinator. The partition's
log is the truth: every replica that reads it in order reaches the same ``GroupLogState``.

Four kinds of record, each a JSON object in the record's value (the key is the group name,
so the topic can be compacted by key later):

- ``start``: a coordinator took over the partition; ``inc`` is its incarnation (random).
- ``commit``: offsets of one group, written atomically (``o``: [topic, partition, offset,
  metadata] lists).
- ``epoch``: a group's epoch (generation) and assignor after a rebalance.
- ``delete``: the group is gone (its offsets and epoch with it).

Only records written by the latest incarnation count: a ``commit`` (or ``epoch`` or
``delete``) whose ``inc`` is not that of the last ``start`` before it was written by a
coordinator that had been replaced, and is ignored by every reader. So a deposed
coordinator can never land a commit after its successor started, and the successor can
tell its caller for certain that such a write was not applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from replog.errors import CorruptRecordError
from replog.v1.record_pb2 import Record

__all__ = [
    "MAX_METADATA_BYTES",
    "OFFSETS_TOPIC",
    "RECORD_BUDGET",
    "GroupLogState",
    "commit_record",
    "commit_records",
    "copy_batches",
    "delete_record",
    "epoch_record",
    "start_record",
    "state_records",
]

OFFSETS_TOPIC = "__consumer_offsets"
"""The internal topic that holds consumer groups' committed offsets and epochs."""

RECORD_BUDGET = 64 * 1024
"""About how large one group record grows before a commit spans another (well under any
max_record_bytes a topic may have)."""

MAX_METADATA_BYTES = 4096
"""The longest metadata a committed offset may carry (Kafka's offset.metadata.max.bytes)."""

TopicPartitionKey = tuple[str, int]


def _record(group: str, body: dict[str, object]) -> Record:
    return Record(key=group.encode(), value=json.dumps(body, separators=(",", ":")).encode())


def start_record(incarnation: str) -> Record:
    """A coordinator with this incarnation took over the partition."""
    return _record("", {"k": "start", "inc": incarnation})


def commit_record(incarnation: str, group: str, offsets: list[tuple[str, int, int, str]]) -> Record:
    """``group`` committed ``offsets`` ((topic, partition, offset, metadata) each)."""
    rows = [[t, p, o, m] for t, p, o, m in offsets]
    return _record(group, {"k": "commit", "inc": incarnation, "g": group, "o": rows})


def commit_records(
    incarnation: str,
    group: str,
    offsets: list[tuple[str, int, int, str]],
    max_bytes: int = RECORD_BUDGET,
) -> list[Record]:
    """``commit_record``s of ``offsets``, each at most about ``max_bytes`` (a commit of many
    partitions, or of long metadata, spans several records; appended as one batch they
    still land all or none)."""
    out: list[Record] = []
    chunk: list[tuple[str, int, int, str]] = []
    size = 0
    for row in offsets:
        row_bytes = len(row[0]) + len(row[3]) + 48
        if chunk and size + row_bytes > max_bytes:
            out.append(commit_record(incarnation, group, chunk))
            chunk, size = [], 0
        chunk.append(row)
        size += row_bytes
    if chunk:
        out.append(commit_record(incarnation, group, chunk))
    return out


def copy_batches(records: list[Record], max_bytes: int = 4 * RECORD_BUDGET) -> list[list[Record]]:
    """``records`` cut into consecutive batches of at most about ``max_bytes`` each."""
    batches: list[list[Record]] = []
    size = 0
    for record in records:
        if not batches or size + len(record.value) > max_bytes:
            batches.append([])
            size = 0
        batches[-1].append(record)
        size += len(record.value)
    return batches


def epoch_record(incarnation: str, group: str, epoch: int, assignor: str) -> Record:
    """``group`` is at ``epoch`` with ``assignor``."""
    return _record(group, {"k": "epoch", "inc": incarnation, "g": group, "e": epoch, "a": assignor})


def delete_record(incarnation: str, group: str) -> Record:
    """``group`` was deleted."""
    return _record(group, {"k": "delete", "inc": incarnation, "g": group})


def state_records(state: GroupLogState, incarnation: str) -> list[Record]:
    """Records that rebuild ``state``'s groups under ``incarnation``: each group's epoch and
    all its offsets (the copy a compaction writes after a new ``start``)."""
    out = []
    for group in sorted(state.groups()):
        if group in state.epochs:
            assignor = state.assignors.get(group, "")
            out.append(epoch_record(incarnation, group, state.epochs[group], assignor))
        offsets = state.offsets.get(group)
        if offsets:
            rows = [(t, p, o, m) for (t, p), (o, m) in sorted(offsets.items())]
            out.extend(commit_records(incarnation, group, rows))
    return out


@dataclass(slots=True)
class GroupLogState:
    """What the records of one offsets partition add up to, read in offset order."""

    incarnation: str = ""
    offsets: dict[str, dict[TopicPartitionKey, tuple[int, str]]] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)
    assignors: dict[str, str] = field(default_factory=dict)
    next_offset: int = 0
    """The offset after the last record applied."""
    accepted: dict[int, bool] = field(default_factory=dict)
    """Whether each recent write (by offset) counted; kept for ``take_outcome``."""

    def apply(self, offset: int, value: bytes) -> bool:
        """Apply the record at ``offset``; True when it counted. Raises CorruptRecordError
        for a value that is not one of the kinds above (it is skipped: nothing changes)."""
        self.next_offset = offset + 1
        body = _parse(offset, value)
        kind = body["k"]
        if kind == "start":
            self.incarnation = str(body["inc"])
            return self._outcome(offset, True)
        if body.get("inc") != self.incarnation:
            return self._outcome(offset, False)
        group = str(body["g"])
        if kind == "commit":
            rows = _rows(offset, body.get("o"))
            self.offsets.setdefault(group, {}).update(rows)
        elif kind == "epoch":
            epoch, assignor = body.get("e"), body.get("a")
            if not isinstance(epoch, int) or not isinstance(assignor, str):
                raise CorruptRecordError(offset, "offsets record: has a malformed epoch")
            self.epochs[group] = max(epoch, self.epochs.get(group, 0))
            self.assignors[group] = assignor
        elif kind == "delete":
            self.offsets.pop(group, None)
            self.epochs.pop(group, None)
            self.assignors.pop(group, None)
        return self._outcome(offset, True)

    def _outcome(self, offset: int, counted: bool) -> bool:
        self.accepted[offset] = counted
        if len(self.accepted) > _OUTCOMES_KEPT:  # offsets come in order: drop the oldest
            del self.accepted[next(iter(self.accepted))]
        return counted

    def take_outcome(self, offset: int) -> bool | None:
        """Whether the record at ``offset`` counted (None: not applied yet, or long ago)."""
        return self.accepted.pop(offset, None)

    def groups(self) -> set[str]:
        """Every group with committed offsets or an epoch."""
        return set(self.offsets) | set(self.epochs)


_OUTCOMES_KEPT = 10_000
_KINDS = {"start", "commit", "epoch", "delete"}


def _parse(offset: int, value: bytes) -> dict[str, Any]:
    try:
        body = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or body.get("k") not in _KINDS:
        raise CorruptRecordError(offset, "offsets record: is not a group record")
    if not isinstance(body.get("inc"), str):
        raise CorruptRecordError(offset, "offsets record: names no incarnation")
    if body["k"] != "start" and not isinstance(body.get("g"), str):
        raise CorruptRecordError(offset, "offsets record: names no group")
    return body


def _rows(offset: int, rows: object) -> dict[TopicPartitionKey, tuple[int, str]]:
    out: dict[TopicPartitionKey, tuple[int, str]] = {}
    try:
        for topic, partition, committed, metadata in rows:  # type: ignore[attr-defined]
            out[(str(topic), int(partition))] = (int(committed), str(metadata))
    except (TypeError, ValueError, OverflowError):
        raise CorruptRecordError(offset, "offsets record: has malformed offsets") from None
    return out
