"""The cluster's metadata on one node: the controller state, carried in the controller log.

Every metadata command travels in the controller group (the Raft group every cluster has)
as one entry of kind ``METADATA_RECORD_TYPE``. Each node folds the committed entries, in log
order, into a ``ControllerState`` with ``controller.apply_reporting`` (pure and
deterministic, so every node holds the same state at the same index), and tells its
listeners (the partition groups' reconciler) about every change.

Restart: the Raft core treats the entries up to the saved commit index as applied and
delivers only later ones again, so ``rebuild`` folds the retained metadata entries up to
that index first. The controller log is never compacted by retention (the ``default``
topic of a cluster keeps everything; docs/multiraft.md), so every node can rebuild from
its own log; a node that joins fresh receives the whole log.

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
from replog.cluster.controller_state import ControllerState, PartitionInfo, TopicInfo
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import RaftNode
from replog.errors import InvalidArgumentError, ReplogError, UnavailableError

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
        self.listeners: list[Listener] = []
        self._refusals: dict[int, ReplogError] = {}
        node.on_metadata = self._on_entry

    def rebuild(self) -> None:
        """Fold the metadata entries up to the saved commit index (see module docstring)."""
        commit = self.store.initial_state().commit
        for index, data in self.store.control_entries(METADATA_RECORD_TYPE, commit):
            self._on_entry(index, data)

    # -- apply ----------------------------------------------------------------------------

    def _on_entry(self, index: int, data: bytes) -> None:
        """Apply one committed metadata entry. An encoding this node does not know raises
        UnsupportedError: the node must stop applying (the driver fail-stops), never skip."""
        refused: ReplogError | None
        try:
            command = decode(data)
        except InvalidArgumentError as exc:  # the same bytes are refused on every node
            log.error("metadata entry %d is not a command; applied as a no-op: %s", index, exc)
            applied_state, refused = self._noop(index), exc
        else:
            result = apply_reporting(self.state, command, index)
            applied_state, refused = result.state, result.refused
            if refused is None:
                log.info("metadata %d: %s", index, _describe(command))
        if refused is not None:
            self._refusals[index] = refused
            while len(self._refusals) > _MAX_REFUSALS:
                del self._refusals[next(iter(self._refusals))]
        old, self.state = self.state, applied_state
        if old.topics != applied_state.topics or old.nodes != applied_state.nodes:
            for listener in list(self.listeners):
                listener(old, applied_state)

    def _noop(self, index: int) -> ControllerState:
        if index <= self.state.version:
            return self.state
        s = self.state
        return ControllerState(nodes=s.nodes, topics=s.topics, version=index)

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


def _describe(command: Command) -> str:
    """A short human summary: the command's kind and its main fields."""
    parts = [command.kind]
    for name in ("name", "topic", "node_id", "partition", "partitions", "count"):
        value = getattr(command, name, None)
        if value is not None:
            parts.append(f"{name}={value}")
    return " ".join(parts)
