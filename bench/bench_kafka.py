"""Kafka edge benchmark: confluent-kafka producer and consumer throughput, one-at-a-time
produce latency over the Kafka port, and replog's own gRPC ``Producer`` as the reference.

Each run starts a fresh ``replog serve --sync always --kafka-addr 127.0.0.1:0`` subprocess
on a temporary directory and measures, for 100 B values:

- confluent-kafka ``Producer`` (acks=all, linger.ms=5) sending ``--records`` records to a
  topic of 6 partitions and to one of 1 partition;
- confluent-kafka ``Consumer`` reading them all back (the 6-partition topic);
- p50/p99 of ``--latency-records`` produces one at a time (acks=all, linger.ms=0, a flush
  after each);
- the gRPC ``Producer`` (linger 5 ms) sending the same number of records to another
  6-partition topic.

It prints each run and a table of medians [min..max]; ``--write`` puts that table in
docs/benchmarks.md (section ``kafka``). Usage:

    .venv/bin/python bench/bench_kafka.py [--records 1000000] [--runs 3] [--write] [--cluster]

``--cluster`` adds, in each run, 3 nodes (replication factor 3) with a topic of 6
partitions: the confluent-kafka producer (bootstrapped on every node, so it produces to
each partition's leader) against the gRPC ``Producer`` (which routes to the leaders too),
then the confluent consumer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from replog import Client
from replog import Producer as GrpcProducer

VALUE = b"x" * 100
TOPIC6 = "bench6"
TOPIC1 = "bench1"
TOPIC_GRPC = "grpc6"


def start_server(data: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """A ``replog serve`` on free ports with its Kafka listener; its process and addresses."""
    ready = data.parent / "ready.json"
    cmd = [
        sys.executable, "-c", "from replog.cli.app import main; main()", "serve",
        "--data-dir", str(data), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
        "--kafka-addr", "127.0.0.1:0", "--sync", "always", "--ready-file", str(ready),
        "--log-level", "warning", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("server did not start")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())  # written whole (renamed into place)


def _producer(kafka: str, **config: object) -> Producer:
    return Producer(
        {
            "bootstrap.servers": kafka,
            "acks": "all",
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            **config,
        }
    )


def kafka_produce(kafka: str, topic: str, n: int) -> float:
    """confluent-kafka throughput, records/s, every delivery report checked."""
    producer = _producer(kafka)
    failed = [0]

    def report(err: object, _msg: object) -> None:
        if err is not None:
            failed[0] += 1

    producer.produce(topic, VALUE, on_delivery=report)  # metadata and connection first
    producer.flush(30)
    start = time.perf_counter()
    for _ in range(n - 1):
        while True:
            try:
                producer.produce(topic, VALUE, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120) != 0 or failed[0]:
        raise RuntimeError(f"confluent-kafka: {failed[0]} records failed")
    return (n - 1) / (time.perf_counter() - start)


def kafka_consume(kafka: str, topic: str, partitions: int, n: int) -> float:
    """confluent-kafka consumer throughput reading ``n`` records from the beginning."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": "bench",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 300
    try:
        while seen < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumed only {seen} of {n}")
            for message in consumer.consume(10_000, 1.0):
                if message.error() is not None:
                    raise KafkaException(message.error())
                seen += 1
        return seen / (time.perf_counter() - start)
    finally:
        consumer.close()


def kafka_latency(kafka: str, topic: str, n: int) -> tuple[float, float]:
    """p50 and p99 (ms) of one produce at a time: acks=all, linger 0, flushed each."""
    producer = _producer(kafka, **{"linger.ms": 0})
    for _ in range(50):
        producer.produce(topic, VALUE, partition=0)
        producer.flush(10)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        producer.produce(topic, VALUE, partition=0)
        if producer.flush(10) != 0:
            raise RuntimeError("a produce was not acknowledged")
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000


def grpc_produce(addr: str, topic: str, n: int) -> float:
    """replog's gRPC ``Producer`` (linger 5 ms) throughput for the same records."""
    with Client(addr) as client, GrpcProducer(client, linger_ms=5, topic=topic) as producer:
        producer.send(VALUE).result(30)
        start = time.perf_counter()
        last = None
        for _ in range(n - 1):
            last = producer.send(VALUE)
        producer.flush()
        assert last is not None and last.result() >= 0
        return (n - 1) / (time.perf_counter() - start)


