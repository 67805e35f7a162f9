"""``RaftBackend``: the LogBackend of a replicated node.

Produce: on the leader, records go to the Raft node and the future resolves once the entry
is committed (stored durably on a majority). On a follower the request is forwarded to the
leader over gRPC (``Raft/Forward`` with the node's own credentials, so it is authorised as
the node: ``replicate``), so every API works against any node; the leader-aware client sends
to the leader directly.

Consume: any node serves reads, but only below its commit index (the high watermark), so a
consumer never sees an uncommitted record. Records with ``type != 0`` (the leader's no-op,
membership and address-book records) are skipped: offsets seen by consumers may have gaps,
like Kafka's control records.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
from collections.abc import Callable, Sequence

import grpc

from replog.api.backend import (
    NO_CONDITIONS,
    AppendValue,
    Conditions,
    DuplicateOffset,
    ReadResult,
    ServerInfo,
)
from replog.api.traffic import PartitionTraffic, value_bytes
from replog.cluster.forward import Forwarder
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import NotLeaderNodeError, RaftNode
from replog.errors import InvalidArgumentError, OffsetOutOfRangeError, UnavailableError
from replog.raft.ready import Role
from replog.v1.record_pb2 import Record

__all__ = ["RaftBackend"]

_FORWARD_ATTEMPTS = 20
_NO_LEADER_WAIT_S = 0.1


class RaftBackend:
    """A LogBackend over a :class:`RaftNode`; see the module docstring."""

    def __init__(
        self,
        node: RaftNode,
        store: ReplogLogStore,
        *,
        name: str,
        members: Callable[[], list[tuple[int, str, str, bool]]],
        address_of: Callable[[int], str | None],
        credentials: grpc.ChannelCredentials | None = None,
        topic: str = "",
        partition: int = 0,
        topic_id: int | None = None,
        forwarder: Forwarder | None = None,
    ) -> None:
        """``members()`` gives (raft id, name, address, voter) of every member; ``topic`` and
        ``partition`` name the partition the group holds ("" and 0: the controller group)."""
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.node = node
        self.store = store
        self.server_id = name
        self._members = members
        self._address_of = address_of
        self._credentials = credentials
        self._forwarder = forwarder or Forwarder(credentials)
        self._own_forwarder = forwarder is None
        self._committed = asyncio.Event()
        self._closing = False
        self.traffic = PartitionTraffic()
        """What was produced to (on this node as leader) and read from this replica."""
        node.on_commit = self._notify

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """True once shutdown began."""
        return self._closing

    def begin_shutdown(self) -> None:
        """Refuse new appends and end tailing readers."""
        self._closing = True
        self._notify()

    async def close(self) -> None:
        """Close the forwarding channels (the node is stopped by its owner)."""
        self.begin_shutdown()
        if self._own_forwarder:
            await self._forwarder.close()

    def _notify(self) -> None:
        event, self._committed = self._committed, asyncio.Event()
        event.set()

    # -- appends ---------------------------------------------------------------------------

    def submit(
        self, values: Sequence[AppendValue], conditions: Conditions = NO_CONDITIONS
    ) -> asyncio.Future[int]:
        """Append on the leader (forwarding from a follower); resolves once committed
        (see ``LogBackend.submit``)."""
        if self._closing:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            future.set_exception(
                UnavailableError("the server is shutting down", certainly_not_applied=True)
            )
            return future
        if not values:
            future = asyncio.get_running_loop().create_future()
            future.set_exception(InvalidArgumentError("a batch needs at least one record"))
            return future
        if self.node.is_leader:
            return self.submit_here(values, conditions)
        return asyncio.ensure_future(self._submit_anywhere(values, conditions))

    def submit_here(
        self, values: Sequence[AppendValue], conditions: Conditions = NO_CONDITIONS
    ) -> asyncio.Future[int]:
        """``RaftNode.submit`` on this node (it must lead), counted in ``traffic`` once
        acknowledged (a producer's retry of a batch already written is not counted)."""
        future = self.node.submit(values, conditions)
        future.add_done_callback(functools.partial(self._count, values))
        return future

    def _count(self, values: Sequence[AppendValue], future: asyncio.Future[int]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        if not isinstance(future.result(), DuplicateOffset):
            self.traffic.produced(len(values), value_bytes(values))

    async def _submit_anywhere(self, values: Sequence[AppendValue], conditions: Conditions) -> int:
        for _ in range(_FORWARD_ATTEMPTS):
            if self.node.is_leader:
                try:
                    return await self.submit_here(values, conditions)
                except NotLeaderNodeError:
                    pass
            leader = self.node.leader
            # Not to a leader node liveness holds down: its followers are electing (after a
            # kill -9, hundreds of produces each forwarded to the dead node 10 times a second
            # loaded the survivors while they elected).
            addr = (
                self._address_of(leader)
                if leader is not None and leader != self.node.id and self.node.leader_live(leader)
                else None
            )
            if addr:
                try:
                    return await self._forward(addr, values, conditions)
                except UnavailableError as exc:
                    if not exc.certainly_not_applied:
                        raise
            await asyncio.sleep(_NO_LEADER_WAIT_S)  # an election is under way
        raise UnavailableError("no leader is known", certainly_not_applied=True)

    async def _forward(
        self, addr: str, values: Sequence[AppendValue], conditions: Conditions
    ) -> int:
        return await self._forwarder.forward(
            addr, values, self.topic, self.partition, topic_id=self.topic_id, conditions=conditions
        )

    # -- reads -----------------------------------------------------------------------------

    def read_from(self, offset: int, max_records: int, max_bytes: int) -> ReadResult:
        """Committed user records from ``offset``, control records skipped.

        The read starts at the first user record at or after ``offset`` (so it returns one
        whenever one is committed, even with ``max_records=1`` or at a segment's end), and
        ``next_offset`` is past the control records that follow the last one it returns.
        """
        hw = self._readable_end()
        start = self._skip_control(max(offset, self.store.log.lowest_offset), hw)
        if start >= hw:
            return ReadResult([], start)
        payloads = self.store.log.read_payloads(
            start, max_records=min(max_records, hw - start), max_bytes=max_bytes
        )
        end = start + len(payloads)
        control = self.store.control
        lo = bisect.bisect_left(control, start)
        hi = bisect.bisect_left(control, end)
        if lo != hi:
            skip = set(control[lo:hi])
            payloads = [p for o, p in enumerate(payloads, start) if o not in skip]
        self.traffic.consumed(payloads)
        return ReadResult(payloads, self._skip_control(end, hw))

    def _skip_control(self, offset: int, hw: int) -> int:
        """The first offset at or after ``offset`` that is not a control record (at most
        ``hw``). The sorted control offsets hold a run ``offset, offset+1, ...`` exactly as
        far as ``control[i + k] == offset + k``, so the run's end is binary-searched."""
        if offset >= hw:
            return offset
        control = self.store.control
        i = bisect.bisect_left(control, offset)
        if i == len(control) or control[i] != offset:
            return offset
        lo, hi = 1, len(control) - i  # control[i + lo - 1] == offset + lo - 1 holds
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if control[i + mid - 1] == offset + mid - 1:
                lo = mid
            else:
                hi = mid - 1
        return min(offset + lo, hw)

    def read(self, offset: int) -> Record:
        """The committed record at ``offset``."""
        hw = self.node.high_watermark
        if offset >= hw:
            raise OffsetOutOfRangeError(offset, self.lowest_offset, hw)
        return self.store.log.read(offset)

    @property
    def lowest_offset(self) -> int:
        """The first readable offset; 0 while the log still starts at Raft index 1 (offset 0
        is a gap, so consumers starting from 0 work as with a single node)."""
        lowest = self.store.log.lowest_offset
        return 0 if lowest == 1 else lowest

    @property
    def high_watermark(self) -> int:
        """The commit index + 1 on this node."""
        return self.node.high_watermark

    def _has_user_record(self, offset: int) -> bool:
        """Whether ``read_from(offset, ...)`` would return a record now."""
        hw = self._readable_end()
        return self._skip_control(max(offset, self.store.log.lowest_offset), hw) < hw

    def _readable_end(self) -> int:
        """The high watermark, and never past the local log's end (while a snapshot is
        installed the two may disagree; reads and waits must agree on the end)."""
        return min(self.node.high_watermark, self.store.log.next_offset)

    async def wait_for_data(self, offset: int, timeout_s: float | None) -> bool:
        """Wait until a committed user record at or after ``offset`` exists."""
        return await self._wait(lambda: self._has_user_record(offset), timeout_s)

    async def wait_committed(self, offset: int, timeout_s: float | None) -> bool:
        """Wait until this node's commit index reached ``offset`` (read-your-writes)."""
        return await self._wait(lambda: self.node.high_watermark > offset, timeout_s)

    async def _wait(self, done: Callable[[], bool], timeout_s: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not done():
            if self._closing:
                raise UnavailableError("the server is shutting down", certainly_not_applied=True)
            event = self._committed
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return done()
        return True

    def servers(self) -> list[ServerInfo]:
        """Every member, with the leader marked."""
        leader = self.node.leader
        return [
            ServerInfo(id=name, rpc_addr=addr, is_leader=raft_id == leader, is_voter=voter)
            for raft_id, name, addr, voter in self._members()
        ]

    @property
    def role(self) -> Role:
        """This node's role."""
        return self.node.raft.role

    @property
    def size_bytes(self) -> int:
        """Bytes held in the log's store files."""
        return self.store.log.size_bytes

    @property
    def segment_count(self) -> int:
        """How many segments the log has."""
        return self.store.log.segment_count
