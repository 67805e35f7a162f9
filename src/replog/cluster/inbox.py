"""What a node accepts of the Raft traffic it receives: batches of its own cluster, and of
those only the messages addressed to it. Everything else is dropped before the core sees it
(and counted): a heartbeat meant for another node carries a commit index the leader vouched
for only for that node's log, and another cluster's leader knows nothing of this one's log.

A node that does not know its cluster yet (a fresh joiner until the leader answered its
``Join``) accepts nothing; Raft retransmits what it dropped. A cluster created before
cluster ids existed has the id "" on every node.

The messages of an accepted batch go to their group (``RaftBatch.messages`` to the one
``RaftBatch.group`` names, "" = the controller group; each run of ``RaftBatch.groups`` to
its own): the registry maps a group id to its RaftNode's ``deliver`` (and its store, for
snapshot installs). A batch of a
group this node does not host is dropped and counted (reason "group"); it may be created a
moment later, and Raft retransmits. An accepted batch, even an empty one (a liveness ping),
is reported to ``on_heard`` with the sender's Raft id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import AddressBook, raft_id
from replog.cluster.transport import message_from_proto
from replog.raft.messages import Message
from replog.v1 import raft_pb2

__all__ = ["DROP_REASONS", "GroupState", "GroupTarget", "Inbox"]

log = logging.getLogger("replog.cluster")

DROP_REASONS = ("cluster", "destination", "unconfirmed", "group")
"""Why a message was dropped: another cluster's, another node's, this node does not know its
cluster yet, or of a group this node does not host."""
_LOGGED_MAX = 256


class GroupState(Protocol):
    """A group's application state that travels with its snapshots, beside the records
    (the controller group's metadata, ``controller_files.ControllerSnapshots``). Blocking."""

    def outgoing(self, index: int, first_offset: int) -> bytes:
        """The state to send with the records ``first_offset..index`` (may be empty)."""
        ...

    def accept(self, data: bytes, first_offset: int, index: int) -> None:
        """Keep a received state durably before its records are installed; raise a
        ReplogError (the stream is refused) if the records do not continue it."""
        ...


@dataclass(frozen=True, slots=True)
class GroupTarget:
    """Where a hosted group's traffic goes: its node's ``deliver``, the store a snapshot
    of the group is staged in (None: the group takes no snapshots) and the state that
    travels with its snapshots (None: the records alone)."""

    deliver: Callable[[Sequence[Message]], None]
    store: ReplogLogStore | None = None
    state: GroupState | None = None


class Inbox:
    """Checks and delivers what peers send to node ``node_id`` of cluster ``cluster_id``."""

    def __init__(
        self,
        node_id: int,
        cluster_id: str | None,
        book: AddressBook,
    ) -> None:
        """``cluster_id`` None: not known yet (set the attribute once it is). No group is
        hosted until ``register``."""
        self.id = node_id
        self.cluster_id = cluster_id
        self.book = book
        self.dropped: Counter[str] = Counter()
        """Messages dropped so far, by reason (one of ``DROP_REASONS``)."""
        self.on_drop: Callable[[str, int], None] = lambda reason, count: None
        self.on_heard: Callable[[int], None] = lambda peer: None
        """Called with the sender's Raft id for every batch of this cluster (liveness)."""
        self._groups: dict[str, GroupTarget] = {}
        self._logged: set[tuple[str, str]] = set()

    def register(
        self,
        group: str,
        deliver: Callable[[Sequence[Message]], None],
        store: ReplogLogStore | None = None,
        state: GroupState | None = None,
    ) -> None:
        """Deliver ``group``'s messages to ``deliver`` from now on (its snapshots to
        ``store``, with ``state``); replaces an earlier registration of the group."""
        self._groups[group] = GroupTarget(deliver, store, state)

    def unregister(self, group: str) -> None:
        """Host ``group`` no more: its later traffic is dropped (reason "group")."""
        self._groups.pop(group, None)

    def target(self, group: str) -> GroupTarget | None:
        """Where ``group``'s traffic goes, if this node hosts it."""
        return self._groups.get(group)

    @property
    def groups(self) -> list[str]:
        """The ids of the hosted groups."""
        return list(self._groups)

    def receive(self, batch: raft_pb2.RaftBatch) -> None:
        """Take one ``RaftBatch``: learn the addresses it carries and deliver the messages
        meant for this node to their groups, if it is of this cluster and a hosted group."""
        count = len(batch.messages) + sum(len(run.messages) for run in batch.groups)
        if not self.of_this_cluster(batch.cluster_id, batch.from_id, count):
            return
        self.on_heard(raft_id(batch.from_id))
        self.book.learn(batch.from_id, batch.from_addr, batch.from_epoch)
        for a in batch.addresses:
            self.book.learn(a.id, a.addr, a.epoch)
        if batch.messages:  # (none: a liveness ping, or only runs of groups)
            self._deliver(batch.group, batch.messages, batch.from_id)
        for run in batch.groups:
            self._deliver(run.group, run.messages, batch.from_id)

    def _deliver(self, group: str, received: Sequence[raft_pb2.RaftMessage], sender: str) -> None:
        target = self._groups.get(group)
        if target is None:
            self.drop("group", sender, len(received))
            return
        mine = [m for m in received if m.dst == self.id]
        if len(mine) < len(received):
            self.drop("destination", sender, len(received) - len(mine))
        try:
            messages = [message_from_proto(m) for m in mine]
        except ValueError as exc:  # a peer on another protocol version, or a bug
            log.warning("dropping a malformed batch from %s: %s", sender, exc)
            return
        if messages:
            target.deliver(messages)

    def of_this_cluster(self, cluster_id: str, sender: str, count: int = 1) -> bool:
        """Whether traffic marked ``cluster_id`` (from ``sender``) is this cluster's; if not,
        its ``count`` messages are counted as dropped."""
        if self.cluster_id is None:
            self.drop("unconfirmed", sender, count)
            return False
        if cluster_id != self.cluster_id:
            self.drop("cluster", sender, count)
            return False
        return True

    def addressed_here(self, message: raft_pb2.RaftMessage, sender: str) -> bool:
        """Whether ``message`` names this node as its destination (counted if not)."""
        if message.dst == self.id:
            return True
        self.drop("destination", sender, 1)
        return False

    def drop(self, reason: str, sender: str, count: int) -> None:
        """Count ``count`` messages from ``sender`` as dropped for ``reason``."""
        if not count:
            return
        self.dropped[reason] += count
        self.on_drop(reason, count)
        key = (reason, sender)
        if key in self._logged or len(self._logged) >= _LOGGED_MAX or reason == "unconfirmed":
            return
        self._logged.add(key)
        if reason == "cluster":  # a misconfiguration an operator should see
            log.warning("dropping Raft traffic from %s: it is of another cluster", sender)
        else:
            log.debug("dropping Raft messages from %s for another node (%s)", sender, reason)
