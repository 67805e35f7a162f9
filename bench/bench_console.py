"""Benchmark the HTTP requests the web console makes on a topic of many partitions: one
describe (``GET /v1/topics/{name}``, what the topic page polls), the topic list as the
console asks for it (``?view=summary``) and in full, and a partition's page of records.

    PYTHONPATH=src python bench/bench_console.py     # 1,000 partitions, 200 of each request
    PYTHONPATH=src python bench/bench_console.py --partitions 200 --requests 10 --no-write

One single-node ``replog serve`` subprocess (sync=always) on a temporary directory; one
record in every partition (so each has a size and offsets); the requests are sent one after
another over one keep-alive HTTP connection, as a browser does. Latency is wall-clock from
sending the request to reading the whole answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cluster_partitions import Cluster
from bench_server import start_server
from bench_storage import machine, write_section

from replog import Client
from replog.errors import InvalidArgumentError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _timed(conn: http.client.HTTPConnection, path: str, count: int) -> dict[str, float]:
    times, size = [], 0
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status == 200, body[:200]
        size = len(body)
    times.sort()
    return {
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
        "max_ms": times[-1],
        "kib": size / 1024,
    }


def run(partitions: int, requests: int, cluster: bool = False) -> dict[str, dict[str, float]]:
    """Start a server (or, with ``cluster``, three nodes and a topic of replication factor
    3, asking a follower of the controller), create and fill the topic, time each request,
    stop."""
    workdir = Path(tempfile.mkdtemp(prefix="replog-bench-console-", dir="/tmp"))
    if cluster:
        nodes = Cluster(workdir).start()
        try:
            return _measure(",".join(n.addr for n in nodes.alive()), _follower_http(nodes),
                            partitions, requests, replication=3)  # fmt: skip
        finally:
            nodes.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    proc, addr, http_addr = start_server(workdir / "data")
    try:
        return _measure(addr, http_addr, partitions, requests, replication=1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def _follower_http(nodes: Cluster) -> str:
    """The HTTP address of a node that does not lead the controller group."""
    leader = nodes.controller_leader()
    other = next(n for n in nodes.alive() if n is not leader)
    ready = json.loads((nodes.root / f"{other.name}.ready").read_text())
    return str(ready["http_addr"])


def _measure(
    addr: str, http_addr: str, partitions: int, requests: int, *, replication: int
) -> dict[str, dict[str, float]]:
    """Create and fill the topic through ``addr``, then time each request at ``http_addr``."""
    with Client(addr) as client:
        started = time.monotonic()
        while True:
            try:
                client.create_topic(
                    "wide", partitions=partitions, replication_factor=replication, timeout=600
                )
                break
            except InvalidArgumentError as exc:  # a node joined a moment ago: not registered
                if "larger than" not in str(exc) or time.monotonic() - started > 30:
                    raise
                time.sleep(0.2)
        deadline = time.monotonic() + 300
        while not all(p.leader for p in client.describe_topic("wide").partitions):
            if time.monotonic() > deadline:
                raise RuntimeError("the topic's partitions never all got a leader")
            time.sleep(0.5)
        for p in range(partitions):
            client.produce(json.dumps({"partition": p}).encode(), topic="wide", partition=p)
    host, port = http_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    paths = {
        "describe the topic": "/v1/topics/wide",
        "list topics, summary (the console's)": "/v1/topics?view=summary",
        "list topics, full": "/v1/topics",
        "50 records of a partition": "/v1/topics/wide/partitions/7/records?max_records=50",
    }
    for path in paths.values():
        _timed(conn, path, 3)  # warm up
    results = {name: _timed(conn, path, requests) for name, path in paths.items()}
    conn.close()
    results["load"] = {"avg1": os.getloadavg()[0]}
    return results


def section(
    partitions: int,
    requests: int,
    results: dict[str, dict[str, float]],
    info: dict[str, str],
    *,
    cluster: bool = False,
) -> str:
    """The markdown section of the figures."""
    load = results.pop("load")["avg1"]
    name = "console-cluster" if cluster else "console"
    what = (
        "three `replog serve` processes (`sync=always`), the requests sent to a node that does "
        "not lead the controller group; a topic of replication factor 3 of"
        if cluster
        else "one `replog serve` subprocess (`sync=always`), a topic of"
    )
    lines = [
        f"<!-- {name}:begin -->",
        "## The web console's requests on a topic of many partitions"
        + (", on a 3-node cluster" if cluster else ""),
        "",
        f"Command: `PYTHONPATH=src python bench/bench_console.py --partitions {partitions} "
        f"--requests {requests}{' --cluster' if cluster else ''}`: {what} "
        f"{partitions:,} partitions with one record each, then {requests} of each request "
        "one after another over one keep-alive HTTP connection. The issue's target: no request "
        "over 100 ms on a 1,000-partition cluster; the topics page asks only for summaries, "
        "and describes one topic when it is opened.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        f"| load average (1 min) at the end | {load:.1f} (other work on the machine shows in "
        "the tails) |",
        "",
        "| request | p50 | p99 | max | answer |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {name} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms "
            f"| {r['kib']:,.1f} KiB |"
            for name, r in results.items()
        ],
        f"<!-- {name}:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    """Measure and print the section; write it to docs/benchmarks.md unless --no-write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="three nodes, replication factor 3 (a follower asked)",
    )
    args = parser.parse_args()
    results = run(args.partitions, args.requests, args.cluster)
    info = machine(tempfile.gettempdir())
    text = section(args.partitions, args.requests, results, info, cluster=args.cluster)
    print(text)
    if not args.no_write:
        write_section(DOCS, text, "console-cluster" if args.cluster else "console")


if __name__ == "__main__":
    main()
