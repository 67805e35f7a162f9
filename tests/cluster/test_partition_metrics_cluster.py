"""/metrics of a 3-node cluster: each partition's kafka_exporter series come from its
leader only (once in the cluster), with the followers' lag by name; every replica counts
its own traffic."""

from __future__ import annotations

from replog.client import Client
from replog.cluster.members import kafka_broker_id
from tests.cluster.conftest import Cluster, wait_until
from tests.integration.test_partition_metrics import of, scrape, series


def test_each_partition_is_reported_by_its_leader_with_its_followers_lag_by_name(
    three: Cluster,
) -> None:
    names = {n.name for n in three.running()}
    with Client(",".join(n.grpc_address for n in three.running())) as client:
        client.create_topic("orders", 3, replication_factor=3)
        client.produce_batch([b"abcd"] * 4, topic="orders", partition=0)
        leader_name = client.describe_topic("orders").partitions[0].leader
    leader = next(n for n in three.running() if n.name == leader_name)
    tp = {"topic": "orders", "partition": "0"}

    def caught_up() -> bool:
        lag = series(scrape(leader), "replog_raft_follower_lag_entries")
        mine = {dict(k)["follower"]: v for k, v in lag.items() if dict(k).items() >= tp.items()}
        return set(mine) == names - {leader_name} and not any(mine.values())

    wait_until(caught_up, 10, "both followers of orders/0 to catch up")
    for node in three.running():
        s = scrape(node)
        exported = ("kafka_topic_partition_current_offset", tuple(sorted(tp.items()))) in s
        assert exported == (node is leader)
        assert of(s, "replog_partition_records_in_total", **tp) == (4 if node is leader else 0)
    s = scrape(leader)
    assert of(s, "kafka_topic_partition_replicas", **tp) == 3
    assert of(s, "kafka_topic_partition_in_sync_replica", **tp) == 3
    assert of(s, "kafka_topic_partition_under_replicated_partition", **tp) == 0
    assert of(s, "replog_partition_leader_changes_total", **tp) >= 1
    with Client(leader.grpc_address) as one:
        end = one.describe_topic("orders").partitions[0].next_offset
    assert of(s, "kafka_topic_partition_current_offset", **tp) == end
    assert sum(1 for n in three.running() if ("kafka_brokers", ()) in scrape(n)) == 1
    (value,) = [
        v
        for labels, v in series(s, "kafka_topic_partition_leader").items()
        if dict(labels).items() >= tp.items()
    ]
    assert dict(next(iter(series(s, "kafka_topic_partition_leader"))))["leader"] == leader_name
    assert value == kafka_broker_id(leader_name)  # the broker id Kafka's Metadata names