def cluster_run(records: int) -> dict[str, float]:
    """The cluster figures of one run: 3 fresh nodes (sync=always, a Kafka listener each),
    a topic of 6 partitions with replication factor 3 per client, confluent-kafka then the
    gRPC ``Producer``, then the confluent consumer."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_cluster_partitions import Cluster

    with tempfile.TemporaryDirectory(prefix="replog-bench-kafka3-") as tmp:
        cluster = Cluster(Path(tmp), ("--kafka-addr", "127.0.0.1:0"))
        try:
            cluster.start(3)
            for name in (TOPIC6, TOPIC_GRPC):
                cluster.create_topic(name, 6)
            deadline = time.monotonic() + 60
            while not all(cluster.agreed_leaders(t) for t in (TOPIC6, TOPIC_GRPC)):
                if time.monotonic() > deadline:
                    raise RuntimeError("no leaders for the topics")
                time.sleep(0.2)
            ready = [json.loads((Path(tmp) / f"{n}.ready").read_text()) for n in cluster.nodes]
            kafka = ",".join(info["kafka_addr"] for info in ready)
            result = {"cluster_kafka_produce6_rps": kafka_produce(kafka, TOPIC6, records)}
            grpc = ready[0]["grpc_addr"]
            result["cluster_grpc_produce6_rps"] = grpc_produce(grpc, TOPIC_GRPC, records)
            result["cluster_kafka_consume6_rps"] = kafka_consume(kafka, TOPIC6, 6, records)
        finally:
            cluster.stop()
    return result


def one_run(records: int, latency_records: int, extra: tuple[str, ...]) -> dict[str, float]:
    """Every figure of one run, on a fresh server."""
    with tempfile.TemporaryDirectory(prefix="replog-bench-kafka-") as tmp:
        proc, info = start_server(Path(tmp) / "data", *extra)
        try:
            with Client(info["grpc_addr"]) as client:
                for name, count in ((TOPIC6, 6), (TOPIC1, 1), (TOPIC_GRPC, 6)):
                    client.create_topic(name, partitions=count)
            kafka = info["kafka_addr"]
            result = {"kafka_produce6_rps": kafka_produce(kafka, TOPIC6, records)}
            result["kafka_produce1_rps"] = kafka_produce(kafka, TOPIC1, records)
            result["kafka_consume6_rps"] = kafka_consume(kafka, TOPIC6, 6, records)
            p50, p99 = kafka_latency(kafka, TOPIC1, latency_records)
            result["kafka_p50_ms"], result["kafka_p99_ms"] = p50, p99
            result["grpc_produce6_rps"] = grpc_produce(info["grpc_addr"], TOPIC_GRPC, records)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(60)
    return result


# (key, what, unit, target, True when higher is better)
FIGURES: list[tuple[str, str, str, float | None, bool]] = [
    ("kafka_produce6_rps", "confluent-kafka producer, 6 partitions", "rec/s", 500_000, True),
    ("kafka_produce1_rps", "confluent-kafka producer, 1 partition", "rec/s", 500_000, True),
    ("kafka_consume6_rps", "confluent-kafka consumer, 6 partitions", "rec/s", 1_000_000, True),
    ("kafka_p50_ms", "one produce at a time (linger 0) p50", "ms", 0.5, False),
    ("kafka_p99_ms", "one produce at a time (linger 0) p99", "ms", None, False),
    ("grpc_produce6_rps", "gRPC `Producer` (reference), 6 partitions", "rec/s", None, True),
]
CLUSTER_FIGURES: list[tuple[str, str, str, float | None, bool]] = [
    ("cluster_kafka_produce6_rps", "3 nodes RF 3: confluent-kafka producer", "rec/s", None, True),
    ("cluster_grpc_produce6_rps", "3 nodes RF 3: gRPC `Producer` (reference)", "rec/s", None, True),
    ("cluster_kafka_consume6_rps", "3 nodes RF 3: confluent-kafka consumer", "rec/s", None, True),
]


def _figure(values: list[float], unit: str) -> str:
    fmt = ",.0f" if unit == "rec/s" else ".2f"
    median = statistics.median(values)
    return f"{median:{fmt}} [{min(values):{fmt}}..{max(values):{fmt}}] {unit}"


def render(runs: list[dict[str, float]], records: int, latency_records: int) -> str:
    """The kafka section of docs/benchmarks.md: medians [min..max] against the targets."""
    load = os.getloadavg()
    cluster = all("cluster_grpc_produce6_rps" in run for run in runs)
    lines = [
        "<!-- kafka:begin -->",
        "## Kafka edge: confluent-kafka against replog's own Producer",
        "",
        f"Command: `bench/bench_kafka.py --records {records:,} --latency-records "
        f"{latency_records:,} --runs {len(runs)}{' --cluster' if cluster else ''}`: one "
        "`replog serve --sync always --kafka-addr` subprocess"
        f"{' (then 3 such nodes, RF 3)' if cluster else ''}, 100 B values, clients on the "
        "same machine. Medians [min..max]; load average at the end "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
        "",
        "| what | figure | target | |",
        "|---|---:|---:|---|",
    ]
    figures = [f for f in FIGURES + CLUSTER_FIGURES if all(f[0] in run for run in runs)]
    for key, what, unit, fixed, higher in figures:
        values = [run[key] for run in runs]
        figure = _figure(values, unit)
        target = fixed
        if key == "cluster_kafka_produce6_rps":  # the target: the gRPC Producer's, same runs
            target = statistics.median(run["cluster_grpc_produce6_rps"] for run in runs)
        if target is None:
            lines.append(f"| {what} | {figure} | | |")
            continue
        median = statistics.median(values)
        ok = median >= target if higher else median <= target
        bound = f">= {target:,.0f}" if higher else f"<= {target}"
        lines.append(f"| {what} | {figure} | {bound} {unit} | {'met' if ok else '**missed**'} |")
    lines.append("<!-- kafka:end -->")
    return "\n".join(lines)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    """Run the benchmark ``--runs`` times and print every run and the medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--latency-records", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md's kafka")
    parser.add_argument("--out", type=Path, help="the markdown file --write rewrites")
    parser.add_argument("--serve-arg", action="append", default=[], help="passed to serve")
    parser.add_argument("--cluster", action="store_true", help="also 3 nodes, RF 3, 6 partitions")
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.runs):
        run = one_run(args.records, args.latency_records, tuple(args.serve_arg))
        if args.cluster:
            run |= cluster_run(args.records)
        out(json.dumps({k: round(v, 3) for k, v in run.items()}))
        runs.append(run)
    section = render(runs, args.records, args.latency_records)
    out(section)
    if args.write or args.out:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_storage import DOCS, write_section

        write_section(args.out or DOCS, section, "kafka")


if __name__ == "__main__":
    main()
