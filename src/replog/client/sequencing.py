"""The sans-I/O core of the idempotent ``Producer``: what to send, resend, acknowledge or fail.

It is fed events (a batch to deliver, an answer, a failure, a producer id, the time) and
returns actions (``Send``, ``Ack``, ``Fail``, ``NeedId``); it does no I/O and reads no
clock, so its tests are tables of events. ``replog.client.delivery`` performs the actions.

Per partition (a *lane*) the batches form one queue in send order. Each batch gets its
base sequence when it enters the queue (a batch of n records from s takes s..s+n-1, modulo
2^31) and keeps it for the life of the producer id it was numbered under. The partition's
leader appends a batch only when its base sequence follows the last one it appended for
that (producer id, partition), answers a resent batch it already holds (one of the last 5)
with its offsets (``duplicate``), and refuses anything else with OutOfOrderSequenceError.
So a resend is always safe, and the rules here are:

- At most ``max_in_flight`` (<= 5) batches from the oldest unacknowledged one on are sent,
  so every batch whose answer was lost is among the 5 the leader remembers.
- A retriable failure (UnavailableError of any kind, DeadlineExceededError) or a refusal
  caused by an earlier batch (OutOfOrderSequenceError expecting the base of an earlier
  unacknowledged batch) makes the lane *recover*: nothing more is sent until every batch
  in flight has its answer, then, ``retry_backoff_s`` after the last failure, the
  unacknowledged batches are sent again in order.
- A refusal expecting a sequence no batch of the queue starts at is a *hole*: a batch
  given up (failed for good, or timed out) never reached the log, so no later sequence
  of this id ever can. Once nothing is in flight the lane takes a fresh producer id and
  renumbers its queue from 0 (``NeedId(fresh=True)``); UnknownProducerError (the leader
  forgot the id) is the same. Tiny duplicate window, as in Kafka: a request of the old id
  still travelling (sent before a timeout, delayed inside the cluster past the fresh id's
  resend) could still be appended after the resend.
- RecordTooLargeError / BatchTooLargeError (nothing appended): the batch is split in two
  halves that take its sequences, and the lane recovers; a single oversized record fails.
- ProducerFencedError fails the lane's batches at once and every later one; any other
  error fails its batch at once (a hole, if later batches were numbered after it).
- A batch not acknowledged ``delivery_timeout_s`` after it was closed (its last record
  sent) fails with the last failure seen on its lane (the cause), once no attempt of it is
  in flight: no record fails before ``delivery_timeout_s`` after its ``send``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, Self, TypeVar

from replog.errors import (
    BatchTooLargeError,
    DeadlineExceededError,
    OutOfOrderSequenceError,
    ProducerFencedError,
    RecordTooLargeError,
    ReplogError,
    ServerError,
    UnavailableError,
    UnknownProducerError,
)

__all__ = [
    "MAX_IN_FLIGHT_IDEMPOTENT",
    "SEQUENCE_MODULUS",
    "Ack",
    "Entry",
    "Fail",
    "Kind",
    "NeedId",
    "Send",
    "Sequencer",
    "classify",
]

#: Sequences wrap at 2^31, as Kafka's do.
SEQUENCE_MODULUS = 1 << 31
#: How many of a producer's batches a partition's leader remembers, so how many may be in
#: flight from the oldest unacknowledged one.
MAX_IN_FLIGHT_IDEMPOTENT = 5


class Payload(Protocol):
    """What the core carries for the I/O side: records it can count and split."""

    count: int

    def split(self) -> tuple[Self, Self]:
        """Two payloads with the first and the second half of the records."""
        ...


P = TypeVar("P", bound=Payload)


class Kind(enum.Enum):
    """What a failed attempt means for its batch."""

    RETRY = "retry"  # the outcome is unknown or the leader was not ready: send again
    SPLIT = "split"  # a record is over a limit and nothing was appended
    OUT_OF_ORDER = "out_of_order"  # refused: the leader waits for another sequence
    UNKNOWN_PRODUCER = "unknown_producer"  # refused: the leader holds no state of the id
    FENCED = "fenced"  # the producer id was taken over
    FAIL = "fail"  # anything else fails the batch at once


def classify(error: ReplogError) -> Kind:
    """What a failed produce attempt with ``error`` means (see the module docstring)."""
    if isinstance(error, UnavailableError | DeadlineExceededError):
        return Kind.RETRY
    if isinstance(error, RecordTooLargeError | BatchTooLargeError):
        return Kind.SPLIT
    if isinstance(error, OutOfOrderSequenceError):
        return Kind.OUT_OF_ORDER
    if isinstance(error, UnknownProducerError):
        return Kind.UNKNOWN_PRODUCER
    if isinstance(error, ProducerFencedError):
        return Kind.FENCED
    return Kind.FAIL


def _follows(a: int, b: int) -> bool:
    """Whether sequence ``a`` comes after ``b`` (modulo 2^31, within half the circle)."""
    return 0 < (a - b) % SEQUENCE_MODULUS < SEQUENCE_MODULUS // 2


class _State(enum.Enum):
    WAITING = "waiting"
    IN_FLIGHT = "in_flight"
    ACKED = "acked"


@dataclass(eq=False, slots=True)
class Entry(Generic[P]):
    """One batch in its lane's queue."""

    payload: P
    partition: int
    deadline: float
    base_sequence: int = 0
    state: _State = _State.WAITING
    attempt: int = 0  # counts sends; an answer names the attempt it answers

    @property
    def count(self) -> int:
        """Records in the batch."""
        return self.payload.count


