"""/metrics of a real single node: kafka_exporter's per-partition and per-group series
(offsets, leader, replicas, lag) and replog's own per-partition traffic, exact after a
produce to a 3-partition topic, a read and a group's commit."""

from __future__ import annotations

from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

from replog.client import Client
from tests.integration.conftest import ThreadedServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: ThreadedServer) -> Samples:
    """Every sample of the server's /metrics: (name, sorted labels) -> value."""
    with urlopen(f"http://{server.http_address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def of(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_metrics_give_each_partitions_offsets_traffic_and_each_groups_lag(
    server: ThreadedServer,
) -> None:
    with Client(server.grpc_address) as client:
        client.create_topic("orders", partitions=3)
        client.produce_batch([b"abcd"] * 5, topic="orders", partition=0)
        client.produce_batch([b"xy", b"z"], topic="orders", partition=1)
        read = client.consume_batch(0, topic="orders", partition=0)
        assert len(read.records) == 5
        client.commit_offsets("billing", {("orders", 0): 3, ("orders", 1): 2})
    s = scrape(server)
    for p, (end, records, nbytes) in enumerate([(5, 5, 20), (2, 2, 3), (0, 0, 0)]):
        tp = {"topic": "orders", "partition": str(p)}
        assert of(s, "kafka_topic_partition_current_offset", **tp) == end
        assert of(s, "kafka_topic_partition_oldest_offset", **tp) == 0
        assert of(s, "kafka_topic_partition_replicas", **tp) == 1
        assert of(s, "kafka_topic_partition_in_sync_replica", **tp) == 1
        assert of(s, "kafka_topic_partition_under_replicated_partition", **tp) == 0
        assert of(s, "kafka_topic_partition_leader_is_preferred", **tp) == 1
        assert of(s, "replog_partition_records_in_total", **tp) == records
        assert of(s, "replog_partition_bytes_in_total", **tp) == nbytes
    (leader,) = [
        v
        for labels, v in series(s, "kafka_topic_partition_leader").items()
        if ("partition", "0") in labels and ("topic", "orders") in labels
    ]
    assert leader == 1  # the first (preferred) replica: the broker id of the Kafka listener
    assert of(s, "kafka_topic_partitions", topic="orders") == 3
    assert of(s, "kafka_brokers") == 1
    out = {"topic": "orders", "partition": "0"}
    assert of(s, "replog_partition_records_out_total", **out) == 5
    assert of(s, "replog_partition_bytes_out_total", **out) > 5 * 4  # serialized records
    assert of(s, "replog_partition_records_out_total", topic="orders", partition="1") == 0
    group = {"consumergroup": "billing", "topic": "orders"}
    assert of(s, "kafka_consumergroup_current_offset", **group, partition="0") == 3
    assert of(s, "kafka_consumergroup_current_offset", **group, partition="1") == 2
    assert of(s, "kafka_consumergroup_lag", **group, partition="0") == 2
    assert of(s, "kafka_consumergroup_lag", **group, partition="1") == 0
    assert of(s, "kafka_consumergroup_lag_sum", **group) == 2
    assert of(s, "kafka_consumergroup_members", consumergroup="billing") == 0
    assert ("partition", "2") not in {
        label for labels in series(s, "kafka_consumergroup_lag") for label in labels
    }  # never committed: no series
    assert of(s, "replog_metrics_series_left_out") == 0
