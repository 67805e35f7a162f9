"""The cluster's metadata on one node: the controller state, carried in the controller log.

Every metadata command travels in the controller group (the Raft group every cluster has)
as one entry of kind ``METADATA_RECORD_TYPE``. Each node folds the committed entries, in log
order, into a ``ControllerState`` with ``controller.apply_reporting`` (pure and
deterministic, so every node holds the same state at the same index), and tells its
listeners (the partition groups' reconciler) about every change.

Snapshots (``controller_files``): each node writes the state as of its applied index now and
then (``save_snapshot``), and retention of the controller log (topic ``default``/0) deletes
only below the newest durable one. Restart: the Raft core treats the entries up to the
saved commit index as applied and delivers only later ones again, so ``rebuild`` loads the
newest valid snapshot the retained records continue and folds the metadata entries after
it up to that index (all of them from the empty state if the log was never compacted); if
the log was compacted and no snapshot covers it, the node stops (``StateLostError``). A
follower caught up by a Raft snapshot receives the leader's snapshot file with the records
(``snapshots.accept``) and restores from it once they are installed (``installed``).

Proposals (``propose``): only the controller leader proposes. The command is validated
against the current state first (the caller gets the error at once and nothing is
appended), then proposed and awaited; when it applies, it is validated again against the
state it meets there, and a refusal then is given to the proposer too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.controller import apply_reporting, validate
from replog.cluster.controller_commands import METADATA_RECORD_TYPE, Command, decode
from replog.cluster.controller_files import ControllerSnapshots, SavedSnapshot
from replog.cluster.controller_state import ControllerState, PartitionInfo, TopicInfo
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import RaftNode
from replog.errors import InvalidArgumentError, ReplogError, StateLostError, UnavailableError
from replog.raft.core import Raft
from replog.raft.messages import SnapshotMeta

__all__ = ["Metadata", "NotControllerError", "empty_state"]

log = logging.getLogger("replog.cluster.metadata")

Listener = Callable[[ControllerState, ControllerState], None]

#: Refusals kept for proposers to collect (a proposer collects its own at once).
_MAX_REFUSALS = 1024


class NotControllerError(UnavailableError):
    """This node is not the controller leader: ask ``leader_addr`` (nothing was applied)."""

    def __init__(self, leader_addr: str) -> None:
        super().__init__(
            "this node is not the controller leader; retry on the leader",
            certainly_not_applied=True,
            leader_addr=leader_addr,
        )


def empty_state() -> ControllerState:
    """The state before the first command: no node registered yet, and the ``default``
    topic's one partition (the controller group), whose replicas registering adds."""
    default = TopicInfo(
        topic_id=0, start=0, replication_factor=0, config={}, partitions=(PartitionInfo(()),)
    )
    return ControllerState(nodes={}, topics={DEFAULT_TOPIC: default}, version=0)