@dataclass(frozen=True, slots=True)
class Send(Generic[P]):
    """Send ``entry`` as attempt ``attempt`` under this producer id and base sequence, with
    at most ``timeout_s`` for the attempt (what is left of its delivery timeout)."""

    entry: Entry[P]
    attempt: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Ack(Generic[P]):
    """``entry`` was appended from ``base_offset`` (``duplicate``: by an earlier attempt)."""

    entry: Entry[P]
    base_offset: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Fail(Generic[P]):
    """``entry`` failed for good with ``error``."""

    entry: Entry[P]
    error: ReplogError


@dataclass(frozen=True, slots=True)
class NeedId:
    """``partition`` needs a producer id: a fresh one (its sequences start again at 0), or
    the producer's shared one, not known yet."""

    partition: int
    fresh: bool


Action = Send[P] | Ack[P] | Fail[P] | NeedId


@dataclass(slots=True)
class _Lane(Generic[P]):
    queue: deque[Entry[P]] = field(default_factory=deque)
    producer_id: int | None = None
    producer_epoch: int = 0
    next_sequence: int = 0
    in_flight: int = 0
    recovering: bool = False  # send nothing until drained, then resend from the oldest
    retry_at: float = 0.0
    fresh_needed: bool = False  # a hole: renumber under a fresh id once drained
    id_asked: bool = False
    last_error: ReplogError | None = None
    fatal: ReplogError | None = None


