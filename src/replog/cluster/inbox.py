"""What a node accepts of the Raft traffic it receives: batches of its own cluster, and of
those only the messages addressed to it. Everything else is dropped before the core sees it
(and counted): a heartbeat meant for another node carries a commit index the leader vouched
for only for that node's log, and another cluster's leader knows nothing of this one's log.

A node that does not know its cluster yet (a fresh joiner until the leader answered its
``Join``) accepts nothing; Raft retransmits what it dropped. A cluster created before
cluster ids existed has the id "" on every node.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence

from replog.cluster.members import AddressBook
from replog.cluster.transport import message_from_proto
from replog.raft.messages import Message
from replog.v1 import raft_pb2

__all__ = ["DROP_REASONS", "Inbox"]

log = logging.getLogger("replog.cluster")

DROP_REASONS = ("cluster", "destination", "unconfirmed")
"""Why a message was dropped: another cluster's, another node's, or this node does not know
its cluster yet."""
_LOGGED_MAX = 256


class Inbox:
    """Checks and delivers what peers send to node ``node_id`` of cluster ``cluster_id``."""

    def __init__(
        self,
        node_id: int,
        cluster_id: str | None,
        book: AddressBook,
        deliver: Callable[[Sequence[Message]], None],
    ) -> None:
        """``cluster_id`` None: not known yet (set the attribute once it is)."""
        self.id = node_id
        self.cluster_id = cluster_id
        self.book = book
        self.deliver = deliver
        self.dropped: Counter[str] = Counter()
        """Messages dropped so far, by reason (one of ``DROP_REASONS``)."""
        self.on_drop: Callable[[str, int], None] = lambda reason, count: None
        self._logged: set[tuple[str, str]] = set()

    def receive(self, batch: raft_pb2.RaftBatch) -> None:
        """Take one ``RaftBatch``: learn the addresses it carries and deliver the messages
        meant for this node, if it is of this cluster."""
        if not self.of_this_cluster(batch.cluster_id, batch.from_id, len(batch.messages)):
            return
        self.book.learn(batch.from_id, batch.from_addr, batch.from_epoch)
        for a in batch.addresses:
            self.book.learn(a.id, a.addr, a.epoch)
        mine = [m for m in batch.messages if m.dst == self.id]
        if len(mine) < len(batch.messages):
            self._drop("destination", batch.from_id, len(batch.messages) - len(mine))
        try:
            messages = [message_from_proto(m) for m in mine]
        except ValueError as exc:  # a peer on another protocol version, or a bug
            log.warning("dropping a malformed batch from %s: %s", batch.from_id, exc)
            return
        if messages:
            self.deliver(messages)

    def of_this_cluster(self, cluster_id: str, sender: str, count: int = 1) -> bool:
        """Whether traffic marked ``cluster_id`` (from ``sender``) is this cluster's; if not,
        its ``count`` messages are counted as dropped."""
        if self.cluster_id is None:
            self._drop("unconfirmed", sender, count)
            return False
        if cluster_id != self.cluster_id:
            self._drop("cluster", sender, count)
            return False
        return True

    def addressed_here(self, message: raft_pb2.RaftMessage, sender: str) -> bool:
        """Whether ``message`` names this node as its destination (counted if not)."""
        if message.dst == self.id:
            return True
        self._drop("destination", sender, 1)
        return False

    def _drop(self, reason: str, sender: str, count: int) -> None:
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
