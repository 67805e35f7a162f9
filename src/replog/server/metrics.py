"""Prometheus metrics of one server, in its own CollectorRegistry (several servers per process
are fine, e.g. in tests)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ServerMetrics:
    """Counters and histograms for appends, reads and requests, plus log gauges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_appended = Counter(
            "replog_records_appended", "Records appended to the log.", registry=r
        )
        self.bytes_appended = Counter(
            "replog_bytes_appended", "Value bytes appended to the log.", registry=r
        )
        self.records_read = Counter(
            "replog_records_read", "Records returned to consumers.", ["api"], registry=r
        )
        self.bytes_read = Counter(
            "replog_bytes_read",
            "Serialized record bytes returned to consumers.",
            ["api"],
            registry=r,
        )
        self.requests = Counter(
            "replog_requests",
            "Requests by API, method and status.",
            ["api", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "replog_request_seconds",
            "Request latency by API, method and status.",
            ["api", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.log_size = Gauge(
            "replog_log_size_bytes", "Bytes in the log's store files.", registry=r
        )
        self.segments = Gauge("replog_log_segments", "Segments in the log.", registry=r)
        self.raft_dropped = Counter(
            "replog_raft_messages_dropped",
            "Raft messages received and dropped unstepped: of another cluster, for another "
            "node, before this node knew its cluster, or of a group this node does not host.",
            ["reason"],
            registry=r,
        )
        self._renderers: list[Callable[[], bytes]] = []

    def add_exposition(self, render: Callable[[], bytes]) -> None:
        """Append what ``render()`` writes (text exposition format) to every scrape: the
        per-partition families, written faster than the registry would write them."""
        self._renderers.append(render)

    def bind_log(self, size_bytes: Callable[[], int], segments: Callable[[], int]) -> None:
        """Read the log gauges from these callables at scrape time."""
        self.log_size.set_function(lambda: float(size_bytes()))
        self.segments.set_function(lambda: float(segments()))

    def on_appended(self, records: int, value_bytes: int) -> None:
        """Count an append of ``records`` records."""
        self.records_appended.inc(records)
        self.bytes_appended.inc(value_bytes)

    def on_read(self, api: str, records: int, nbytes: int) -> None:
        """Count records returned to a consumer."""
        if records:
            self.records_read.labels(api).inc(records)
            self.bytes_read.labels(api).inc(nbytes)

    def on_raft_dropped(self, reason: str, count: int) -> None:
        """Count Raft messages dropped for ``reason`` (``cluster.inbox.DROP_REASONS``)."""
        self.raft_dropped.labels(reason).inc(count)

    def observe(self, api: str, method: str, status: str, seconds: float) -> None:
        """Count one finished request and its latency."""
        self.requests.labels(api, method, status).inc()
        self.latency.labels(api, method, status).observe(seconds)

    def render(self, *, per_partition: bool = True) -> bytes:
        """The text exposition format of every metric (without the per-partition and
        per-group families unless ``per_partition``: they name topics and groups)."""
        extra = b"".join(render() for render in self._renderers) if per_partition else b""
        return generate_latest(self.registry) + extra
