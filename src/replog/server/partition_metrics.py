"""Per-topic, per-partition and per-consumer-group metrics, computed at scrape time.

``PartitionCollector`` is a prometheus_client custom collector: nothing is updated on the
append path but the plain integers of ``api.traffic.PartitionTraffic`` (once per batch), and
each scrape reads the live state. Names and labels follow kafka_exporter's where it has a
counterpart, so its dashboards and alerts work unchanged:

- exported by the node that leads the partition (each series exists once in a cluster):
  ``kafka_topic_partition_current_offset``, ``_oldest_offset``, ``_leader``,
  ``_leader_is_preferred``, ``_replicas``, ``_in_sync_replica``,
  ``_under_replicated_partition`` {topic, partition}; ``replog_raft_follower_lag_entries``
  {topic, partition, follower};
- by the controller's leader (a single node: itself): ``kafka_brokers``,
  ``kafka_topic_partitions`` {topic};
- by each group's coordinator: ``kafka_consumergroup_current_offset``, ``_lag``
  {consumergroup, topic, partition}, ``_lag_sum`` {consumergroup, topic}, ``_members``
  {consumergroup};
- by every replica: ``replog_partition_records_in_total``, ``_bytes_in_total``,
  ``_records_out_total``, ``_bytes_out_total``, ``_leader_changes_total`` {topic, partition}.

``kafka_topic_partition_leader``'s value is the leader's Kafka broker id, the one the Kafka
listener's Metadata names (``cluster.members.kafka_broker_id``: ``--node-id 3`` is broker 3;
a single node is broker 1), and its ``leader`` label the node's name. At most
``MAX_GROUP_SERIES`` consumer-group partitions are exported
per scrape (docs/operations.md: cardinality).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from replog.api.traffic import ReplicaStats
from replog.broker.model import TopicDescription
from replog.cluster.cluster_node import ClusterNode
from replog.cluster.members import kafka_broker_id
from replog.cluster.replica_stats import replica_stats
from replog.errors import ReplogError
from replog.server.broker_backend import BrokerBackend
from replog.server.group_service import GroupService
from replog.server.topics import TopicsBackend

__all__ = [
    "MAX_GROUP_SERIES",
    "PartitionCollector",
    "PartitionSources",
    "exposition",
    "partition_sources",
]

MAX_GROUP_SERIES = 10_000
"""Consumer-group partitions exported per scrape at most (the rest are left out and
counted in ``replog_metrics_series_left_out``)."""

_TP = ["topic", "partition"]
_GTP = ["consumergroup", "topic", "partition"]


@dataclass(slots=True)
class PartitionSources:
    """Where a scrape reads the live state from (a single node or a cluster member)."""

    topics: TopicsBackend
    leads: Callable[[str], bool]
    """Whether the node of this name (a partition's leader) is this node."""
    controller: Callable[[], bool]
    """Whether this node reports the cluster-wide facts (brokers, topics' partitions)."""
    brokers: Callable[[], int]
    replicas: Callable[[], list[ReplicaStats]]
    groups: Callable[[], GroupService | None]
    broker_id: Callable[[str], int] = lambda name: 1
    """The Kafka broker id of the node of this name (as the Kafka listener's Metadata
    names it: a single node is broker 1)."""


class PartitionCollector(Collector):
    """Yields the metrics of the module docstring from ``sources`` at each scrape."""

    def __init__(self, sources: PartitionSources) -> None:
        """Read the state through ``sources``."""
        self.sources = sources

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not run a scrape (the state may not exist yet)."""
        return ()

    def collect(self) -> Iterable[Metric]:
        """Every family, from the state as it is now."""
        s = self.sources
        topics = s.topics.list_topics()
        yield from self._cluster(topics)
        yield from _partitions(topics, s.leads, s.broker_id)
        yield from _traffic(s.replicas())
        groups = s.groups()
        if groups is not None:
            yield from _consumer_groups(groups, s.topics)

    def render(self) -> bytes:
        """``collect()`` in the text exposition format (0.0.4), written here rather than by
        ``generate_latest``, which validates and escapes each label of each sample (at a
        thousand partitions it took four times as long as collecting them)."""
        return exposition(self.collect())

    def _cluster(self, topics: list[TopicDescription]) -> Iterator[Metric]:
        if not self.sources.controller():
            return
        yield GaugeMetricFamily(
            "kafka_brokers", "Number of brokers (nodes) in the cluster.", self.sources.brokers()
        )
        counts = GaugeMetricFamily(
            "kafka_topic_partitions", "Number of partitions for this topic.", labels=["topic"]
        )
        for t in topics:
            counts.add_metric([t.name], len(t.partitions))
        yield counts


def _partitions(
    topics: list[TopicDescription], leads: Callable[[str], bool], broker_id: Callable[[str], int]
) -> Iterator[Metric]:
    """The kafka_topic_partition_* gauges of the partitions this node leads."""
    g = GaugeMetricFamily
    current = g(
        "kafka_topic_partition_current_offset",
        "Current offset (high watermark) of a topic/partition.",
        labels=_TP,
    )
    oldest = g(
        "kafka_topic_partition_oldest_offset",
        "Oldest readable offset of a topic/partition.",
        labels=_TP,
    )
    leader = g(
        "kafka_topic_partition_leader",
        "Leader of a topic/partition: its position in the replica list from 1 (name in "
        "the leader label).",
        labels=[*_TP, "leader"],
    )
    preferred = g(
        "kafka_topic_partition_leader_is_preferred",
        "1 if the topic/partition is led by its preferred leader.",
        labels=_TP,
    )
    replicas = g(
        "kafka_topic_partition_replicas", "Number of replicas of a topic/partition.", labels=_TP
    )
    in_sync = g(
        "kafka_topic_partition_in_sync_replica",
        "Number of in-sync replicas of a topic/partition.",
        labels=_TP,
    )
    under = g(
        "kafka_topic_partition_under_replicated_partition",
        "1 if the topic/partition is under-replicated.",
        labels=_TP,
    )
    for t in topics:
        for p in t.partitions:
            if not p.leader or not leads(p.leader):
                continue
            labels = [t.name, str(p.partition)]
            current.add_metric(labels, p.next_offset)
            oldest.add_metric(labels, p.lowest_offset)
            leader.add_metric([*labels, p.leader], broker_id(p.leader))
            preferred.add_metric(labels, 1 if p.replicas and p.replicas[0] == p.leader else 0)
            replicas.add_metric(labels, len(p.replicas))
            in_sync.add_metric(labels, len(p.in_sync))
            under.add_metric(labels, 1 if len(p.in_sync) < len(p.replicas) else 0)
    yield from (current, oldest, leader, preferred, replicas, in_sync, under)


def _traffic(stats: list[ReplicaStats]) -> Iterator[Metric]:
    """Every replica's counters, and the followers' lag of the partitions led here."""
    c = CounterMetricFamily
    records_in = c(
        "replog_partition_records_in",
        "Records produced to the partition and acknowledged by this node as its leader.",
        labels=_TP,
    )
    bytes_in = c(
        "replog_partition_bytes_in",
        "Value bytes produced to the partition and acknowledged by this node as its leader.",
        labels=_TP,
    )
    records_out = c(
        "replog_partition_records_out",
        "Records this node's replica returned to readers.",
        labels=_TP,
    )
    bytes_out = c(
        "replog_partition_bytes_out",
        "Serialized record bytes this node's replica returned to readers.",
        labels=_TP,
    )
    changes = c(
        "replog_partition_leader_changes",
        "Times this node saw the partition's leader become another node.",
        labels=_TP,
    )
    lag = GaugeMetricFamily(
        "replog_raft_follower_lag_entries",
        "Entries a follower's replica is behind the leader's log (on the leader).",
        labels=[*_TP, "follower"],
    )
    for r in stats:
        labels = [r.topic, str(r.partition)]
        t = r.traffic
        records_in.add_metric(labels, t.records_in)
        bytes_in.add_metric(labels, t.bytes_in)
        records_out.add_metric(labels, t.records_out)
        bytes_out.add_metric(labels, t.bytes_out)
        changes.add_metric(labels, r.leader_changes)
        for follower, entries in r.follower_lag:
            lag.add_metric([*labels, follower], entries)
    yield from (records_in, bytes_in, records_out, bytes_out, changes, lag)


def _consumer_groups(groups: GroupService, topics: TopicsBackend) -> Iterator[Metric]:
    """The groups this node coordinates: committed offsets, lag and members."""
    g = GaugeMetricFamily
    current = g(
        "kafka_consumergroup_current_offset",
        "Committed offset of a consumer group at a topic/partition.",
        labels=_GTP,
    )
    lag = g(
        "kafka_consumergroup_lag",
        "Lag of a consumer group at a topic/partition: high watermark minus committed offset.",
        labels=_GTP,
    )
    lag_sum = g(
        "kafka_consumergroup_lag_sum",
        "Lag of a consumer group summed over a topic's partitions.",
        labels=["consumergroup", "topic"],
    )
    members = g(
        "kafka_consumergroup_members", "Members of a consumer group.", labels=["consumergroup"]
    )
    ends: dict[tuple[str, int], int | None] = {}
    series = left_out = 0
    for shard in groups.led_shards():
        if not shard.active:
            continue  # its state is read once a request makes this node take it over
        names = (
            set(shard.state.offsets) | set(shard.groups) | set(groups.classic.live_groups(shard))
        )
        for name in sorted(names):
            classic = groups.classic.view(name, shard)
            kip848 = shard.groups.get(name)
            count = len(classic.members) if classic else len(kip848.members) if kip848 else 0
            members.add_metric([name], count)
            sums: dict[str, int] = {}
            for (topic, partition), (offset, _) in sorted(
                shard.state.offsets.get(name, {}).items()
            ):
                if series >= MAX_GROUP_SERIES:
                    left_out += 1
                    continue
                series += 1
                labels = [name, topic, str(partition)]
                current.add_metric(labels, offset)
                end = _end(topics, topic, partition, ends)
                if end is not None:
                    behind = max(0, end - offset)
                    lag.add_metric(labels, behind)
                    sums[topic] = sums.get(topic, 0) + behind
            for topic, total in sums.items():
                lag_sum.add_metric([name, topic], total)
    yield from (current, lag, lag_sum, members)
    yield g(
        "replog_metrics_series_left_out",
        f"Consumer-group partitions not exported by this scrape (over {MAX_GROUP_SERIES}).",
        left_out,
    )


def _end(
    topics: TopicsBackend, topic: str, partition: int, ends: dict[tuple[str, int], int | None]
) -> int | None:
    """The partition's high watermark as this node knows it (None: no replica here)."""
    key = (topic, partition)
    if key not in ends:
        try:
            ends[key] = topics.partition(topic, partition).high_watermark
        except ReplogError:
            ends[key] = None
    return ends[key]


def partition_sources(
    topics: TopicsBackend,
    cluster: ClusterNode | None,
    broker: BrokerBackend | None,
    groups: Callable[[], GroupService | None],
) -> PartitionSources:
    """The sources of a cluster member (``cluster``) or of a single node (``broker``)."""
    if cluster is not None:
        me = cluster.name
        return PartitionSources(
            topics,
            leads=lambda name: name == me,
            controller=lambda: cluster.node.is_leader,
            brokers=lambda: len(cluster.members()),
            replicas=lambda: replica_stats(cluster),
            groups=groups,
            broker_id=kafka_broker_id,
        )
    assert broker is not None
    return PartitionSources(
        topics,
        leads=lambda name: True,  # a single node leads every partition
        controller=lambda: True,
        brokers=lambda: 1,
        replicas=broker.replica_stats,
        groups=groups,
    )


def exposition(families: Iterable[Metric]) -> bytes:
    """The text exposition format of ``families`` (label names are this module's own;
    label values are escaped)."""
    out: list[str] = []
    for family in families:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        out.append(f"# HELP {name} {_escape_help(family.documentation)}\n")
        out.append(f"# TYPE {name} {family.type}\n")
        for sample in family.samples:
            labels = sample.labels
            if labels:
                inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                out.append(f"{sample.name}{{{inner}}} {float(sample.value)!r}\n")
            else:
                out.append(f"{sample.name} {float(sample.value)!r}\n")
    return "".join(out).encode()


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
