"""``Producer``: batches records in the background and keeps several batches in flight.

``send()`` returns at once with a ``RecordFuture`` (a ``concurrent.futures.Future``) that
resolves to the record's offset (or fails with a replog error); ``send_many()`` queues many
values with one call. A batch goes out when it holds ``max_batch_records`` records or
``max_batch_bytes`` bytes, or ``linger_ms`` after its first record; at most
``max_in_flight`` batches are unanswered at a time. Within a batch, records get
consecutive offsets in send order.

Idempotent and ordered (``enable_idempotence=True``, the default, as Kafka's): before its
first batch the producer gets a producer id from the server (``InitProducerId``). Each
batch is numbered, per partition, with the sequences of its records; the partition's
leader appends a batch only when it follows the last one appended, and answers a resent
batch it already holds with that batch's offsets. So per partition the records of one
producer are appended exactly once and in send order, with several batches in flight. On
a not-leader answer, any UnavailableError (a lost connection, a node down, even when the
batch may have been appended), a timed-out call, or a refusal caused by an earlier batch,
the producer refreshes its view of the cluster and resends the partition's unacknowledged
batches in order, ``retry_backoff_ms`` apart, until ``delivery_timeout_ms`` after the
record was sent; only then does its future fail, with the last failure as the cause.
InvalidArgumentError, PermissionDeniedError, ProducerFencedError and other errors fail at
once. When a partition's leader forgot the producer id (UnknownProducerError), or a batch
given up left a hole in the sequences, the partition takes a fresh producer id and its
sequences start again at 0; this has a tiny duplicate window, as Kafka's has: an attempt
of the old id still travelling inside the cluster could be appended after the resend.
``replog.client.sequencing`` holds the rules, ``replog.client.sender`` the I/O.

A server that does not hand out producer ids (UNIMPLEMENTED): the producer logs a warning,
raises a ``RuntimeWarning``, sets ``idempotent`` to False and works as with
``enable_idempotence=False`` (a log without idempotence cannot give the guarantee whatever
the producer does; failing would make every older server unusable). Keyed records whose
partition the producer cannot compute (the topic's partition count cannot be described)
are sent in the same way, with a warning.

``enable_idempotence=False`` is the producer of before: a failed batch is resent only when
it certainly was not appended (see ``replog.client.core``), and with ``max_in_flight > 1``
batches may be appended in a different order than they were sent.

``acks``: ``"all"`` (default) answers once a majority of the partition's replicas hold the
batch durably: it survives the loss of any minority. ``"leader"`` answers once the leader
holds it durably, before it is committed: an acknowledged batch is lost if the leader
fails before a follower has it and another replica becomes leader (and a producer then
sees its later batches refused for the hole, and renumbers them under a fresh id). A
server that does not distinguish them (main at 4de67db) answers ``"leader"`` as ``"all"``.

Topics: ``topic=`` sends to that topic (default: ``default``), ``partition=`` to one named
partition. Otherwise a batch is appended to one partition, so no batch may hold records
whose keys map to two. The producer learns the topic's partition count (``describe_topic``,
when the first keyed record is sent and again after ``METADATA_MAX_AGE_S``: ``send`` may
block for that call, as a Kafka producer's does for metadata), computes each key's
partition with Kafka's murmur2 and names it. One batch is open per partition, so records
of interleaved keys still batch up per partition; each goes out when full or ``linger_ms``
after its first record. Keyless records join the batch most recently written to; alone,
they go to the partitions in turn, batch by batch (idempotent), or to the server's sticky
partition. When the count cannot be learned (an ACL without ``consume``, an older server)
the key itself decides: a record of another key closes the current batch, and the server
places each batch. A record's future tells its ``partition`` once resolved.

When the server rejects a batch because a record is over its size limit
(``RecordTooLargeError``, so nothing was appended), the batch is split and resent so that
only the oversized records' futures fail.

Why it is shaped this way (the hot path is ``send``): a record is queued as two ready-made
pieces of the ProduceBatchRequest body (its field header and its serialized Record), so a
batch becomes a request with one ``b"".join`` and no protobuf message is built; its future
is a small ``RecordFuture`` sharing its batch's state; one plain lock guards the queue.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self

from replog.client.client import Client
from replog.client.core import (
    ACKS_FIELDS,
    DEFAULT_TOPIC,
    HeadersInput,
    ValueInput,
    check_partition,
    encode_record,
    field_header,
    routing_fields,
)
from replog.client.partitioner import partition_for_key
from replog.client.record_future import RecordFuture, _Batch
from replog.client.sender import _first_at, _Sending
from replog.client.sequencing import MAX_IN_FLIGHT_IDEMPOTENT, Sequencer
from replog.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    ReplogError,
    UnknownTopicError,
    UnsupportedError,
)
from replog.v1.record_pb2 import Record

__all__ = ["METADATA_MAX_AGE_S", "Producer", "RecordFuture"]

#: What decides a batch's partition: a partition number, a key (the server maps it), or
#: None (keyless records only, or a producer for one named partition).
_Route = int | bytes | None

_HEADS_CACHED = 1 << 14
#: How old the partition count a producer routes keys with may get (Kafka: 5 minutes).
METADATA_MAX_AGE_S = 30.0
#: How soon the count is asked again after a passing failure to learn it.
_RECOUNT_AFTER_ERROR_S = 1.0
# The request-field header of a record holding only a value, by the value's length.
_VALUE_HEADS: list[bytes] = []


def _value_head(size: int) -> bytes:
    """The bytes put before a bare value to make it a Record inside a ProduceBatchRequest."""
    if size == 0:
        return b"\x0a\x00"  # an empty Record: proto3 leaves an empty value out
    inner = field_header(size)
    return field_header(len(inner) + size) + inner


_VALUE_HEADS.extend(_value_head(n) for n in range(_HEADS_CACHED))


def _sequencer(
    enable_idempotence: bool,
    max_in_flight: int,
    delivery_timeout_ms: float,
    retry_backoff_ms: float,
) -> Sequencer[_Batch] | None:
    """The sequencing core of an idempotent producer (None when not idempotent)."""
    if delivery_timeout_ms <= 0 or retry_backoff_ms < 0:
        raise InvalidArgumentError(
            "delivery_timeout_ms must be positive, retry_backoff_ms not negative"
        )
    if not enable_idempotence:
        return None
    if max_in_flight > MAX_IN_FLIGHT_IDEMPOTENT:
        raise InvalidArgumentError(
            f"an idempotent producer keeps at most {MAX_IN_FLIGHT_IDEMPOTENT} batches in "
            f"flight (the batches a partition remembers), got max_in_flight={max_in_flight}"
        )
    return Sequencer(
        max_in_flight=max(max_in_flight, 1),
        delivery_timeout_s=delivery_timeout_ms / 1000,
        retry_backoff_s=retry_backoff_ms / 1000,
    )


class Producer(_Sending):
    """A thread-based batching producer over a ``Client`` (or a ``HOST:PORT`` to connect to);
    idempotent and ordered per partition by default (see the module docstring)."""

    def __init__(
        self,
        client: Client | str | None = None,
        *,
        linger_ms: float = 5.0,
        max_batch_records: int = 10_000,
        max_batch_bytes: int = 4 * 1024 * 1024,
        max_in_flight: int = 4,
        max_buffered_records: int = 200_000,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        topic: str = "",
        partition: int | None = None,
        enable_idempotence: bool = True,
        acks: str = "all",
        delivery_timeout_ms: float = 120_000,
        retry_backoff_ms: float = 100,
    ) -> None:
        """Start the sender thread. ``ca``/``cert``/``key`` make the connection TLS when the
        producer makes its own Client (a ``HOST:PORT`` or None); with a given ``Client``
        they must be left out, as that Client's own settings apply. Records go to ``topic``
        ("" = default), to ``partition`` when given, else to their key's partition.

        ``enable_idempotence``: exactly once and in send order per partition, resending
        until ``delivery_timeout_ms`` (``max_in_flight`` at most 5); ``acks``: ``"all"``
        or ``"leader"`` (what each can lose: see the module docstring). InvalidArgumentError
        for a setting out of range."""
        self._sequencer = _sequencer(
            enable_idempotence, max_in_flight, delivery_timeout_ms, retry_backoff_ms
        )
        self.idempotent = self._sequencer is not None
        if acks not in ACKS_FIELDS:
            raise InvalidArgumentError(f"acks must be 'all' or 'leader', got {acks!r}")
        self.acks = acks
        self._acks = ACKS_FIELDS[acks]
        if max_batch_records < 1 or max_batch_bytes < 1 or max_in_flight < 1 or linger_ms < 0:
            raise InvalidArgumentError("producer limits must be positive")
        if partition is not None:
            check_partition(partition)
        self.topic = topic
        self.partition = partition
        self._routing = routing_fields(topic, partition)  # checks the topic's type too
        self._partitions: int | None = None  # the topic's count; None: unknown
        self._counted_at: float | None = None
        self._sticky = random.randrange(1 << 16)  # keyless batches' partition, in turn
        self._warned_unrouted = False
        self._id_refused: ReplogError | None = None  # InitProducerId's answer, if not passing
        if isinstance(client, Client) and (ca or cert or key):
            raise InvalidArgumentError("give ca/cert/key to the Client, not to the Producer")
        self._owns_client = not isinstance(client, Client)
        self.client = (
            client if isinstance(client, Client) else Client(client, ca=ca, cert=cert, key=key)
        )
        self.linger_s = linger_ms / 1000
        self.max_batch_records = max_batch_records
        self.max_batch_bytes = max_batch_bytes
        self.max_in_flight = max_in_flight
        self.max_buffered_records = max(max_buffered_records, max_batch_records)
        self._start_sender(max_in_flight)

    def _start_sender(self, max_in_flight: int) -> None:
        """Make the queue, its lock and conditions, and start the sender thread."""
        # One lock guards the queue; the conditions on it wake the sender thread (a batch
        # may be due, an answer came), blocked senders (room in the buffer) and flush() (a
        # batch answered).
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._answered = threading.Condition(self._lock)
        self._futures_condition = threading.Condition()  # shared by every RecordFuture
        self._open = _Batch(self._futures_condition)
        self._full: deque[_Batch] = deque()  # closed to new records, waiting for a slot
        # Open batches of other routes than the current one's (one per route, so every
        # partition's records batch up however keys interleave).
        self._parked: dict[_Route, _Batch] = {}
        self._buffered = 0  # records in _open, _parked and _full
        self._in_flight = 0  # batches taken and not yet answered, outside the sequencer
        self._resolving = 0  # batches answered whose futures are being resolved
        self._flushing = 0
        self._closed = False
        self._slots = threading.Semaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="replog-producer")
        self._sender = threading.Thread(target=self._run, name="replog-producer", daemon=True)
        self._sender.start()

    def send(
        self, value: ValueInput, key: bytes | None = None, headers: HeadersInput = None
    ) -> RecordFuture:
        """Queue one record; the future resolves to its offset once acknowledged.

        Raises InvalidArgumentError for a value, key or headers of the wrong type, or once
        the producer is closed. Blocks while ``max_buffered_records`` records are waiting
        (back-pressure).
        """
        if key is None and headers is None and type(value) is bytes and len(value) < _HEADS_CACHED:
            head = _VALUE_HEADS[len(value)]
            route = None
        else:
            route = self._route(value, key)
            value = encode_record(value, key, headers)
            head = field_header(len(value))
        size = len(head) + len(value)
        with self._lock:
            if self._buffered >= self.max_buffered_records or self._closed:
                self._wait_for_room()
            batch = self._open if route is None else self._batch_for(route)
            index = batch.count
            if index and batch.size + size > self.max_batch_bytes:
                batch = self._close_open_batch()
                index = 0
            if route is not None:
                batch.route = route
            parts = batch.parts
            parts.append(head)
            parts.append(value)
            batch.count = index + 1
            batch.size += size
            self._buffered += 1
            if index == 0:
                batch.first_at = time.monotonic()
                self._wake.notify()
            if index + 1 >= self.max_batch_records:
                self._close_open_batch()
        # Made outside the lock: the future reads its outcome from the batch when asked.
        return RecordFuture(batch, index)

    def send_many(self, values: Iterable[ValueInput]) -> list[RecordFuture]:
        """Queue values (bytes, or Records carrying their key and headers) in order.

        The same as ``send`` for each value, with less overhead per record; the futures are
        returned in the values' order. A value of the wrong type raises InvalidArgumentError
        before anything is queued.
        """
        parts: list[bytes] = []  # head, record, head, record, ... of the current route
        runs: list[tuple[_Route, list[bytes]]] = [(None, parts)]
        heads = _VALUE_HEADS
        for value in values:
            if type(value) is bytes and len(value) < _HEADS_CACHED:  # keyless: joins any run
                parts += (heads[len(value)], value)
                continue
            route = self._route(value, None)
            record = encode_record(value)
            if route is not None and runs[-1][0] != route:
                if runs[-1][0] is None:  # the keyless records so far join this route
                    runs[-1] = (route, parts)
                else:
                    parts = []
                    runs.append((route, parts))
            parts += (field_header(len(record)), record)
        futures: list[RecordFuture] = []
        step = 2 * self.max_batch_records
        for route, parts in runs:
            for start in range(0, len(parts), step):
                futures += self._queue(parts[start : start + step], route)
        return futures

    def _route(self, value: ValueInput, key: bytes | None) -> _Route:
        """What decides a record's partition: the partition of its key, or the key itself
        while the partition count is unknown; None for a keyless record or a producer for
        one named partition (the record joins any batch)."""
        if self.partition is not None:
            return None
        if isinstance(value, Record):
            key = value.key
        if not key:
            return None
        count = self._partition_count()
        return key if count is None else partition_for_key(key, count)

    def _partition_count(self) -> int | None:
        """The topic's partition count, learned at most every METADATA_MAX_AGE_S; None when
        the server does not tell (UnknownTopicError when there is no such topic)."""
        now = time.monotonic()
        if self._counted_at is not None and now - self._counted_at < METADATA_MAX_AGE_S:
            return self._partitions
        self._counted_at = now
        try:
            topic = self.client.describe_topic(self.topic or DEFAULT_TOPIC)
        except UnknownTopicError:
            self._counted_at = None
            raise
        except (PermissionDeniedError, UnsupportedError):
            if self._sequencer is None:  # (a sequenced producer keeps a count it knew)
                self._partitions = None  # not allowed to ask, or not offered: route by key
        except ReplogError:
            # A passing failure (an election, a timeout): keep routing as before. Switching
            # to key routes would let new batches overtake a partition's parked ones.
            self._counted_at = now - METADATA_MAX_AGE_S + _RECOUNT_AFTER_ERROR_S
        else:
            self._partitions = topic.partition_count
        return self._partitions

    def _queue(self, parts: list[bytes], route: _Route = None) -> list[RecordFuture]:
        """Queue records (at most ``max_batch_records``) of one ``route`` under one hold of
        the lock."""
        count = len(parts) // 2
        futures: list[RecordFuture] = []
        with self._lock:
            if self._buffered + count > self.max_buffered_records or self._closed:
                self._wait_for_room(count)
            batch = self._open if route is None else self._batch_for(route)
            if route is not None:
                batch.route = route
            index = batch.count
            total = sum(map(len, parts))
            if (
                index + count <= self.max_batch_records
                and batch.size + total <= self.max_batch_bytes
            ):  # the usual case: all of them join the open batch
                if not index:
                    batch.first_at = time.monotonic()
                batch.parts += parts
                batch.size += total
                futures = [RecordFuture(batch, i) for i in range(index, index + count)]
                index += count
                parts = []
            append = futures.append
            for i in range(0, len(parts), 2):
                size = len(parts[i]) + len(parts[i + 1])
                if index and (
                    batch.size + size > self.max_batch_bytes or index >= self.max_batch_records
                ):
                    batch.count = index
                    batch = self._close_open_batch()
                    if route is not None:
                        batch.route = route
                    index = 0
                if index == 0:
                    batch.first_at = time.monotonic()
                batch.parts.append(parts[i])
                batch.parts.append(parts[i + 1])
                batch.size += size
                append(RecordFuture(batch, index))
                index += 1
            batch.count = index
            self._buffered += count
            if index >= self.max_batch_records:
                self._close_open_batch()
            self._wake.notify()
        return futures

    def _wait_for_room(self, count: int = 1) -> None:
        """Wait until ``count`` more records fit in the buffer (holds the lock)."""
        limit = self.max_buffered_records
        while not self._closed and self._buffered and self._buffered + count > limit:
            self._room.wait()
        if self._closed:
            raise InvalidArgumentError("the producer is closed")

    def _batch_for(self, route: _Route) -> _Batch:
        """The open batch records of ``route`` join, made the current one (holds the lock).

        One batch is open per route: switching routes parks the current batch (it goes out
        when its linger ends or it fills) instead of cutting it short. Keyless records join
        the current batch, so a batch of keyless records only takes the next route; if that
        route has a parked batch, every parked batch goes out, then the keyless one, which
        the server places (two open batches of one route would break the route's order, and
        the keyless records may land on any partition: after its earlier records)."""
        current = self._open
        if current.route == route or (current.route is None and route not in self._parked):
            return current
        if isinstance(route, bytes) or isinstance(current.route, bytes):
            return self._close_open_batch() if current.count else current  # keys: not parked
        if current.count:
            if current.route is None:
                # Keyless records: the server places them, maybe on a partition whose
                # parked batch holds earlier records, so those go first (oldest first).
                closing = [*sorted(self._parked.values(), key=_first_at), current]
                now = time.monotonic()
                for closed in closing:
                    closed.closed_at = now
                self._full.extend(closing)
                self._parked.clear()
                self._wake.notify()
            else:
                self._parked[current.route] = current
        batch = self._parked.pop(route, None) or _Batch(self._futures_condition)
        self._open = batch
        return batch

    def _close_open_batch(self) -> _Batch:
        """Queue the open batch for sending and open a new one (holds the lock)."""
        self._open.closed_at = time.monotonic()
        self._full.append(self._open)
        self._open = _Batch(self._futures_condition)
        self._wake.notify()
        return self._open

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued now and wait until every batch is answered.

        Raises TimeoutError if that takes longer than ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            self._wake.notify()
            try:
                while self._outstanding():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("flush timed out")
                    self._answered.wait(remaining)
            finally:
                self._flushing -= 1

    def _outstanding(self) -> bool:
        """Whether records are queued, in flight or being resolved (holds the lock)."""
        pending = self._sequencer.pending() if self._sequencer is not None else 0
        return bool(self._buffered or self._in_flight or self._resolving or pending)

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the background threads and close an owned client. Idempotent.

        After ``close`` starts, ``send`` raises InvalidArgumentError.
        """
        with self._lock:
            if self._closed:
                return
        self.flush(timeout)
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            self._room.notify_all()
        self._sender.join()
        self._pool.shutdown(wait=True)
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
