"""Signed checkpoints of a cluster node's replicas, published on a timer (issue 15).

Every replica signs its own: leaf ``i`` is the payload stored at offset ``i``, byte-identical
on every replica for every committed offset (``cluster/log_store.py``), and Ed25519 signatures
are deterministic, so replicas signing one size with the cluster's one key produce the one
same note. Each round (every ``checkpoint_interval_ms``) takes the groups this node runs at
that moment, the controller group (topic ``default``'s partition 0) and every hosted partition
(so groups are covered as they come and go), and signs those that grew. The size signed is
``min(commit index + 1, durable offset after an fsync, tree size)``: only committed records
(which no later leader replaces) that this replica's own disk holds (a crash cannot take them
back). Offset 0 of a cluster's Raft log is the empty leaf, so the tree of the first ``n``
offsets has size ``n`` and the commit index ``c`` gives the size ``c + 1``.

The origin is ``<cluster id>/<topic>/<partition>``: the cluster id (the ``cluster_id`` file, drawn
when the cluster was bootstrapped, learned by each joiner) is the one name every node of a
cluster shares and keeps across restarts. A node that does not know it yet (a joiner before
its first answer) or a cluster created before ids existed signs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.cluster_node import ClusterNode
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.raft_node import RaftNode
from replog.errors import ReplogError
from replog.server.checkpointer import Periodic
from replog.server.tlog_source import checkpoint_store
from replog.tlog.checkpoints import CheckpointStore, publish_checkpoint
from replog.tlog.log_tree import LogTree
from replog.tlog.note import Signer

__all__ = ["ClusterCheckpointer"]

log = logging.getLogger("replog.server")


@dataclass(frozen=True, slots=True)
class _Group:
    topic: str
    partition: int
    node: RaftNode
    store: ReplogLogStore


class ClusterCheckpointer(Periodic):
    """Publishes the checkpoints of every group ``cluster`` runs."""

    def __init__(
        self, cluster: ClusterNode, signer: Signer, *, interval_ms: int, keep: int
    ) -> None:
        super().__init__(interval_ms)
        self._cluster = cluster
        self._signer = signer
        self._keep = keep
        self._latest: dict[ReplogLogStore, int] = {}  # the largest size signed per replica
        self._warned = False

    @property
    def cluster_name(self) -> str | None:
        """The first part of every origin: the cluster id (None while it is not known)."""
        return self._cluster.inbox.cluster_id or None

    def store(self, tree: LogTree) -> CheckpointStore:
        """Where the checkpoints of a replica's tree are kept."""
        return checkpoint_store(tree, self._keep)

    def groups(self) -> list[_Group]:
        """The groups this node runs now (read on the event loop, which changes them)."""
        cluster = self._cluster
        hosted = cluster.topics_host.partitions.hosted
        return [
            _Group(DEFAULT_TOPIC, 0, cluster.node, cluster.store),
            *(_Group(r.topic, r.partition, h.node, h.store) for r, h in list(hosted.items())),
        ]

    async def publish_round(self) -> None:
        """One round of ``Periodic``: every group's checkpoint, in a worker thread."""
        groups = self.groups()
        await asyncio.to_thread(self.publish, groups)

    def publish(self, groups: list[_Group]) -> int:
        """Sign a checkpoint for each of ``groups`` whose committed, durable size grew; how
        many were."""
        name = self.cluster_name
        if name is None:
            if self._cluster.inbox.cluster_id == "" and not self._warned:
                self._warned = True
                log.warning(
                    "this cluster has no cluster id (created by an older replog): "
                    "no checkpoints are signed"
                )
            return 0
        published, seen = 0, set[ReplogLogStore]()
        for group in groups:
            try:
                published += self._publish(group, f"{name}/{group.topic}/{group.partition}", seen)
            except (ReplogError, OSError) as exc:
                log.warning("no checkpoint for %s/%d: %s", group.topic, group.partition, exc)
        for gone in set(self._latest) - seen:  # groups dropped since
            del self._latest[gone]
        return published

    def _publish(self, group: _Group, origin: str, seen: set[ReplogLogStore]) -> int:
        tree = group.store.tree  # read each round: installing a snapshot replaces it
        if tree is None or tree.unavailable is not None:
            return 0
        seen.add(group.store)
        store = self.store(tree)
        latest = self._latest.get(group.store)
        if latest is None:
            latest = self._latest[group.store] = store.latest_size() or 0
        committed = group.node.high_watermark  # commit index + 1: the committed tree's size
        if committed <= latest:
            return 0
        log_ = group.store.log
        log_.sync()
        size = min(committed, log_.durable_offset, tree.size)
        done = publish_checkpoint(tree, store, size, origin, self._signer)
        if done is None:
            return 0
        self._latest[group.store] = size
        return 1