class Metadata:
    """The controller state as this node applied it; see the module docstring."""

    def __init__(
        self, node: RaftNode, store: ReplogLogStore, address_of: Callable[[int], str | None]
    ) -> None:
        """Follow ``node`` (the controller group's) from now on; call ``rebuild`` first."""
        self.node = node
        self.store = store
        self._address_of = address_of
        self.state = empty_state()
        self.index = 0
        """The log index ``state`` is as of (at least its version; entries up to it are in)."""
        self.listeners: list[Listener] = []
        self.snapshots = ControllerSnapshots(store.directory)
        self._refusals: dict[int, ReplogError] = {}
        self._saving = asyncio.Lock()
        node.on_metadata = self._on_entry
        node.on_snapshot = self.installed

    def rebuild(self) -> None:
        """Restore the state as of the saved commit index (see module docstring)."""
        base = self._base(self.snapshots.load())
        if base is not None:
            self._change(base.state, base.index)
        commit = self.store.initial_state().commit
        for index, data in self.store.control_entries(METADATA_RECORD_TYPE, self.index, commit):
            self._on_entry(index, data)

    def installed(self, meta: SnapshotMeta) -> None:
        """The controller group installed a leader's snapshot up to ``meta.index``: restore
        the state from the snapshot that came with it and the records, keep it as this
        node's own snapshot, then tell the listeners once (never a state in between, which
        could look like topics deleted). StateLostError (the node fail-stops) if nothing
        covers the records."""
        if self.index >= meta.index:  # a snapshot loaded at start was newer: keep it
            return
        base = self._base(self.snapshots.load(), meta.index)
        state, index = (base.state, base.index) if base is not None else (empty_state(), 0)
        for i, data in self.store.control_entries(METADATA_RECORD_TYPE, index, meta.index):
            state, refused = _step(state, i, data)
            self._refused(i, refused)
        self.snapshots.write(meta.index, meta.term, state)
        self._change(state, meta.index)

    def _base(self, saved: list[SavedSnapshot], up_to: int | None = None) -> SavedSnapshot | None:
        """The newest snapshot (as of ``up_to`` at most) the retained records continue;
        None to fold them all from the empty state (the log starts at 1). StateLostError if
        neither is possible."""
        lowest = self.store.log.lowest_offset
        fits = (s for s in saved if lowest - 1 <= s.index <= (up_to or s.index))
        base = next(fits, None)
        if base is None and lowest > 1:
            found = ", ".join(str(i) for i in self.snapshots.indexes()) or "none"
            raise StateLostError(
                f"the controller log in {self.store.directory} starts at index {lowest} and "
                f"no valid controller snapshot as of {lowest - 1} or later is there (snapshot "
                f"files: {found}): the cluster metadata cannot be rebuilt. Restore the data "
                "directory, or remove it and join the cluster again as a new node"
            )
        return base

    # -- apply ----------------------------------------------------------------------------

    def _on_entry(self, index: int, data: bytes) -> None:
        """Apply one committed metadata entry (one a snapshot already covers is skipped).
        An encoding this node does not know raises UnsupportedError: the node must stop
        applying (the driver fail-stops), never skip."""
        if index <= self.index:
            return
        applied_state, refused = _step(self.state, index, data)
        self._refused(index, refused)
        self._change(applied_state, index)

    def _refused(self, index: int, refused: ReplogError | None) -> None:
        if refused is not None:
            self._refusals[index] = refused
            while len(self._refusals) > _MAX_REFUSALS:
                del self._refusals[next(iter(self._refusals))]

    def _change(self, state: ControllerState, index: int) -> None:
        old, self.state, self.index = self.state, state, max(self.index, index)
        if old.topics != state.topics or old.nodes != state.nodes:
            for listener in list(self.listeners):
                listener(old, state)

    # -- snapshots ------------------------------------------------------------------------

    async def save_snapshot(self, *, refresh: bool = False) -> int:
        """Write the state as of the applied index if it changed since the newest snapshot
        (``refresh``: also if only the index moved on, so retention may delete up to it);
        the newest snapshot's index after it (0: none). UnavailableError if the node stops."""
        async with self._saving:
            index, term, state = await self.node.call(self._capture)
            s = self.snapshots
            stale = state.version != s.newest_version or (refresh and index > s.newest_index)
            if term is not None and index > s.newest_index and stale:
                await asyncio.to_thread(s.write, index, term, state)
            return s.newest_index

    def _capture(self, raft: Raft) -> tuple[int, int | None, ControllerState]:
        """(index, its term, state) as applied now (on the node's loop, between turns)."""
        index = max(self.index, self.node.high_watermark - 1)
        return index, self.store.term(index), self.state

    # -- propose --------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """Whether this node leads the controller group (and so may propose)."""
        return self.node.is_leader

    def require_leader(self) -> None:
        """Raise NotControllerError (with the leader's address) unless leading."""
        if not self.node.is_leader:
            lead = self.node.leader
            raise NotControllerError((self._address_of(lead) or "") if lead is not None else "")

    async def propose(self, command: Command, timeout_s: float = 10.0) -> ControllerState:
        """Validate, replicate and apply ``command``; the state right after it applied.

        Raises the validation error (nothing appended), NotControllerError, or
        UnavailableError when the outcome is unknown (not committed in time)."""
        await self.propose_at(command, timeout_s)
        return self.state

    async def wait_version(self, index: int, timeout_s: float) -> bool:
        """Wait until this node applied the metadata entry at ``index``; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.state.version < index:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def propose_at(self, command: Command, timeout_s: float = 10.0) -> int:
        """``propose``, giving the log index the command applied at."""
        self.require_leader()
        validate(self.state, command)
        try:
            index = await self.node.propose_control(
                METADATA_RECORD_TYPE, command.encode(), _describe(command), timeout_s
            )
        except UnavailableError as exc:
            if exc.certainly_not_applied:
                self.require_leader()
            raise
        refused = self._refusals.pop(index, None)
        if refused is not None:
            raise refused
        return index


def _step(
    state: ControllerState, index: int, data: bytes
) -> tuple[ControllerState, ReplogError | None]:
    """``state`` after the metadata entry ``data`` at ``index``, and its refusal if any
    (bytes that are no command apply as a no-op everywhere; UnsupportedError propagates)."""
    try:
        command = decode(data)
    except InvalidArgumentError as exc:  # the same bytes are refused on every node
        log.error("metadata entry %d is not a command; applied as a no-op: %s", index, exc)
        if index <= state.version:
            return state, exc
        return ControllerState(nodes=state.nodes, topics=state.topics, version=index), exc
    result = apply_reporting(state, command, index)
    if result.refused is None:
        log.info("metadata %d: %s", index, _describe(command))
    return result.state, result.refused


def _describe(command: Command) -> str:
    """A short human summary: the command's kind and its main fields."""
    parts = [command.kind]
    for name in ("name", "topic", "node_id", "partition", "partitions", "count"):
        value = getattr(command, name, None)
        if value is not None:
            parts.append(f"{name}={value}")
    return " ".join(parts)
