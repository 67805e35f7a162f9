"""The single-node ``LogBackend``: one local ``Log`` behind the APIs, with group commit.

The seam itself (``LogBackend``, ``ReadResult``, ``ServerInfo``, ``AppendValue``) lives in
``replog.api.backend``, below both this module and the cluster's ``RaftBackend``; it is
re-exported here under its old names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from replog.api.backend import (
    NO_CONDITIONS,
    STALL_S,
    AppendValue,
    Conditions,
    DuplicateOffset,
    LogBackend,
    ReadResult,
    ServerInfo,
)
from replog.api.traffic import PartitionTraffic, value_bytes
from replog.broker.admission import admit, keys_of
from replog.broker.key_index import KeyIndex
from replog.broker.producer_log import PartitionProducers
from replog.broker.producer_state import BatchMeta, Overlay
from replog.errors import (
    BatchTooLargeError,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    PreconditionFailedError,
    ReplogError,
    StorageIOError,
    UnavailableError,
    UnsupportedError,
)
from replog.storage import Log
from replog.storage.encoded import EncodedRecords
from replog.v1.record_pb2 import Record

__all__ = ["STALL_S", "AppendValue", "LogBackend", "ReadResult", "ServerInfo", "SingleNodeBackend"]

log = logging.getLogger("replog.server.backend")

# One server-side group commit writes at most this much (many produce requests together),
# counting each record as at least _GROUP_RECORD_BYTES (encoding one costs about that much
# memory, however small its value).
_GROUP_MAX_BYTES = 16 * 1024 * 1024
_GROUP_RECORD_BYTES = 64

_Request = tuple[Sequence[AppendValue], Conditions, "asyncio.Future[int]"]


class SingleNodeBackend:
    """A LogBackend over one local Log, with group commit at the server layer.

    Produce requests queue their values; one batcher task appends everything queued so far
    with a single ``Log.append_batch`` in a worker thread (one write, one fsync), then
    resolves each request's future with its own first offset.
    """

    def __init__(
        self,
        log_: Log,
        *,
        server_id: str,
        rpc_addr: str,
        on_appended: Callable[[int, int], None] | None = None,
        on_storage_failure: Callable[[BaseException], None] | None = None,
        max_batch_records: int = 32768,
        executor: ThreadPoolExecutor | None = None,
        key_index: KeyIndex | None = None,
    ) -> None:
        """``executor`` runs the appends (shared by many partitions; one append of this
        backend at a time, so its order holds); by default the backend has its own thread.
        ``on_storage_failure`` hears of a failed write or fsync: the Log refuses every
        later append, so the owner stops the server (fail-stop, as a cluster node does).
        A request of more than ``max_batch_records`` records is refused, as a cluster
        node refuses it. ``key_index`` (the topic's ``key_index``) is fed every append and
        answers ``expected_key_offset``; the backend closes it."""
        self._log = log_
        self._key_index = key_index
        self._key_index_failed: BaseException | None = None
        self._max_batch_records = max_batch_records
        self._on_storage_failure = on_storage_failure
        # Readers see only acknowledged records: an append is visible once append_batch
        # returned, i.e. once it is as durable as the sync policy promises. Without this a
        # consumer could read a record that a power cut then takes away (sync="always").
        self._visible = log_.next_offset
        self.server_id = server_id
        self.rpc_addr = rpc_addr
        self._on_appended = on_appended
        self.traffic = PartitionTraffic()
        """What was produced to and read from this partition (read at scrape time)."""
        self._pending: list[_Request] = []
        self.producers = PartitionProducers(Path(log_.directory))
        self._wakeup = asyncio.Event()
        self._appended = asyncio.Event()
        self._closing = False
        self._refusal: Callable[[], ReplogError] = _shutting_down
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="replog-append"
        )
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batcher task (call from the event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="replog-batcher")

    @property
    def closing(self) -> bool:
        """True once shutdown began."""
        return self._closing

    def begin_shutdown(self, refusal: Callable[[], ReplogError] | None = None) -> None:
        """Refuse new appends and wake every waiter (tailing streams end). ``refusal``
        makes the error they get (default: the server is shutting down)."""
        if refusal is not None:
            self._refusal = refusal
        self._closing = True
        self._wakeup.set()
        self._notify()

    async def close(self, refusal: Callable[[], ReplogError] | None = None) -> None:
        """Finish queued appends, then flush, fsync and close the Log (later appends get
        ``refusal``'s error, see ``begin_shutdown``)."""
        self.begin_shutdown(refusal)
        loop = asyncio.get_running_loop()
        if self._task is not None:
            await self._task
            await self._checkpoint(loop)
        if self._key_index is not None:
            await loop.run_in_executor(self._executor, self._key_index.close)
        await loop.run_in_executor(self._executor, self._log.close)
        if self._owns_executor:
            self._executor.shutdown(wait=True)

    # -- appends ---------------------------------------------------------------------------

    def submit(
        self, values: Sequence[AppendValue], conditions: Conditions = NO_CONDITIONS
    ) -> asyncio.Future[int]:
        """Queue values for appending; the future resolves to the first offset (see
        ``LogBackend.submit``)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self._closing:
            future.set_exception(self._refusal())
        elif not values:
            future.set_exception(InvalidArgumentError("a batch needs at least one record"))
        elif len(values) > self._max_batch_records:
            future.set_exception(BatchTooLargeError(len(values), self._max_batch_records))
        else:
            self._pending.append((values, conditions, future))
            self._wakeup.set()
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await self._rebuild_producers(loop)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group = self._take_group()
                await self._append_group(loop, group)
            if self._closing and not self._pending:
                return

    async def _rebuild_producers(self, loop: asyncio.AbstractEventLoop) -> None:
        """The producers' state of the log as it is (before the first append)."""
        log_ = self._log

        def read(offset: int, n: int) -> list[bytes]:
            return log_.read_payloads(offset, max_records=n, max_bytes=4 << 20)

        def rebuild() -> int:
            return self.producers.rebuild(read, log_.lowest_offset, log_.next_offset)

        try:
            await loop.run_in_executor(self._executor, rebuild)
        except ReplogError as exc:  # unreadable records: appends report the Log's error
            log.error("producer state of %s not rebuilt: %s", log_.directory, exc)

    def _take_group(self) -> list[_Request]:
        size = 0
        n = 0
        for values, _, _ in self._pending:
            if n and size > _GROUP_MAX_BYTES:
                break
            size += value_bytes(values) + _GROUP_RECORD_BYTES * len(values)
            n += 1
        group, self._pending = self._pending[:n], self._pending[n:]
        return group

    async def _append_group(self, loop: asyncio.AbstractEventLoop, group: list[_Request]) -> None:
        overlay = Overlay(self.producers.states)
        admitted, duplicates = self._admit(group, overlay)
        if not admitted:
            _answer_duplicates(duplicates)
            return
        values = _joined([items for items, _ in admitted])
        try:
            base = await loop.run_in_executor(self._executor, self._append, values)
        except InvalidArgumentError as exc:
            if len(group) == 1:
                _fail(group[0][2], exc)
                return
            # One request's record is bad: append the others on their own.
            for one in group:
                await self._append_group(loop, [one])
            return
        except Exception as exc:
            for _, _, future in group:
                _fail(future, exc)
            if isinstance(exc, StorageIOError) and self._on_storage_failure is not None:
                self._on_storage_failure(exc)
            return
        overlay.commit_into_base()
        self.producers.covered = base + len(values)
        offset = base
        for items, future in admitted:
            if not future.done():
                future.set_result(offset)
            offset += len(items)
        _answer_duplicates(duplicates)
        self._visible = max(self._visible, offset)
        size = value_bytes(values)
        self.traffic.produced(len(values), size)
        if self._on_appended is not None:
            self._on_appended(len(values), size)
        self._notify()
        if self.producers.due():
            await self._checkpoint(loop)

    def _append(self, values: Sequence[AppendValue]) -> int:
        """Append (in the worker thread) and feed the key index; a failing index stops
        answering per-key conditions, the append stands."""
        base = self._log.append_batch(values)
        index = self._key_index
        if index is not None and self._key_index_failed is None:
            try:
                index.add_batch(base, keys_of(values))
            except Exception as exc:
                self._key_index_failed = exc
                log.error("key index of %s failed; per-key conditions refused: %s", index, exc)
        return base

    def _key_latest(self, group: list[_Request]) -> Callable[[bytes], int] | None:
        """How the group's per-key conditions learn a key's latest offset; None without a
        key index, or when it failed (then those requests fail, certainly not applied)."""
        if self._key_index is None:
            return None
        if self._key_index_failed is not None:
            failed = UnavailableError(
                "the partition's key index failed; see the server's log",
                certainly_not_applied=True,
            )
            for _, c, future in group:
                if c.expected_key_offset is not None:
                    _fail(future, failed)
            return None
        return self._key_index.latest

    def _admit(
        self, group: list[_Request], overlay: Overlay
    ) -> tuple[list[tuple[Sequence[AppendValue], asyncio.Future[int]]], list[_Duplicate]]:
        """The requests of ``group`` to append, in order (stamped with their producers),
        and the retries to answer with their earlier batch's offsets; the others fail."""
        admitted: list[tuple[Sequence[AppendValue], asyncio.Future[int]]] = []
        duplicates: list[_Duplicate] = []
        offset = self._log.next_offset
        now_ms = time.time_ns() // 1_000_000
        keyed = any(c.expected_key_offset is not None for _, c, _ in group)
        pending: dict[bytes, int] = {}  # keys of this group's earlier batches
        indexed = self._key_latest(group) if keyed else None

        def key_latest(key: bytes) -> int:
            if key in pending:
                return pending[key]
            assert indexed is not None
            return indexed(key)

        for values, c, future in group:
            if future.done():  # cancelled
                continue
            try:
                decided = admit(
                    values,
                    c,
                    overlay=overlay,
                    next_offset=offset,
                    key_latest=key_latest if indexed is not None else None,
                )
            except (PreconditionFailedError, UnsupportedError, InvalidArgumentError) as exc:
                _fail(future, exc)
                continue
            if isinstance(decided, BatchMeta):
                duplicates.append((future, decided))
            else:
                if c.producer_id:
                    batch = BatchMeta(c.base_sequence, len(decided), offset)
                    overlay.record(c.producer_id, c.producer_epoch, batch, now_ms)
                admitted.append((decided, future))
                if keyed:
                    pending.update((k, offset + i) for i, k in enumerate(keys_of(decided)) if k)
                offset += len(decided)
        return admitted, duplicates

    async def _checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        data = self.producers.snapshot()
        try:
            await loop.run_in_executor(self._executor, self.producers.write, data)
        except OSError as exc:  # the log itself is fine; the next open replays more
            log.warning("producer-state checkpoint of %s failed: %s", self._log.directory, exc)

    def checkpoint_key_index(self) -> None:
        """Write the key index's checkpoint (blocking; before retention deletes records)."""
        if self._key_index is not None and self._key_index_failed is None:
            self._key_index.checkpoint()

    def _notify(self) -> None:
        event, self._appended = self._appended, asyncio.Event()
        event.set()

    # -- reads -----------------------------------------------------------------------------

    def read_from(self, offset: int, max_records: int, max_bytes: int) -> ReadResult:
        """Serialized records from ``offset`` (none at the high watermark)."""
        visible = self._visible
        if type(offset) is int and visible <= offset <= self._log.next_offset:
            return ReadResult([], offset)
        if type(offset) is int and offset < visible:
            max_records = min(max_records, visible - offset)
        payloads = self._log.read_payloads(offset, max_records=max_records, max_bytes=max_bytes)
        self.traffic.consumed(payloads)
        return ReadResult(payloads, offset + len(payloads))  # one node: no gaps

    def read(self, offset: int) -> Record:
        """The record at ``offset``."""
        if type(offset) is int and self._visible <= offset < self._log.next_offset:
            raise OffsetOutOfRangeError(offset, self._log.lowest_offset, self._visible)
        return self._log.read(offset)

    @property
    def lowest_offset(self) -> int:
        """The first readable offset."""
        return self._log.lowest_offset

    @property
    def high_watermark(self) -> int:
        """The offset after the last acknowledged record."""
        return self._visible

    @property
    def size_bytes(self) -> int:
        """Bytes held in the log's store files."""
        return self._log.size_bytes

    @property
    def segment_count(self) -> int:
        """How many segments the log has."""
        return self._log.segment_count

    async def wait_for_data(self, offset: int, timeout_s: float | None) -> bool:
        """Wait until a record at ``offset`` exists; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while self._visible <= offset:
            if self._closing:
                raise self._refusal()
            event = self._appended
            if deadline is None:
                await event.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return self._visible > offset
        return True

    async def wait_committed(self, offset: int, timeout_s: float | None) -> bool:
        """Wait until ``offset`` is below the high watermark (one node: appended = committed)."""
        return await self.wait_for_data(offset, timeout_s)

    def servers(self) -> list[ServerInfo]:
        """This server, as the leader."""
        return [ServerInfo(id=self.server_id, rpc_addr=self.rpc_addr, is_leader=True)]


_Duplicate = tuple["asyncio.Future[int]", BatchMeta]


def _answer_duplicates(duplicates: list[_Duplicate]) -> None:
    """Answer producers' retries with the offsets of the batches they repeat (appended, as
    the state that recognised them reflects only appended batches or the group just
    appended)."""
    for future, batch in duplicates:
        if not future.done():
            future.set_result(DuplicateOffset(batch.base_offset))


def _shutting_down() -> UnavailableError:
    return UnavailableError("the server is shutting down", certainly_not_applied=True)


def _fail(future: asyncio.Future[int], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _joined(parts: list[Sequence[AppendValue]]) -> Sequence[AppendValue]:
    """The values of many requests as one append (EncodedRecords stay one when all are)."""
    if all(isinstance(part, EncodedRecords) for part in parts):
        return EncodedRecords.concat(parts)  # type: ignore[arg-type]  # all are, just checked
    values: list[AppendValue] = []
    for part in parts:
        values.extend(part)
    return values


def _size(values: Sequence[AppendValue]) -> int:
    if isinstance(values, EncodedRecords):
        return values.byte_size()
    try:
        return sum(map(len, values))  # type: ignore[arg-type]  # bare values: all in C
    except TypeError:  # a Record among them
        return sum(len(v) if isinstance(v, bytes) else v.ByteSize() for v in values)
