"""One partition of the offsets topic as this node coordinates it: ``GroupShard``.

The node that leads a partition of ``__consumer_offsets`` coordinates the groups that map to
it. Taking over (``activate``) writes a ``start`` record with a fresh incarnation and reads
the partition up to it, so the state is that of every write before; from then on a reader
task applies every committed record in order (``broker.group_log``). A write (a commit, an
epoch, a delete) answers only once the reader applied it, and says whether it counted: one
written by a coordinator that was replaced meanwhile did not, for certain.

Members (heartbeats, assignments) live in memory only: a new coordinator starts every group
with no members at the next epoch after its last recorded one, so members of the old one
are told they are unknown and rejoin, and a zombie cannot commit.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable

from replog.api.backend import LogBackend, ServerInfo
from replog.broker.group_coordinator import GroupCoordinator
from replog.broker.group_log import GroupLogState, copy_batches, start_record, state_records
from replog.errors import UnavailableError
from replog.v1.record_pb2 import Record

__all__ = ["GroupShard"]

_log = logging.getLogger("replog.groups")

_READ_RECORDS = 1000
_READ_BYTES = 4 << 20
_RETRY_S = 0.2


class GroupShard:
    """The coordinator of one offsets partition on this node (see the module docstring)."""

    def __init__(
        self,
        partition: int,
        backend: Callable[[], LogBackend],
        is_me: Callable[[ServerInfo], bool],
        new_group: Callable[[str, int, str], GroupCoordinator],
    ) -> None:
        """``backend()`` gives the partition's backend; ``is_me`` tells this node in its
        ``servers()``; ``new_group(name, epoch, assignor)`` makes a group's coordinator."""
        self.partition = partition
        self._backend = backend
        self._is_me = is_me
        self._new_group = new_group
        self.state = GroupLogState()
        self.groups: dict[str, GroupCoordinator] = {}
        self.tenure = 0
        """Grows whenever the members in memory are dropped (this node took over or stopped
        coordinating); a compaction's new incarnation keeps it."""
        self.incarnation = ""
        self._activating: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._applied = asyncio.Event()
        self._lock = asyncio.Lock()
        """Serializes writes, so a group's records land in the order it made them."""
        self.compacted_at = 0.0
        """When the state was last copied forward (monotonic seconds; 0: never)."""
        self._pending = ""
        self._stopped = False

    # -- who coordinates -------------------------------------------------------------------

    def leader(self) -> ServerInfo | None:
        """The partition's leader as this node knows it."""
        return next((s for s in self._backend().servers() if s.is_leader), None)

    def _not_here(self) -> UnavailableError:
        leader = self.leader()
        addr = leader.rpc_addr if leader is not None and not self._is_me(leader) else ""
        return UnavailableError(
            "this node is not the group's coordinator" + ("" if addr else " (none is known yet)"),
            certainly_not_applied=True,
            leader_addr=addr,
        )

    @property
    def active(self) -> bool:
        """True while this node coordinates the partition's groups."""
        return bool(self.incarnation) and self.state.incarnation == self.incarnation

    async def ready(self) -> None:
        """Return once this node coordinates the partition; raises UnavailableError (with
        the coordinator's address when known) when another node does."""
        leader = self.leader()
        if leader is None or not self._is_me(leader):
            self._deactivate()
            raise self._not_here()
        if self.active:
            return
        if self._activating is None or self._activating.done():
            self._activating = asyncio.ensure_future(self._activate())
        await asyncio.shield(self._activating)
        if not self.active:
            raise self._not_here()

    async def _activate(self) -> None:
        async with self._lock:
            if self.active:
                return
            self.groups.clear()  # the previous coordinator's members must rejoin
            self.tenure += 1
            if await self._start_anew():
                _log.info("coordinating consumer groups of offsets partition %d", self.partition)

    async def _start_anew(self) -> bool:
        """Append a ``start`` of a fresh incarnation and, once applied, a copy of the whole
        state under it (see ``compact``); True when this node is then the coordinator.
        Call with the lock held: no other write may come between the two."""
        incarnation = secrets.token_hex(8)
        self._pending = incarnation  # the reader makes it current as it applies the start
        backend = self._backend()
        try:
            offset = await backend.submit([start_record(incarnation)])
            await self.applied(offset)
        finally:
            self._pending = ""
        if self.incarnation != incarnation:
            return False  # another start came after ours
        last = -1
        for batch in copy_batches(state_records(self.state, incarnation)):
            last = await backend.submit(batch) + len(batch) - 1
        if last >= 0:
            await self.applied(last)
        self.compacted_at = time.monotonic()
        return self.active

    async def compact(self) -> None:
        """Copy the live state forward: a new ``start`` and every group's offsets and epoch
        after it (members stay: this node goes on coordinating). Everything before that
        ``start`` is then dead, so time retention on the offsets topic may delete it
        (``GroupService`` runs this well within it)."""
        async with self._lock:
            if self.active:
                await self._start_anew()

    def _deactivate(self) -> None:
        if self.incarnation:
            _log.info("no longer coordinating offsets partition %d", self.partition)
        self.incarnation = ""
        self.groups.clear()
        self.tenure += 1

    # -- the reader --------------------------------------------------------------------------

    def _ensure_reader(self) -> None:
        if self._stopped:
            raise UnavailableError("the server is shutting down")
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_forever())

    async def _read_forever(self) -> None:
        try:
            while True:
                try:
                    backend = self._backend()
                    start = max(self.state.next_offset, backend.lowest_offset)
                    if not await backend.wait_for_data(start, None):
                        continue
                    result = backend.read_from(start, _READ_RECORDS, _READ_BYTES)
                except UnavailableError:
                    self._stopped = True  # the partition's backend shut down
                    return
                except Exception as exc:  # logged; retried after a pause
                    _log.warning("offsets partition %d: read failed: %s", self.partition, exc)
                    await asyncio.sleep(_RETRY_S)
                    continue
                for payload in result.payloads:
                    self._apply(payload)
                self.state.next_offset = max(self.state.next_offset, result.next_offset)
                self._follow_starts()
                self._wake()
                await asyncio.sleep(0)  # a long catch-up must not hold the loop
        finally:
            self._wake()

    def _follow_starts(self) -> None:
        """After a batch: our own pending ``start`` makes its incarnation current; any other
        one means another coordinator took over."""
        current = self.state.incarnation
        if self._pending and current == self._pending:
            self.incarnation = current
        elif self.incarnation and current != self.incarnation:
            self._deactivate()

    def _wake(self) -> None:
        self._applied.set()
        self._applied = asyncio.Event()

    def _apply(self, payload: bytes) -> None:
        try:
            record = Record.FromString(payload)
            self.state.apply(record.offset, record.value)
        except Exception as exc:  # a record no coordinator wrote: skipped
            _log.warning("offsets partition %d: skipped a record: %s", self.partition, exc)

    async def applied(self, offset: int) -> None:
        """Wait until the reader applied the record at ``offset``. Raises UnavailableError
        (outcome unknown) when the partition's backend shut down first."""
        while self.state.next_offset <= offset:
            self._ensure_reader()
            await self._applied.wait()

    async def write(self, records: Callable[[str], list[Record]]) -> None:
        """Append the group records ``records(incarnation)`` builds (atomically: one batch)
        as the current coordinator and return once applied. The builder runs with the
        shard's writes serialized, so checks made in it hold when the records land.

        Raises UnavailableError (certainly not applied) when this node stopped coordinating
        before they landed, the builder's error (nothing written), or the backend's error
        (outcome unknown)."""
        await self.ready()
        async with self._lock:
            if not self.active:
                raise self._not_here()
            batch = records(self.incarnation)
            offset = await self._backend().submit(batch)
        await self.applied(offset + len(batch) - 1)
        if self.state.take_outcome(offset) is not True:
            raise self._not_here()

    async def close(self) -> None:
        """Stop the reader."""
        self._stopped = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
