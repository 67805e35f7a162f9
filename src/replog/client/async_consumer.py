"""``AsyncConsumer``: the asyncio twin of ``Consumer``, a consumer group member.

Same state (``replog.client.consumer_state``), same protocol; a heartbeat task and one
fetch task per assigned partition instead of threads. ``async for record in consumer``;
``await consumer.commit()``; ``async with`` or ``await consumer.close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from replog.client.consumer import check_settings
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
    OffsetOutOfRangeError,
    ReplogError,
    UnavailableError,
    UnknownMemberError,
)
from replog.v1.record_pb2 import Record

if TYPE_CHECKING:
    from replog.client.async_client import AsyncClient

__all__ = ["AsyncConsumer"]

_RETRY_S = 1.0
_Batch = tuple[TopicPartition, int, list[Record]]


class AsyncConsumer:
    """A consumer group member over an ``AsyncClient`` (the arguments of ``Consumer``).
    Its tasks start on first use (``async with``, iteration, ``start()``)."""

    def __init__(
        self,
        client: AsyncClient,
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
        self._cond: asyncio.Condition | None = None
        self._wake: asyncio.Event | None = None
        self._stopped = False
        self._closed = False
        self._error: Exception | None = None
        self._commit_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetches: dict[asyncio.Task[None], tuple[TopicPartition, int]] = {}
        self._heartbeats: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the group (the heartbeat task starts). Idempotent."""
        if self._heartbeats is None:
            self._cond = asyncio.Condition()
            self._wake = asyncio.Event()
            self._commit_lock = asyncio.Lock()
            self._heartbeats = asyncio.create_task(self._heartbeat_loop())

    # -- the caller's side ----------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ConsumerRecord:
        record = await self.poll(None)
        if record is None:
            raise StopAsyncIteration
        return record

    async def poll(self, timeout: float | None = None) -> ConsumerRecord | None:
        """The next record (waiting up to ``timeout`` seconds); None on timeout or once
        closed. Raises the error that stopped the group loop."""
        await self.start()
        self.state.caller_done()
        current = self._current
        while current:  # no wait: no timer either
            record = current.popleft()
            tp, gen = self._current_of
            if record.type == 0 and self.state.yielded(tp, record.offset, gen):
                return record_from(tp[0], tp[1], record)
        try:
            return await asyncio.wait_for(self._next(), timeout)
        except TimeoutError:
            return None

    async def poll_batch(self, timeout: float | None = None) -> ConsumerBatch | None:
        """The next records of one partition, fetched together (see ``Consumer.poll_batch``);
        None on timeout or once closed."""
        await self.start()
        self.state.caller_done()
        try:
            return await asyncio.wait_for(self._next_batch(), timeout)
        except TimeoutError:
            return None

    async def _next_batch(self) -> ConsumerBatch | None:
        while True:
            if not self._current and not await self._refill():
                return None
            records = list(self._current)
            self._current.clear()
            tp, gen = self._current_of
            given = self.state.yielded_batch(tp, gen, records)
            if given:
                return ConsumerBatch(tp[0], tp[1], records_from(tp[0], tp[1], given))

    async def _next(self) -> ConsumerRecord | None:
        current = self._current  # only the caller's task touches it
        while True:
            if not current and not await self._refill():
                return None
            record = current.popleft()
            tp, gen = self._current_of
            if record.type == 0 and self.state.yielded(tp, record.offset, gen):
                return record_from(tp[0], tp[1], record)

    async def _refill(self) -> bool:
        """Take the next buffered batch to give out, waiting for one; False once closed."""
        cond = self._cond
        assert cond is not None
        async with cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._stopped:
                    return False
                if self._buffer:
                    tp, gen, records = self._buffer.popleft()
                    cond.notify_all()
                    self._current.extend(records)
                    self._current_of = (tp, gen)
                    return True
                await cond.wait()

    def assignment(self) -> frozenset[TopicPartition]:
        """The (topic, partition) pairs this member holds now."""
        return self.state.owned()

    def position(self, topic: str, partition: int) -> int | None:
        """The next offset this consumer gives from the partition (None: not assigned)."""
        return self.state.position((topic, partition))

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read the assigned partition from ``offset`` next."""
        self.state.seek((topic, partition), offset)
        await self._start_fetch((topic, partition))

    async def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching these assigned partitions until ``resume``."""
        self.state.pause(partitions)
        await self._notify()

    async def resume(self, partitions: Iterable[TopicPartition]) -> None:
        """Fetch paused partitions again from their positions."""
        for tp in self.state.resume(partitions):
            await self._start_fetch(tp)

    async def commit(self) -> dict[TopicPartition, int]:
        """Commit the positions of everything given to the caller so far (see
        ``Consumer.commit``)."""
        return await self._commit(None)

    async def close(self) -> None:
        """Commit (with auto-commit on), leave the group and stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._halt()
        try:
            if self.auto_commit and self.state.member_epoch > 0:
                await self._commit(None)
        finally:
            await self._leave()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the heartbeat task ---------------------------------------------------------------

    async def _halt(self) -> None:
        """Stop the tasks without leaving the group."""
        self._stopped = True
        tasks = [*self._tasks, *([self._heartbeats] if self._heartbeats else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._notify()

    async def _leave(self) -> None:
        member, epoch = self.state.member_id, self.state.member_epoch
        self.state.left()
        if member and epoch > 0:
            with contextlib.suppress(ReplogError):  # else the session expires instead
                await self.client.group_heartbeat(self.group, member, LEAVE_EPOCH)

    async def _heartbeat_loop(self) -> None:
        wake = self._wake
        assert wake is not None
        heartbeat_at = 0.0
        while not self._stopped:
            now = time.monotonic()
            try:
                if now >= heartbeat_at:
                    again = await self._heartbeat()
                    heartbeat_at = now + (0 if again else self.state.heartbeat_interval_s)
                if self.auto_commit and self.state.commit_due(time.monotonic()):
                    await self._commit(None, in_hand=False)
            except (FencedMemberError, UnknownMemberError):
                await self._drop(self.state.fenced())
                heartbeat_at = 0.0
                continue
            except (UnavailableError, DeadlineExceededError):
                heartbeat_at = time.monotonic() + _RETRY_S
                self.state.retry_commit_at(heartbeat_at)
            except Exception as exc:
                await self._fail(exc)
                return
            at = self.state.next_wakeup(heartbeat_at, auto_commit=self.auto_commit)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, at - time.monotonic()))
            wake.clear()

    async def _heartbeat(self) -> bool:
        """One heartbeat and what its answer asks; True when another is due at once."""
        fields = self.state.heartbeat_fields()
        answer = await self.client.group_heartbeat(
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
                await self._commit(change.revoked, in_hand=False)
            self.state.release(change.revoked)
            await self._drop(change.revoked)
        if change.added:
            await self._assign(change.added)
        return bool(change.revoked)

    async def _assign(self, added: frozenset[TopicPartition]) -> None:
        committed = await self.client.fetch_offsets(self.group, added)
        bounds: dict[str, list[tuple[int, int]]] = {}
        for tp in sorted(added):
            topic, partition = tp
            if topic not in bounds:
                described = await self.client.describe_topic(topic)
                bounds[topic] = [(p.lowest_offset, p.next_offset) for p in described.partitions]
            low, high = bounds[topic][partition] if partition < len(bounds[topic]) else (0, 0)
            mine = committed.get(tp, -1)
            self.state.start(tp, start_offset(mine, low, high, self.state.auto_offset_reset), mine)
            await self._start_fetch(tp)

    async def _commit(
        self, partitions: Iterable[TopicPartition] | None, *, in_hand: bool = True
    ) -> dict[TopicPartition, int]:
        lock = self._commit_lock or asyncio.Lock()
        async with lock:
            offsets = self.state.to_commit(partitions, in_hand=in_hand)
            member, epoch = self.state.member_id, self.state.member_epoch
            if offsets and epoch > 0:  # never as "" (from outside the group)
                await self.client.commit_offsets(
                    self.group, offsets, member_id=member, member_epoch=epoch
                )
            self.state.committed(offsets, time.monotonic())
            return offsets

    async def _fail(self, error: Exception) -> None:
        self._error = error
        await self._notify()

    async def _drop(self, partitions: frozenset[TopicPartition]) -> None:
        """Forget buffered records of partitions no longer held."""
        kept = [b for b in self._buffer if b[0] not in partitions]
        self._buffer.clear()
        self._buffer.extend(kept)
        await self._notify()

    async def _notify(self) -> None:
        if self._cond is not None:
            async with self._cond:
                self._cond.notify_all()
        self._cancel_stale()

    # -- the fetch tasks ------------------------------------------------------------------

    async def _start_fetch(self, tp: TopicPartition) -> None:
        started = self.state.fetch_from(tp)
        if started is None or self._stopped:
            return
        await self._notify()
        task = asyncio.create_task(self._fetch_loop(tp, *started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._fetches[task] = (tp, started[0])
        task.add_done_callback(self._fetches.pop)

    def _cancel_stale(self) -> None:
        """Cancel the fetch tasks no longer wanted (revoked, sought, paused): a partition's
        stream tails it forever, so a stale one is ended rather than left to a record."""
        for task, (tp, generation) in list(self._fetches.items()):
            if not self._fetching(tp, generation) and task is not asyncio.current_task():
                task.cancel()

    async def _fetch_loop(self, tp: TopicPartition, generation: int, offset: int) -> None:
        """Stream ``tp`` from ``offset`` into the buffer while this fetch is current (the
        task is cancelled the moment it is not)."""
        topic, partition = tp
        while self._fetching(tp, generation):
            try:
                batches = self.client.stream_batches(
                    offset, max_records=self._max_records, topic=topic, partition=partition
                )
                async for batch in batches:
                    offset = max(offset, batch.next_offset or 0)
                    if batch.records and not await self._put((tp, generation, batch.records)):
                        return
            except OffsetOutOfRangeError as exc:
                reset = self.state.auto_offset_reset
                offset = exc.lowest if reset == "earliest" else exc.next_offset
            except ReplogError:
                await asyncio.sleep(_RETRY_S)  # a leader moving; cancelled on close
            except Exception as exc:
                await self._fail(exc)
                return

    def _fetching(self, tp: TopicPartition, generation: int) -> bool:
        return not self._stopped and self.state.current(tp, generation)

    async def _put(self, batch: _Batch) -> bool:
        """Buffer a fetched batch, waiting for room; False when its fetch is stale."""
        cond = self._cond
        assert cond is not None
        tp, generation, _ = batch
        async with cond:
            while len(self._buffer) >= self._max_buffered:
                if not self._fetching(tp, generation):
                    return False
                await cond.wait()
            if not self._fetching(tp, generation):
                return False
            self._buffer.append(batch)
            cond.notify_all()
            return True
