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

from bench_server import start_server
from bench_storage import machine, write_section

from replog import Client

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


def run(partitions: int, requests: int) -> dict[str, dict[str, float]]:
    """Start a server, create and fill the topic, time each request, stop the server."""
    workdir = Path(tempfile.mkdtemp(prefix="replog-bench-console-", dir="/tmp"))
    proc, addr, http_addr = start_server(workdir / "data")
    try:
        with Client(addr) as client:
            client.create_topic("wide", partitions=partitions, timeout=600)
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
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def section(
    partitions: int, requests: int, results: dict[str, dict[str, float]], info: dict[str, str]
) -> str:
    """The markdown section of the figures."""
    load = results.pop("load")["avg1"]
    lines = [
        "<!-- console:begin -->",
        "## The web console's requests on a topic of many partitions",
        "",
        f"Command: `PYTHONPATH=src python bench/bench_console.py --partitions {partitions} "
        f"--requests {requests}`: one `replog serve` subprocess (`sync=always`), a topic of "
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
        "<!-- console:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    """Measure and print the section; write it to docs/benchmarks.md unless --no-write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = run(args.partitions, args.requests)
    text = section(args.partitions, args.requests, results, machine(tempfile.gettempdir()))
    print(text)
    if not args.no_write:
        write_section(DOCS, text, "console")


if __name__ == "__main__":
    main()