class Sequencer(Generic[P]):
    """The per-partition sequencing state of one idempotent producer (not thread-safe: the
    caller holds a lock around every call)."""

    def __init__(
        self, *, max_in_flight: int, delivery_timeout_s: float, retry_backoff_s: float
    ) -> None:
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT_IDEMPOTENT:
            raise ValueError(f"max_in_flight must be 1..{MAX_IN_FLIGHT_IDEMPOTENT}")
        self.max_in_flight = max_in_flight
        self.delivery_timeout_s = delivery_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.shared_id: tuple[int, int] | None = None  # (producer id, epoch) for new lanes
        self._lanes: dict[int, _Lane[P]] = {}
        self._pending = 0

    def pending(self) -> int:
        """Batches not yet acknowledged or failed."""
        return self._pending

    def add(self, partition: int, payload: P, sent_at: float) -> Entry[P]:
        """Queue a batch for ``partition`` whose last record was sent by ``sent_at`` (it
        fails ``delivery_timeout_s`` after that, at the earliest); it takes the lane's next
        sequences."""
        lane = self._lane(partition)
        entry = Entry(payload, partition, sent_at + self.delivery_timeout_s)
        entry.base_sequence = lane.next_sequence
        lane.next_sequence = (lane.next_sequence + payload.count) % SEQUENCE_MODULUS
        lane.queue.append(entry)
        self._pending += 1
        return entry

    def _lane(self, partition: int) -> _Lane[P]:
        lane = self._lanes.get(partition)
        if lane is None:
            lane = self._lanes[partition] = _Lane()
            if self.shared_id is not None:
                lane.producer_id, lane.producer_epoch = self.shared_id
        return lane

    def poll(self, now: float) -> list[Action[P]]:
        """What to do now: fail expired batches, ask for ids, send what may be sent."""
        actions: list[Action[P]] = []
        for partition, lane in self._lanes.items():
            actions += self._expire(lane, now)
            actions += self._advance(partition, lane, now)
        return actions

    def _expire(self, lane: _Lane[P], now: float) -> Iterator[Fail[P]]:
        """Fail the lane's batches that are out of time (or all, once fenced); drop
        acknowledged ones from the front."""
        kept: deque[Entry[P]] = deque()
        for entry in lane.queue:
            if entry.state is _State.WAITING and (lane.fatal or entry.deadline <= now):
                self._pending -= 1
                yield Fail(entry, lane.fatal or self._cause(lane))
            elif entry.state is not _State.ACKED or kept:
                kept.append(entry)
        lane.queue = kept

    def _cause(self, lane: _Lane[P]) -> ReplogError:
        if lane.last_error is not None:
            return lane.last_error
        return DeadlineExceededError(
            f"not acknowledged within the delivery timeout ({self.delivery_timeout_s:g} s)"
        )

    def _advance(self, partition: int, lane: _Lane[P], now: float) -> list[Action[P]]:
        if lane.recovering:
            if lane.in_flight or now < lane.retry_at:
                return []
            lane.recovering = False
        if lane.fresh_needed or lane.producer_id is None:
            if lane.in_flight or lane.id_asked or not lane.queue:
                return []
            lane.id_asked = True
            if lane.fresh_needed or self.shared_id is None:
                return [NeedId(partition, lane.fresh_needed)]
            self.id_given(partition, *self.shared_id)
        return self._sends(lane, now)

    def _sends(self, lane: _Lane[P], now: float) -> list[Action[P]]:
        assert lane.producer_id is not None
        sends: list[Action[P]] = []
        for position, entry in enumerate(lane.queue):
            if position >= self.max_in_flight:
                break
            if entry.state is _State.WAITING:
                entry.state = _State.IN_FLIGHT
                entry.attempt += 1
                lane.in_flight += 1
                sends.append(
                    Send(
                        entry,
                        entry.attempt,
                        lane.producer_id,
                        lane.producer_epoch,
                        entry.base_sequence,
                        max(entry.deadline - now, 0.0),
                    )
                )
        return sends

    def id_given(self, partition: int, producer_id: int, producer_epoch: int) -> None:
        """The producer id ``partition`` asked for (``NeedId``): its queue is numbered from
        0 under it (acknowledged batches dropped). The first id becomes the shared one."""
        if self.shared_id is None:
            self.shared_id = (producer_id, producer_epoch)
        lane = self._lane(partition)
        lane.producer_id, lane.producer_epoch = producer_id, producer_epoch
        lane.fresh_needed = lane.id_asked = False
        lane.queue = deque(e for e in lane.queue if e.state is not _State.ACKED)
        sequence = 0
        for entry in lane.queue:
            entry.base_sequence = sequence
            sequence = (sequence + entry.count) % SEQUENCE_MODULUS
        lane.next_sequence = sequence

    def id_failed(self, partition: int, error: ReplogError, now: float) -> None:
        """Asking for ``partition``'s producer id failed: ask again after the backoff, or
        (for an error that is not retriable) fail the lane's batches with it."""
        lane = self._lane(partition)
        lane.id_asked = False
        lane.last_error = error
        if classify(error) is Kind.RETRY:
            lane.recovering, lane.retry_at = True, now + self.retry_backoff_s
        else:
            lane.fatal = error

    def answered(
        self, entry: Entry[P], attempt: int, base_offset: int, duplicate: bool = False
    ) -> list[Action[P]]:
        """Attempt ``attempt`` of ``entry`` was appended from ``base_offset``."""
        if not self._landed(entry, attempt):
            return []
        entry.state = _State.ACKED
        self._pending -= 1
        return [Ack(entry, base_offset, duplicate)]

    def _landed(self, entry: Entry[P], attempt: int) -> bool:
        """Take the answer of an attempt in flight off its lane (False for a stale one)."""
        if entry.state is not _State.IN_FLIGHT or entry.attempt != attempt:
            return False
        self._lanes[entry.partition].in_flight -= 1
        entry.state = _State.WAITING
        return True

    def failed(
        self, entry: Entry[P], attempt: int, error: ReplogError, now: float
    ) -> list[Action[P]]:
        """Attempt ``attempt`` of ``entry`` failed with ``error``."""
        if not self._landed(entry, attempt):
            return []
        lane = self._lanes[entry.partition]
        kind = classify(error)
        if kind is Kind.RETRY:
            lane.last_error = error
            lane.recovering, lane.retry_at = True, now + self.retry_backoff_s
            return []
        if kind is Kind.SPLIT and entry.count > 1:
            self._split(lane, entry)
            lane.recovering = True
            return []
        if kind in (Kind.OUT_OF_ORDER, Kind.UNKNOWN_PRODUCER):
            return self._refused(lane, entry, error)
        if kind is Kind.FENCED:
            lane.fatal = error
        return [self._drop(lane, entry, error)]

    def _split(self, lane: _Lane[P], entry: Entry[P]) -> None:
        first, second = entry.payload.split()
        halves = (
            Entry(first, entry.partition, entry.deadline, entry.base_sequence),
            Entry(
                second,
                entry.partition,
                entry.deadline,
                (entry.base_sequence + first.count) % SEQUENCE_MODULUS,
            ),
        )
        at = lane.queue.index(entry)
        lane.queue.remove(entry)
        lane.queue.insert(at, halves[1])
        lane.queue.insert(at, halves[0])
        self._pending += 1

    def _drop(self, lane: _Lane[P], entry: Entry[P], error: ReplogError) -> Fail[P]:
        lane.queue.remove(entry)
        self._pending -= 1
        return Fail(entry, error)

    def _refused(self, lane: _Lane[P], entry: Entry[P], error: ReplogError) -> list[Action[P]]:
        """An OutOfOrderSequenceError or UnknownProducerError for ``entry``."""
        expected = error.expected if isinstance(error, OutOfOrderSequenceError) else 0
        earlier = []
        for other in lane.queue:
            if other is entry:
                break
            earlier.append(other)
        if any(e.state is not _State.ACKED and e.base_sequence == expected for e in earlier):
            lane.recovering = True  # an earlier batch comes first: resend in order
            return []
        if isinstance(error, OutOfOrderSequenceError) and _follows(expected, entry.base_sequence):
            # The leader holds this batch's sequences, but no longer the batch: it was
            # appended by a lost attempt, at offsets this producer cannot learn.
            lost = ServerError(
                f"the batch was appended by an earlier attempt whose answer was lost, and "
                f"the leader no longer tells its offsets ({error})"
            )
            return [self._drop(lane, entry, lost)]
        # (The cause a batch may later fail with stays the failure that made the hole.)
        lane.fresh_needed = lane.recovering = True
        return []

    def next_wakeup(self, now: float) -> float | None:
        """When ``poll`` may next have something to do unprompted (a backoff ends, a batch
        runs out of time); None when only an event can change anything."""
        times: list[float] = []
        for lane in self._lanes.values():
            if lane.recovering and not lane.in_flight:
                times.append(lane.retry_at)
            times += (e.deadline for e in lane.queue if e.state is _State.WAITING)
        return min(times) if times else None
