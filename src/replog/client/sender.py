"""The sender thread of a ``Producer``: takes due batches and delivers them.

Two ways, chosen once, when the first record is queued:

- Idempotent (the default): the sender asks the server for a producer id
  (``InitProducerId``), gives each batch a partition and its sequences in the
  ``Sequencer`` (``replog.client.sequencing``, the pure core that decides every send,
  resend, acknowledgement and failure) and performs what the core says: each attempt is
  started from this one thread, in order, as a non-blocking gRPC call (so a partition's
  batches leave in sequence order on one connection), and its answer, on a gRPC thread,
  is fed back to the core.
- Not idempotent (``enable_idempotence=False``, or a server without producer ids): up to
  ``max_in_flight`` batches at once on a thread pool, each one ``ProduceBatch`` through
  the client's own retry loop, which resends only what certainly was not appended.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from replog.client.client import Client
from replog.client.core import DEFAULT_TOPIC, producer_fields, routing_fields
from replog.client.partitioner import partition_for_key
from replog.client.record_future import _Batch
from replog.client.sequencing import Ack, Action, Fail, Kind, NeedId, Send, Sequencer, classify
from replog.errors import (
    BatchTooLargeError,
    RecordTooLargeError,
    ReplogError,
    ServerError,
    UnavailableError,
    UnsupportedError,
)

__all__: list[str] = []

log = logging.getLogger("replog.client.producer")

_Route = int | bytes | None
_PRODUCE = "produce"


#: An event fed to the core: (sequencer, now) -> the actions it returns.
_Event = Callable[[Sequencer[_Batch], float], list[Action[_Batch]]]


def _first_at(batch: _Batch) -> float:
    return batch.first_at


class _Sending:
    """The sender-thread half of ``Producer`` (a mixin: the attributes below are the
    producer's)."""

    client: Client
    topic: str
    partition: int | None
    linger_s: float
    max_in_flight: int
    idempotent: bool
    _routing: bytes
    _acks: bytes
    _lock: threading.Lock
    _wake: threading.Condition
    _room: threading.Condition
    _answered: threading.Condition
    _futures_condition: threading.Condition
    _open: _Batch
    _full: deque[_Batch]
    _parked: dict[_Route, _Batch]
    _buffered: int
    _in_flight: int
    _resolving: int
    _flushing: int
    _closed: bool
    _partitions: int | None
    _sticky: int
    _sequencer: Sequencer[_Batch] | None
    _slots: threading.Semaphore
    _pool: ThreadPoolExecutor
    _warned_unrouted: bool
    _id_refused: ReplogError | None

    def _partition_count(self) -> int | None: ...

    # -- taking due batches (holds the lock) -------------------------------------------------

    def _due(self, now: float) -> tuple[_Batch | None, float | None]:
        """Take the batch due now, if any; else how long until the oldest open one is due
        (None: no batch holds records)."""
        while True:
            if self._full:
                batch = self._full.popleft()
                break
            oldest = self._oldest_open()
            if oldest is None:
                return None, None
            wait = oldest.first_at + self.linger_s - now
            if wait > 0 and not self._flushing and not self._closed:
                return None, wait
            self._unpark(oldest)
            if oldest.route is None and self._parked:
                # The keyless records may land on a partition whose parked batch holds
                # earlier records: those go first (oldest first).
                self._full.extend(sorted(self._parked.values(), key=_first_at))
                self._parked.clear()
                self._full.append(oldest)
                continue
            batch = oldest
            break
        if not batch.closed_at:  # an open batch taken now (lingered, flushed, parked)
            batch.closed_at = now
        self._buffered -= batch.count
        self._in_flight += 1
        self._room.notify_all()
        return batch, None

    def _take(self) -> _Batch | None:
        """Wait until a batch is due and take it (None once closed and drained)."""
        with self._lock:
            while True:
                batch, wait = self._due(time.monotonic())
                if batch is not None:
                    return batch
                if wait is None and self._closed:
                    return None
                self._wake.wait(wait)

    def _oldest_open(self) -> _Batch | None:
        """The open batch (current or parked) whose linger ends first, if any holds records."""
        oldest: _Batch | None = self._open if self._open.count else None
        for batch in self._parked.values():
            if oldest is None or batch.first_at < oldest.first_at:
                oldest = batch
        return oldest

    def _unpark(self, batch: _Batch) -> None:
        """Take an open batch out of the producer's hands to send it (holds the lock)."""
        if batch is self._open:
            self._open = _Batch(self._futures_condition)
        else:
            del self._parked[batch.route]

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._run_sender()
        except BaseException:  # a bug: say so loudly rather than leave futures waiting silently
            log.exception("replog Producer: the sender thread failed")
            raise

    def _run_sender(self) -> None:
        with self._lock:
            while not self._buffered and not self._closed:
                self._wake.wait()
        if self._sequencer is not None and self._buffered:
            self._begin_idempotence()
        if self._sequencer is None:
            self._run_unsequenced()
        else:
            self._run_sequenced(self._sequencer)

    def _begin_idempotence(self) -> None:
        """Get the producer id its partitions share (a passing failure: each partition asks
        again before its first batch goes out); without one on offer, stop being idempotent."""
        try:
            producer_id, epoch = self.client.init_producer_id()
        except UnsupportedError as exc:
            self._not_idempotent(f"the server does not hand out producer ids ({exc})")
            return
        except ReplogError as exc:
            if classify(exc) is not Kind.RETRY:  # e.g. denied: told, not asked again
                self._id_refused = exc
            return  # passing: each partition asks again
        except Exception:  # the same
            return
        with self._lock:
            assert self._sequencer is not None
            self._sequencer.shared_id = (producer_id, epoch)

    def _not_idempotent(self, reason: str) -> None:
        message = (
            f"replog Producer: not idempotent: {reason}; records are sent as with "
            "enable_idempotence=False (no resend of an ambiguous failure, and with "
            "max_in_flight > 1 batches may be appended out of send order)"
        )
        log.warning("%s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        with self._lock:
            self._sequencer = None
            self.idempotent = False

    def _run_unsequenced(self) -> None:
        while True:
            self._slots.acquire()
            batch = self._take()
            if batch is None:
                self._slots.release()
                return
            future = self._pool.submit(self._send, batch)
            future.add_done_callback(lambda _: self._slots.release())

    def _send(self, batch: _Batch) -> None:
        try:
            self._deliver(batch)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._answered.notify_all()
                if self._sequencer is not None:  # room for the sequenced sender to take more
                    self._wake.notify()

    def _deliver(self, batch: _Batch) -> None:
        """Send one batch (not idempotent) and resolve its futures; never leaves one
        unresolved."""
        try:
            route = batch.route
            routing = routing_fields(self.topic, route) if isinstance(route, int) else self._routing
            request = b"".join(batch.parts) + routing + self._acks
            # The request is already serialized; the client's ProduceBatch stub passes
            # bytes through (its request serializer is the identity).
            response = self.client._call(
                "ProduceBatch",
                request,
                idempotent=False,
                timeout=self.client.timeout,
                route=_PRODUCE,  # straight to the leader, not via a follower's forward
                topic=self.topic,
                partition=route if isinstance(route, int) else self.partition,
            )
            base, partition = int(response.base_offset), int(response.partition)
        except (RecordTooLargeError, BatchTooLargeError) as exc:
            if batch.count == 1:
                batch.resolve(0, exc)
                return
            # Nothing of the batch was appended: resend it in halves until only the
            # oversized records fail (or the halves fit the server's records per request).
            for half in batch.split():
                self._deliver(half)
        except ReplogError as exc:
            batch.resolve(0, exc)
        except Exception as exc:  # never leave a future unresolved
            batch.resolve(0, ServerError(f"produce failed: {exc}"))
        else:
            self.client.picker.note_written(base + batch.count - 1, self.topic, partition)
            batch.resolve(base, None, partition)

    # -- idempotent ---------------------------------------------------------------------------

    def _run_sequenced(self, sequencer: Sequencer[_Batch]) -> None:
        while True:
            if self.partition is None and self.topic not in ("", DEFAULT_TOPIC):
                # Keyless batches take the partitions in turn (the default topic's records
                # all go to its partition 0). Cached; asked again after METADATA_MAX_AGE_S.
                # No such topic (yet): the server says so for each batch.
                with contextlib.suppress(ReplogError):
                    self._partition_count()
            with self._lock:
                actions = self._next_actions(sequencer)
            if actions is None:
                return
            self._perform(actions)

    def _next_actions(self, sequencer: Sequencer[_Batch]) -> list[Action[_Batch]] | None:
        """Wait until the core has something to do and return it (None: closed and done).
        Takes due batches into the core while fewer than ``max_in_flight`` are unanswered,
        as the unsequenced sender does (holds the lock)."""
        while True:
            now = time.monotonic()
            wait: float | None = None
            if sequencer.pending() + self._in_flight < self.max_in_flight:
                batch, wait = self._due(now)
                if batch is not None:
                    partition = self._partition_for(batch)
                    if partition is None:  # its key's partition is unknown: not sequenced
                        self._pool.submit(self._send, batch)
                    else:
                        self._in_flight -= 1  # the core counts it from here
                        # The delivery timeout counts from the batch's last record, not from
                        # when a backlog let it in: else buffered records could wait for
                        # ever behind batches that each take a full timeout to fail.
                        sequencer.add(partition, batch, batch.closed_at or now)
                    continue
            actions = sequencer.poll(now)
            if actions:
                self._resolving += sum(isinstance(a, Ack | Fail) for a in actions)
                return actions
            if self._closed and not (self._buffered or self._in_flight or sequencer.pending()):
                return None
            wakeup = sequencer.next_wakeup(now)
            if wakeup is not None:
                wait = wakeup - now if wait is None else min(wait, wakeup - now)
            self._wake.wait(None if wait is None else max(wait, 0.001))

    def _partition_for(self, batch: _Batch) -> int | None:
        """The partition a batch is appended to: named, its key's, or for keyless records
        the next partition in turn (0 while the count is unknown); None for keyed records
        while the count is unknown (holds the lock)."""
        route = batch.route
        if self.partition is not None:
            return self.partition
        if isinstance(route, int):
            return route
        count = self._partitions
        if isinstance(route, bytes):
            if count:
                return partition_for_key(route, count)
            if not self._warned_unrouted:
                self._warned_unrouted = True
                log.warning(
                    "replog Producer: the partition count of topic %r is unknown, so keyed "
                    "batches are sent without idempotence (no resend, no order guarantee)",
                    self.topic,
                )
            return None
        if not count:
            return 0
        self._sticky = (self._sticky + 1) % count
        return self._sticky

    def _perform(self, actions: list[Action[_Batch]]) -> None:
        """Do what the core said (outside the lock)."""
        done: list[Ack[_Batch] | Fail[_Batch]] = []
        for action in actions:
            if isinstance(action, Send):
                self._start(action)
            elif isinstance(action, NeedId):
                self._fetch_id(action)
            else:
                done.append(action)
        if done:
            self._resolve(done)

    def _fetch_id(self, need: NeedId) -> None:
        partition = need.partition
        try:
            if self._id_refused is not None:
                raise self._id_refused
            producer_id, epoch = self.client.init_producer_id()
        except Exception as exc:  # told to the core
            error = exc if isinstance(exc, ReplogError) else ServerError(f"no producer id: {exc}")

            def failed(sequencer: Sequencer[_Batch], now: float) -> list[Action[_Batch]]:
                sequencer.id_failed(partition, error, now)
                return []

            self._settle(failed)
            return

        def given(sequencer: Sequencer[_Batch], now: float) -> list[Action[_Batch]]:
            sequencer.id_given(partition, producer_id, epoch)
            return []

        self._settle(given)

    def _start(self, send: Send[_Batch]) -> None:
        """Start one attempt as a non-blocking call; its answer comes to ``_on_answer``."""
        entry = send.entry
        request = (
            b"".join(entry.payload.parts)
            + routing_fields(self.topic, entry.partition)
            + producer_fields(send.producer_id, send.producer_epoch, send.base_sequence)
            + self._acks
        )
        timeout = send.timeout_s
        if self.client.timeout is not None:
            timeout = min(timeout, self.client.timeout)
        try:
            addr, call = self.client._start_call(
                "ProduceBatch",
                request,
                timeout=timeout,
                topic=self.topic,
                partition=entry.partition,
            )
        except Exception as exc:  # the attempt never left: try again after the backoff
            error = UnavailableError(f"produce not sent: {exc}", certainly_not_applied=True)
            self._settle(lambda s, now: s.failed(entry, send.attempt, error, now))
            return
        call.add_done_callback(functools.partial(self._on_answer, send, addr))

    def _on_answer(self, send: Send[_Batch], addr: str, call: Any) -> None:
        entry = send.entry
        try:
            response = call.result()
        except grpc.RpcError as exc:
            error = self.client._failed_call(addr, exc, self.topic, entry.partition)
        except Exception as exc:  # e.g. the channel was closed under the call
            error = ServerError(f"produce failed: {exc}")
        else:
            self._acknowledged(send, int(response.base_offset), bool(response.duplicate))
            return
        self._settle(lambda s, now: s.failed(entry, send.attempt, error, now))

    def _acknowledged(self, send: Send[_Batch], base: int, duplicate: bool) -> None:
        """The hot path of an answer: an attempt in flight is never answered twice, so its
        acknowledgement is certain; its futures are resolved first and the core told in
        one hold of the lock (every hold costs while ``send`` keeps taking it)."""
        entry = send.entry
        batch, partition = entry.payload, entry.partition
        self.client.picker.note_written(base + batch.count - 1, self.topic, partition)
        batch.resolve(base, None, partition)
        with self._lock:
            assert self._sequencer is not None
            acked = self._sequencer.answered(entry, send.attempt, base, duplicate)
            assert acked, "an attempt in flight was answered twice"
            self._wake.notify()
            self._answered.notify_all()

    def _settle(self, event: _Event) -> None:
        """Feed the core an event (``event(sequencer, now)`` -> actions) and resolve the
        batches it finished."""
        with self._lock:
            assert self._sequencer is not None
            actions = event(self._sequencer, time.monotonic())
            done = [a for a in actions if isinstance(a, Ack | Fail)]
            self._resolving += len(done)
            self._wake.notify()
        if done:
            self._resolve(done)

    def _resolve(self, done: list[Ack[_Batch] | Fail[_Batch]]) -> None:
        """Resolve the futures of finished batches, then tell flush()."""
        try:
            for action in done:
                batch = action.entry.payload
                if isinstance(action, Ack):
                    partition, base = action.entry.partition, action.base_offset
                    self.client.picker.note_written(base + batch.count - 1, self.topic, partition)
                    batch.resolve(base, None, partition)
                else:
                    batch.resolve(0, action.error)
        finally:
            with self._lock:
                self._resolving -= len(done)
                self._answered.notify_all()
