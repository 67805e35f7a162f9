"""Which tree and checkpoints a verifiable-log route reads: a single node's partition, or on a
cluster this node's replica of it (the twin routes of ``http_tlog`` and ``tlog_grpc``).

On a cluster every replica keeps a byte-identical tree of the committed records and signs its
own checkpoints (``cluster_checkpointer``), so any replica answers from its own files. A
replica's tree may also hold records not committed yet, which a new leader may still replace:
a proof or tile is only served for leaves under the replica's commit index. A size past it
whose leaves the replica holds waits a moment for the commit index (``_COMMIT_WAIT_S``);
then, or at once when it lacks the leaves, a follower answers UNAVAILABLE naming the leader
(the size may be committed there: retry) and the leader INVALID_ARGUMENT (a leader holds
every committed entry: no replica can have signed that size). A node without a replica
answers UNAVAILABLE naming one, as reads do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from replog.broker import Broker
from replog.cluster.backend import RaftBackend
from replog.cluster.remote import RemotePartition
from replog.cluster.topics import ClusterTopics
from replog.errors import InvalidArgumentError, UnavailableError, UnsupportedError
from replog.server.checkpointer import Checkpointer
from replog.tlog.checkpoints import CHECKPOINTS_DIR, CheckpointStore
from replog.tlog.log_tree import LogTree

__all__ = ["BrokerTlog", "ClusterTlog", "TlogPartition", "TlogSource", "checkpoint_store"]

_COMMIT_WAIT_S = 2.0


@dataclass(frozen=True)
class TlogPartition:
    """One partition's tree here, its checkpoints (None: none are signed) and, on a cluster,
    its replica's Raft backend (whose commit index bounds what may be proven)."""

    topic: str
    partition: int
    tree: LogTree
    checkpoints: CheckpointStore | None
    replica: RaftBackend | None = None

    def committed(self, tree_size: int) -> int:
        """How many leaves of a tree of ``tree_size`` may be proven or served."""
        if self.replica is None:
            return tree_size
        return min(tree_size, self.replica.node.high_watermark)

    async def hold(self, size: int) -> None:
        """Return once ``size`` leaves may be proven (a cluster replica waits a moment for its
        commit index); else UnavailableError naming the leader (a follower) or
        InvalidArgumentError (a single node, or the leader)."""
        replica = self.replica
        if replica is None or size <= replica.node.high_watermark:
            return
        # Leaves held but not known committed yet: the commit index follows in a moment.
        if size <= self.tree.size and await replica.wait_committed(size - 1, _COMMIT_WAIT_S):
            return
        held = self.committed(self.tree.size)
        if replica.node.is_leader:
            raise InvalidArgumentError(f"the tree holds {held} committed leaves, not {size}")
        leader = next((s.rpc_addr for s in replica.servers() if s.is_leader), "")
        raise UnavailableError(
            f"this replica of {self.topic}/{self.partition} has committed {held} leaves, not "
            f"{size} yet; retry (at the leader)",
            leader_addr=leader,
        )


class TlogSource(Protocol):
    """Resolves a partition to the tree and checkpoints the routes serve."""

    def partition(self, topic: str, partition: int) -> TlogPartition:
        """The partition's tree here; UnknownTopicError / UnknownPartitionError,
        UnsupportedError when no tree is kept, UnavailableError when another node holds it."""
        ...


def _kept(tree: LogTree | None) -> LogTree:
    if tree is None:
        raise UnsupportedError("this server keeps no verifiable log (tlog_tiles is off)")
    return tree


class BrokerTlog:
    """A single node's partitions (``checkpointer`` None: no signing key)."""

    def __init__(self, broker: Broker, checkpointer: Checkpointer | None) -> None:
        self._broker = broker
        self._checkpointer = checkpointer

    def partition(self, topic: str, partition: int) -> TlogPartition:
        """See ``TlogSource.partition``."""
        tree = _kept(self._broker.tree(topic, partition))
        store = None if self._checkpointer is None else self._checkpointer.store(topic, partition)
        return TlogPartition(topic, partition, tree, store)


class ClusterTlog:
    """This cluster node's replicas; ``checkpoints(tree)`` is where a tree's checkpoints
    are kept (None: no signing key)."""

    def __init__(
        self,
        topics: ClusterTopics,
        checkpoints: Callable[[LogTree], CheckpointStore] | None,
    ) -> None:
        self._topics = topics
        self._checkpoints = checkpoints

    def partition(self, topic: str, partition: int) -> TlogPartition:
        """See ``TlogSource.partition``."""
        backend = self._topics.partition(topic, partition)
        if isinstance(backend, RemotePartition):
            raise backend.refusal()
        assert isinstance(backend, RaftBackend)
        tree = _kept(backend.store.tree)
        store = None if self._checkpoints is None else self._checkpoints(tree)
        return TlogPartition(topic, partition, tree, store, backend)


def checkpoint_store(tree: LogTree, keep: int) -> CheckpointStore:
    """Where the checkpoints of ``tree`` are kept (``<tlog dir>/checkpoints``)."""
    return CheckpointStore(Path(tree.directory) / CHECKPOINTS_DIR, keep)
