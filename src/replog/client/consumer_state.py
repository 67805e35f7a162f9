"""The I/O-free part of a group consumer: membership, assignment reconciliation, positions
and what to commit. ``Consumer`` (threads) and ``AsyncConsumer`` (tasks) drive one
``ConsumerState`` and do the calls; time comes in as ``now`` (monotonic seconds).

Reconciliation (KIP-848, the member's side): every heartbeat answer says what the member
may own now. Partitions it holds that the answer leaves out are *revoked*: their positions
are committed (with auto-commit on) and then they are released, so the next heartbeat no
longer reports them and the coordinator hands them on. Partitions the answer adds start
at the group's committed offset, else at the topic's lowest (``earliest``) or next
(``latest``) offset.

Every change of where a partition is read (start, seek, pause, resume, release) bumps its
*fetch generation*: records fetched under an older one are dropped instead of yielded,
so a seek or a revocation never lets a stale record through. A position is the offset
after the last record *yielded* to the caller, so a commit covers only what the caller
was given; a background commit (auto-commit, or before a revocation) also leaves out the
record the caller holds until it asks for the next one, which may still be in progress
(at-least-once). ``commit()`` and ``close()`` mean the caller is done: they include it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, overload

from replog.client.groups import HeartbeatAnswer, TopicPartition
from replog.errors import InvalidArgumentError
from replog.v1.record_pb2 import Record

__all__ = [
    "AUTO_OFFSET_RESETS",
    "ConsumerBatch",
    "ConsumerRecord",
    "ConsumerRecords",
    "ConsumerState",
    "HeartbeatFields",
    "Reconciliation",
    "record_from",
    "records_from",
    "start_offset",
]

AUTO_OFFSET_RESETS = ("earliest", "latest")
LEAVE_EPOCH = -1


class ConsumerRecord(NamedTuple):
    """A record as a group consumer yields it: where it is, its key, value and headers,
    and when it was appended (milliseconds since the Unix epoch). A named tuple: made
    once per record, so it must be cheap."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


class ConsumerBatch(NamedTuple):
    """Records of one partition in offset order, as ``poll_batch`` gives them (each
    ``ConsumerRecord`` is made when it is first read: see ``ConsumerRecords``)."""

    topic: str
    partition: int
    records: ConsumerRecords


_new_record = tuple.__new__


def record_from(topic: str, partition: int, record: Record) -> ConsumerRecord:
    """The ConsumerRecord of a Record read from ``topic`` ``partition``."""
    headers = tuple((h.key, h.value) for h in record.headers) if len(record.headers) else ()
    fields = (topic, partition, record.offset, record.key, record.value, headers)
    return _new_record(ConsumerRecord, (*fields, record.timestamp_ms))


class ConsumerRecords(Sequence[ConsumerRecord]):
    """The ConsumerRecords of fetched ``records`` of one partition, a read-only sequence
    whose items are made on access: a batch passed on, counted or sliced costs nothing
    per record (each access of an item makes a new, equal ConsumerRecord)."""

    __slots__ = ("_partition", "_records", "_topic")

    def __init__(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        self._topic = topic
        self._partition = partition
        self._records = records

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, index: int) -> ConsumerRecord: ...

    @overload
    def __getitem__(self, index: slice) -> ConsumerRecords: ...

    def __getitem__(self, index: int | slice) -> ConsumerRecord | ConsumerRecords:
        if isinstance(index, slice):
            return ConsumerRecords(self._topic, self._partition, self._records[index])
        return record_from(self._topic, self._partition, self._records[index])

    def __iter__(self) -> Iterator[ConsumerRecord]:
        new, cls, topic, partition = _new_record, ConsumerRecord, self._topic, self._partition
        for r in self._records:
            headers = tuple((h.key, h.value) for h in r.headers) if len(r.headers) else ()
            yield new(cls, (topic, partition, r.offset, r.key, r.value, headers, r.timestamp_ms))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConsumerRecords | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-like: compared by items

    def __repr__(self) -> str:
        return f"ConsumerRecords({list(self)!r})"


def records_from(topic: str, partition: int, records: Sequence[Record]) -> ConsumerRecords:
    """The ConsumerRecords of ``records`` read from ``topic`` ``partition``."""
    return ConsumerRecords(topic, partition, records)


def start_offset(committed: int, lowest: int, next_offset: int, auto_offset_reset: str) -> int:
    """Where a newly assigned partition starts: its committed offset when there is one (and
    it is still readable), else the lowest or next offset as ``auto_offset_reset`` says."""
    if committed >= 0 and lowest <= committed <= next_offset:
        return committed
    return lowest if auto_offset_reset == "earliest" else next_offset


