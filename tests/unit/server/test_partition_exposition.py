"""The per-partition families' own text writer says what prometheus_client's would: the
same samples, names, types and escaped label values (differential)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from replog.server.partition_metrics import exposition


def _families() -> list[Metric]:
    gauge = GaugeMetricFamily("kafka_consumergroup_lag", 'Lag "with" \\ quotes\nand a newline.',
                              labels=["consumergroup", "topic", "partition"])  # fmt: skip
    gauge.add_metric(['odd "group" \\ name\nx', "orders", "0"], 7)
    gauge.add_metric(["plain", "orders", "1"], 0)
    counter = CounterMetricFamily("replog_partition_records_in", "Records.", labels=["topic"])
    counter.add_metric(["orders"], 12345678901)
    return [gauge, counter, GaugeMetricFamily("kafka_brokers", "Brokers.", 3)]


class _Fixed(Collector):
    def collect(self) -> Iterable[Metric]:
        return _families()


def _parsed(text: str) -> list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]:
    return [
        (f.name, f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text)
    ]


def test_the_fast_writer_parses_as_prometheus_clients_own() -> None:
    registry = CollectorRegistry()
    registry.register(_Fixed())
    expected = _parsed(generate_latest(registry).decode())
    assert _parsed(exposition(_families()).decode()) == expected
    assert len(expected) == 3 and expected[0][3][0][1]["consumergroup"] == 'odd "group" \\ name\nx'
