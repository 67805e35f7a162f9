"""What a cluster node reports of each replica it holds, for the metrics read at scrape
time: traffic, leader changes and, on the leader, each follower's lag in entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from replog.api.traffic import ReplicaStats
from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.backend import RaftBackend
from replog.cluster.members import AddressBook
from replog.cluster.partitions import group_id

if TYPE_CHECKING:
    from replog.cluster.cluster_node import ClusterNode

__all__ = ["replica_stats"]


def replica_stats(cluster: ClusterNode) -> list[ReplicaStats]:
    """Every replica this node holds: the controller group (topic ``default``) and each
    partition group it runs."""
    changes = cluster.groups.events.leader_changes
    book = cluster.book
    out = [_stats(DEFAULT_TOPIC, 0, cluster.backend, changes.get("", 0), book)]
    for ref, hosted in list(cluster.topics_host.partitions.hosted.items()):
        count = changes.get(group_id(ref), 0)
        out.append(_stats(ref.topic, ref.partition, hosted.backend, count, book))
    return out


def _stats(
    topic: str, partition: int, backend: RaftBackend, changes: int, book: AddressBook
) -> ReplicaStats:
    node = backend.node
    lag: tuple[tuple[str, int], ...] = ()
    if node.is_leader:
        raft = node.raft
        last = raft.log.last_index()
        lag = tuple(
            (book.name(peer), max(0, last - progress.match))
            for peer, progress in sorted(raft.progress.items())
            if peer != node.id
        )
    return ReplicaStats(topic, partition, backend.traffic, changes, lag)