@dataclass(frozen=True, slots=True)
class HeartbeatFields:
    """What the next heartbeat sends: member id and epoch, the subscription (only when
    joining) and the partitions the member holds."""

    member_id: str
    member_epoch: int
    topics: tuple[str, ...] | None
    owned: frozenset[TopicPartition]


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What a heartbeat answer asks of the member: partitions to give up (commit, then
    ``release``) and new ones to ``start``."""

    revoked: frozenset[TopicPartition]
    added: frozenset[TopicPartition]


@dataclass(slots=True)
class _Partition:
    position: int
    committed: int
    generation: int
    paused: bool = False


class ConsumerState:
    """One group member's state (see the module docstring); thread-safe."""

    def __init__(
        self,
        topics: Sequence[str],
        *,
        auto_offset_reset: str = "latest",
        auto_commit_interval_ms: int = 5000,
        now: float = 0.0,
    ) -> None:
        """A member subscribing to ``topics``, not yet joined; the first auto-commit is
        due ``auto_commit_interval_ms`` after ``now``."""
        if (
            isinstance(topics, str)
            or not topics
            or not all(isinstance(t, str) and t for t in topics)
        ):
            raise InvalidArgumentError("topics must be a non-empty list of topic names")
        if auto_offset_reset not in AUTO_OFFSET_RESETS:
            raise InvalidArgumentError(
                f"auto_offset_reset must be 'earliest' or 'latest', got {auto_offset_reset!r}"
            )
        if not isinstance(auto_commit_interval_ms, int) or auto_commit_interval_ms <= 0:
            raise InvalidArgumentError("auto_commit_interval_ms must be a positive integer")
        self.topics = tuple(dict.fromkeys(topics))
        self.auto_offset_reset = auto_offset_reset
        self.member_id = ""
        self.member_epoch = 0
        self.heartbeat_interval_s = 0.5
        self._commit_interval_s = auto_commit_interval_ms / 1000
        self._commit_due = now + self._commit_interval_s
        self._parts: dict[TopicPartition, _Partition] = {}
        self._generation = 0
        # The record the caller was given last and may still be processing: a background
        # commit (auto, or before a revocation) stops before it; it counts as done once
        # the caller asks for the next record, commits, or closes.
        self._in_hand: tuple[TopicPartition, int] | None = None
        self._lock = threading.Lock()

    # -- membership -------------------------------------------------------------------------

    def heartbeat_fields(self) -> HeartbeatFields:
        """What the next heartbeat sends."""
        with self._lock:
            topics = self.topics if self.member_epoch == 0 else None
            return HeartbeatFields(
                self.member_id, self.member_epoch, topics, frozenset(self._parts)
            )

    def on_answer(self, answer: HeartbeatAnswer) -> Reconciliation:
        """Take a heartbeat answer's id, epoch and interval; say what to revoke and add."""
        with self._lock:
            self.member_id = answer.member_id
            self.member_epoch = answer.member_epoch
            if answer.heartbeat_interval_ms > 0:
                self.heartbeat_interval_s = answer.heartbeat_interval_ms / 1000
            held = frozenset(self._parts)
            return Reconciliation(held - answer.assignment, answer.assignment - held)

    def fenced(self) -> frozenset[TopicPartition]:
        """The member was fenced or forgotten: drop every partition (uncommitted: a commit
        would be refused) and rejoin as a new member. Returns what was dropped."""
        with self._lock:
            dropped = frozenset(self._parts)
            self._parts.clear()
            self._in_hand = None
            self.member_id, self.member_epoch = "", 0
            return dropped

    def left(self) -> None:
        """The member left the group (or stopped): it holds nothing."""
        self.fenced()

    # -- partitions -------------------------------------------------------------------------

    def start(self, tp: TopicPartition, offset: int, committed: int) -> int:
        """Own ``tp`` from ``offset`` (``committed``: the group's offset, -1 none); return
        its fetch generation."""
        with self._lock:
            self._generation += 1
            self._parts[tp] = _Partition(offset, committed, self._generation)
            self._forget_in_hand(tp)
            return self._generation

    def release(self, partitions: Iterable[TopicPartition]) -> None:
        """Give partitions up (after committing them): their fetches stop."""
        with self._lock:
            for tp in partitions:
                self._parts.pop(tp, None)
                self._forget_in_hand(tp)

    def owned(self) -> frozenset[TopicPartition]:
        """The partitions the member holds now."""
        with self._lock:
            return frozenset(self._parts)

    def current(self, tp: TopicPartition, generation: int) -> bool:
        """Whether a fetch of ``tp`` under ``generation`` is still wanted (owned, not
        paused, not moved by a seek)."""
        with self._lock:
            part = self._parts.get(tp)
            return part is not None and part.generation == generation and not part.paused

    def fetch_from(self, tp: TopicPartition) -> tuple[int, int] | None:
        """(generation, offset) a new fetch of ``tp`` starts with; None when not owned or
        paused."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None or part.paused:
                return None
            return part.generation, part.position

    def caller_done(self) -> None:
        """The caller asks for another record: the one it was given last is processed."""
        self._in_hand = None  # one assignment: atomic, and called once per record

    def yielded(self, tp: TopicPartition, offset: int, generation: int) -> bool:
        """A fetched record of ``tp`` at ``offset`` is about to be given to the caller:
        True (and its position moves past it; it is *in hand* until ``caller_done``)
        unless its fetch is stale (drop it)."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None or part.generation != generation or part.paused:
                return False
            if offset < part.position:
                return False  # already given (a fetch restarted behind the position)
            part.position = offset + 1
            self._in_hand = (tp, offset)
            return True

    def yielded_batch(
        self, tp: TopicPartition, generation: int, records: list[Record]
    ) -> list[Record]:
        """The records of a fetched batch of ``tp`` (in offset order, user records only:
        servers leave control records out of what they serve) to give to the caller at
        once: those past its position (none when the fetch is stale); the position moves
        past the last, and the whole batch is in hand (from its first) until
        ``caller_done``."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None or part.generation != generation or part.paused:
                return []
            position = part.position
            if records and records[0].offset >= position:
                given = records  # the usual case: nothing of it given before
            else:
                given = [r for r in records if r.offset >= position]
            if given:
                part.position = given[-1].offset + 1
                self._in_hand = (tp, given[0].offset)
            return given

    def _forget_in_hand(self, tp: TopicPartition) -> None:
        if self._in_hand is not None and self._in_hand[0] == tp:
            self._in_hand = None

    def _moved(self, tp: TopicPartition, *, paused: bool | None = None) -> _Partition:
        part = self._parts.get(tp)
        if part is None:
            raise InvalidArgumentError(
                f"partition {tp[0]}/{tp[1]} is not assigned to this consumer"
            )
        self._generation += 1
        part.generation = self._generation
        if paused is not None:
            part.paused = paused
        return part

    def seek(self, tp: TopicPartition, offset: int) -> int:
        """Read ``tp`` from ``offset`` next (InvalidArgumentError if it is not owned);
        returns the new fetch generation."""
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidArgumentError(f"an offset is an integer >= 0, got {offset!r}")
        with self._lock:
            part = self._moved(tp)
            part.position = offset
            self._forget_in_hand(tp)  # the caller moved on from it
            return part.generation

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching ``partitions`` (owned ones; any other: InvalidArgumentError, and
        nothing paused)."""
        with self._lock:
            for tp in self._owned_all(partitions):
                if not self._parts[tp].paused:
                    self._moved(tp, paused=True)

    def resume(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """Fetch paused ``partitions`` again; returns those that were paused (to fetch
        anew). One not owned: InvalidArgumentError, and nothing resumed; an owned one that
        is not paused is left as it is (its fetch goes on)."""
        with self._lock:
            resumed = [tp for tp in self._owned_all(partitions) if self._parts[tp].paused]
            for tp in resumed:
                self._moved(tp, paused=False)
            return resumed

    def _owned_all(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """``partitions`` (once each, in order), all owned, else InvalidArgumentError."""
        wanted = list(dict.fromkeys(partitions))
        for tp in wanted:
            if tp not in self._parts:
                raise InvalidArgumentError(
                    f"partition {tp[0]}/{tp[1]} is not assigned to this consumer"
                )
        return wanted

    def paused(self) -> frozenset[TopicPartition]:
        """The paused partitions."""
        with self._lock:
            return frozenset(tp for tp, p in self._parts.items() if p.paused)

    def position(self, tp: TopicPartition) -> int | None:
        """The next offset to give the caller from ``tp`` (None when not owned)."""
        with self._lock:
            part = self._parts.get(tp)
            return None if part is None else part.position

    # -- commits ----------------------------------------------------------------------------

    def to_commit(
        self, partitions: Iterable[TopicPartition] | None = None, *, in_hand: bool = True
    ) -> dict[TopicPartition, int]:
        """The positions that moved since their last commit (of ``partitions``, default
        every owned one). Without ``in_hand`` (a background commit), the record the
        caller holds is left out: it may not be processed yet (at-least-once)."""
        with self._lock:
            wanted = self._parts if partitions is None else set(partitions) & set(self._parts)
            out = {}
            for tp in wanted:
                part = self._parts[tp]
                position = part.position
                if not in_hand and self._in_hand is not None and self._in_hand[0] == tp:
                    position = self._in_hand[1]
                if position != part.committed:
                    out[tp] = position
            return out

    def committed(self, offsets: dict[TopicPartition, int], now: float) -> None:
        """``offsets`` were committed at ``now``; the next auto-commit is an interval on."""
        with self._lock:
            for tp, offset in offsets.items():
                part = self._parts.get(tp)
                if part is not None:
                    part.committed = offset
            self._commit_due = now + self._commit_interval_s

    def retry_commit_at(self, when: float) -> None:
        """An auto-commit failed (the coordinator unreachable): try again at ``when``."""
        with self._lock:
            self._commit_due = max(self._commit_due, when)

    def commit_due(self, now: float) -> bool:
        """Whether an auto-commit is due at ``now``."""
        return now >= self._commit_due

    def next_wakeup(self, heartbeat_at: float, *, auto_commit: bool) -> float:
        """When the heartbeat loop next has work: the heartbeat, or an earlier auto-commit."""
        return min(heartbeat_at, self._commit_due) if auto_commit else heartbeat_at
