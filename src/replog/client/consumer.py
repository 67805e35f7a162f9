"""``Consumer``: a member of a consumer group, reading the partitions the group's
coordinator assigns it (blocking; ``AsyncConsumer`` is its asyncio twin).

A heartbeat thread joins the group, follows the assignment (see
``replog.client.consumer_state``) and auto-commits; one fetch thread per assigned partition
long-polls ``consume_batch`` into a bounded buffer (a full buffer stops the fetches:
back-pressure). Iterating the consumer yields ``ConsumerRecord``s. Nothing polls in a
loop: threads wait on the server's long poll, a condition or an event.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from replog.client.batch_stream import BatchStream
from replog.client.consumer_state import (
    LEAVE_EPOCH,
    ConsumerBatch,
    ConsumerRecord,
    ConsumerState,
    record_from,
    records_from,
    start_offset,
)
from replog.client.groups import TopicPartition
from replog.errors import (
    DeadlineExceededError,
    FencedMemberError,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    ReplogError,
    UnavailableError,
    UnknownMemberError,
)
from replog.v1.record_pb2 import Record

if TYPE_CHECKING:
    from replog.client.client import Client

__all__ = ["Consumer", "ConsumerRecord"]

_RETRY_S = 1.0
_Batch = tuple[TopicPartition, int, list[Record]]


def check_settings(group: str, session_timeout_ms: int, max_buffered_batches: int) -> None:
    """InvalidArgumentError for a bad group name, session timeout or buffer size."""
    if not isinstance(group, str) or not group:
        raise InvalidArgumentError(f"a group name must be a non-empty str, got {group!r}")
    if not isinstance(session_timeout_ms, int) or not 0 < session_timeout_ms < 2**32:
        raise InvalidArgumentError("session_timeout_ms must be a positive 32-bit integer")
    if not isinstance(max_buffered_batches, int) or max_buffered_batches < 1:
        raise InvalidArgumentError("max_buffered_batches must be a positive integer")


class Consumer:
    """A consumer group member of ``group`` reading ``topics`` through ``client`` (see the
    module docstring). Use as a context manager or ``close()`` it: that commits and leaves
    the group, so its partitions move at once.

    ``auto_offset_reset``: where a partition without a committed offset starts
    ("earliest" or "latest"); ``enable_auto_commit``: commit the positions every
    ``auto_commit_interval_ms``, before a partition is revoked and on close;
    ``session_timeout_ms``: how long the coordinator waits for a silent member;
    ``assignor``: the group's server-side assignor ("" keeps the group's)."""

    def __init__(
        self,
        client: Client,
        group: str,
        topics: Sequence[str],
        *,
        auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        session_timeout_ms: int = 10_000,
        assignor: str = "",
        max_records: int = 2000,
        max_buffered_batches: int = 16,
    ) -> None:
        check_settings(group, session_timeout_ms, max_buffered_batches)
        self.client = client
        self.group = group
        self.state = ConsumerState(
            topics,
            auto_offset_reset=auto_offset_reset,
            auto_commit_interval_ms=auto_commit_interval_ms,
            now=time.monotonic(),
        )
        self.auto_commit = enable_auto_commit
        self._session_ms = session_timeout_ms
        self._assignor = assignor
        self._max_records = max_records
        self._max_buffered = max_buffered_batches
        self._buffer: deque[_Batch] = deque()
        self._current: deque[Record] = deque()
        self._current_of: tuple[TopicPartition, int] = (("", 0), 0)
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stopped = False
        self._closed = False
        self._error: Exception | None = None
        self._commit_lock = threading.Lock()
        self._fetchers: list[threading.Thread] = []
        self._streams: dict[TopicPartition, tuple[int, BatchStream]] = {}
        self._streams_lock = threading.Lock()
        self._heartbeats = threading.Thread(
            target=self._heartbeat_loop, name=f"replog-group-{group}", daemon=True
        )
        self._heartbeats.start()

    # -- the caller's side ----------------------------------------------------------------

    def __iter__(self) -> Iterator[ConsumerRecord]:
        return self

    def __next__(self) -> ConsumerRecord:
        record = self.poll(None)
        if record is None:
            raise StopIteration
        return record

    def poll(self, timeout: float | None = None) -> ConsumerRecord | None:
        """The next record (waiting up to ``timeout`` seconds, None: until one comes);
        None on timeout or once closed. Raises the error that stopped the group loop."""
        self.state.caller_done()
        current = self._current  # only the caller's thread touches it: no lock per record
        deadline: float | None = -1.0  # computed only when it must wait
        while True:
            if not current:
                if deadline == -1.0:
                    deadline = None if timeout is None else time.monotonic() + timeout
                if not self._refill(deadline):
                    return None
            record = current.popleft()
            tp, gen = self._current_of
            if record.type == 0 and self.state.yielded(tp, record.offset, gen):
                return record_from(tp[0], tp[1], record)

    def poll_batch(self, timeout: float | None = None) -> ConsumerBatch | None:
        """The next records of one partition, as many as were fetched together (waiting up
        to ``timeout`` seconds); None on timeout or once closed. The whole batch counts as
        given: a background commit leaves it out until the next ``poll``/``poll_batch``,
        ``commit`` or ``close`` (at-least-once). Cheaper per record than ``poll``."""
        self.state.caller_done()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._current:  # the rest of a batch ``poll`` began
                records = list(self._current)
                self._current.clear()
                tp, gen = self._current_of
            else:
                taken = self._take(deadline)
                if taken is None:
                    return None
                tp, gen, records = taken
            given = self.state.yielded_batch(tp, gen, records)
            if given:
                return ConsumerBatch(tp[0], tp[1], records_from(tp[0], tp[1], given))

    def _take(self, deadline: float | None) -> _Batch | None:
        """The next buffered batch, waiting for one until ``deadline``; None on timeout or
        once closed."""
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._stopped:
                    return None
                if self._buffer:
                    batch = self._buffer.popleft()
                    self._cond.notify_all()  # room for the fetchers
                    return batch
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)

    def _refill(self, deadline: float | None) -> bool:
        """Take the next buffered batch to give out, waiting for one until ``deadline``;
        False on timeout or once closed."""
        taken = self._take(deadline)
        if taken is None:
            return False
        tp, gen, records = taken
        self._current.extend(records)
        self._current_of = (tp, gen)
        return True

    def assignment(self) -> frozenset[TopicPartition]:
        """The (topic, partition) pairs this member holds now."""
        return self.state.owned()

    def position(self, topic: str, partition: int) -> int | None:
        """The next offset this consumer gives from the partition (None: not assigned)."""
        return self.state.position((topic, partition))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read the assigned partition from ``offset`` next (InvalidArgumentError when it
        is not assigned)."""
        self.state.seek((topic, partition), offset)
        self._start_fetch((topic, partition))

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching these assigned partitions until ``resume``; they stay assigned."""
        self.state.pause(partitions)
        self._notify()

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        """Fetch paused partitions again from their positions."""
        for tp in self.state.resume(partitions):
            self._start_fetch(tp)

    def commit(self) -> dict[TopicPartition, int]:
        """Commit the position of every partition read so far (what was given to the
        caller); returns what was committed. FencedMemberError / UnknownMemberError when
        this member was fenced (it rejoins by itself)."""
        return self._commit(None)

    def close(self) -> None:
        """Commit (with auto-commit on), leave the group (its partitions move at once) and
        stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._halt()
        try:
            if self.auto_commit and self.state.member_epoch > 0:
                self._commit(None)
        finally:
            self._leave()  # first: the partitions move while the fetchers wind down
            self._join_fetchers()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the heartbeat thread -------------------------------------------------------------

    def _halt(self) -> None:
        """Stop the threads without leaving the group (``close`` leaves after this)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._stop.set()
        self._wake.set()
        self._cancel_stale()
        if threading.current_thread() is not self._heartbeats:
            self._heartbeats.join()

    def _join_fetchers(self) -> None:
        """Fetchers end once their streams are cancelled (``_halt``); wait 1 s at most."""
        deadline = time.monotonic() + 1.0
        for thread in self._fetchers:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _leave(self) -> None:
        member, epoch = self.state.member_id, self.state.member_epoch
        self.state.left()
        if member and epoch > 0:
            with contextlib.suppress(ReplogError):  # else the session expires instead
                self.client.group_heartbeat(self.group, member, LEAVE_EPOCH)

    def _heartbeat_loop(self) -> None:
        heartbeat_at = 0.0
        while not self._stopped:
            now = time.monotonic()
            try:
                if now >= heartbeat_at:
                    again = self._heartbeat()
                    heartbeat_at = now + (0 if again else self.state.heartbeat_interval_s)
                if self.auto_commit and self.state.commit_due(time.monotonic()):
                    self._commit(None, in_hand=False)
            except (FencedMemberError, UnknownMemberError):
                self._drop(self.state.fenced())
                heartbeat_at = 0.0
                continue
            except (UnavailableError, DeadlineExceededError):
                heartbeat_at = time.monotonic() + _RETRY_S
                self.state.retry_commit_at(heartbeat_at)
            except Exception as exc:
                self._fail(exc)
                return
            wake = self.state.next_wakeup(heartbeat_at, auto_commit=self.auto_commit)
            self._wake.wait(max(0.0, wake - time.monotonic()))
            self._wake.clear()

    def _heartbeat(self) -> bool:
        """One heartbeat and what its answer asks; True when another is due at once (the
        member released partitions and says so)."""
        fields = self.state.heartbeat_fields()
        answer = self.client.group_heartbeat(
            self.group,
            fields.member_id,
            fields.member_epoch,
            topics=fields.topics,
            owned=fields.owned,
            session_timeout_ms=self._session_ms,
            assignor=self._assignor,
        )
        change = self.state.on_answer(answer)
        if change.revoked:
            if self.auto_commit:
                self._commit(change.revoked, in_hand=False)
            self.state.release(change.revoked)
            self._drop(change.revoked)
        if change.added:
            self._assign(change.added)
        return bool(change.revoked)

    def _assign(self, added: frozenset[TopicPartition]) -> None:
        committed = self.client.fetch_offsets(self.group, added)
        bounds: dict[str, list[tuple[int, int]]] = {}
        for tp in sorted(added):
            topic, partition = tp
            if topic not in bounds:
                described = self.client.describe_topic(topic)
                bounds[topic] = [(p.lowest_offset, p.next_offset) for p in described.partitions]
            low, high = bounds[topic][partition] if partition < len(bounds[topic]) else (0, 0)
            mine = committed.get(tp, -1)
            self.state.start(tp, start_offset(mine, low, high, self.state.auto_offset_reset), mine)
            self._start_fetch(tp)

    def _commit(
        self, partitions: Iterable[TopicPartition] | None, *, in_hand: bool = True
    ) -> dict[TopicPartition, int]:
        with self._commit_lock:
            offsets = self.state.to_commit(partitions, in_hand=in_hand)
            member, epoch = self.state.member_id, self.state.member_epoch
            if offsets and epoch > 0:  # never as "" (from outside the group)
                self.client.commit_offsets(
                    self.group, offsets, member_id=member, member_epoch=epoch
                )
            self.state.committed(offsets, time.monotonic())
            return offsets

    def _fail(self, error: Exception) -> None:
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def _drop(self, partitions: frozenset[TopicPartition]) -> None:
        """Forget buffered records of partitions no longer held (their fetches stop)."""
        with self._cond:
            kept = [b for b in self._buffer if b[0] not in partitions]
            self._buffer.clear()
            self._buffer.extend(kept)
            self._cond.notify_all()
        self._cancel_stale()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self._cancel_stale()

    # -- the fetch threads ----------------------------------------------------------------

    def _start_fetch(self, tp: TopicPartition) -> None:
        started = self.state.fetch_from(tp)
        if started is None or self._stopped:
            return
        self._notify()  # a fetcher of an older generation waiting for room gives up
        generation, offset = started
        thread = threading.Thread(
            target=self._fetch_loop, args=(tp, generation, offset), daemon=True
        )
        self._fetchers = [t for t in self._fetchers if t.is_alive()] + [thread]
        thread.start()

    def _fetch_loop(self, tp: TopicPartition, generation: int, offset: int) -> None:
        """Stream ``tp`` from ``offset`` into the buffer while this fetch is current; its
        stream is cancelled (``_cancel_stale``) the moment it is not."""
        topic, partition = tp
        while self._fetching(tp, generation):
            stream: BatchStream | None = None
            try:
                stream = self.client.batch_stream(
                    offset, max_records=self._max_records, topic=topic, partition=partition
                )
                if not self._register(tp, generation, stream):
                    return
                for batch in stream:
                    offset = max(offset, batch.next_offset or 0)
                    if batch.records and not self._put((tp, generation, batch.records)):
                        return
            except OffsetOutOfRangeError as exc:
                reset = self.state.auto_offset_reset
                offset = exc.lowest if reset == "earliest" else exc.next_offset
            except ReplogError:
                if self._stopped:
                    return
                self._stop.wait(_RETRY_S)  # a leader moving, a node restarting
            except Exception as exc:
                if not self._stopped:
                    self._fail(exc)
                return
            finally:
                if stream is not None:
                    self._unregister(tp, stream)

    def _register(self, tp: TopicPartition, generation: int, stream: BatchStream) -> bool:
        """Note ``stream`` as ``tp``'s fetch (False, and cancelled, when already stale)."""
        with self._streams_lock:
            if self._fetching(tp, generation):
                self._streams[tp] = (generation, stream)
                return True
        stream.cancel()
        return False

    def _unregister(self, tp: TopicPartition, stream: BatchStream) -> None:
        stream.cancel()
        with self._streams_lock:
            if tp in self._streams and self._streams[tp][1] is stream:
                del self._streams[tp]

    def _cancel_stale(self) -> None:
        """Cancel the streams of fetches no longer wanted (revoked, sought, paused, or all
        once stopping), so their threads end now rather than at the next record."""
        with self._streams_lock:
            stale = [s for tp, (g, s) in self._streams.items() if not self._fetching(tp, g)]
        for stream in stale:
            stream.cancel()

    def _fetching(self, tp: TopicPartition, generation: int) -> bool:
        return not self._stopped and self.state.current(tp, generation)

    def _put(self, batch: _Batch) -> bool:
        """Buffer a fetched batch, waiting for room; False when its fetch is stale."""
        tp, generation, _ = batch
        with self._cond:
            while len(self._buffer) >= self._max_buffered:
                if not self._fetching(tp, generation):
                    return False
                self._cond.wait()
            if not self._fetching(tp, generation):
                return False
            self._buffer.append(batch)
            self._cond.notify_all()
            return True
