"""How long a /metrics scrape takes on a single node with one many-partition topic.

Starts ``replog serve`` (a subprocess on 127.0.0.1 ephemeral ports), creates a topic of
``--partitions`` partitions, produces one record to each, commits a group's offset of each
(so every per-partition and per-group series exists), then times ``--scrapes`` scrapes of
/metrics and prints the median, p90 and max in ms, the body size and the series count.

    .venv/bin/python bench/bench_metrics.py --partitions 1000 --scrapes 20
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
from pathlib import Path
from urllib.request import urlopen

from replog.client import Client


def _serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ready = data_dir.parent / "ready.json"
    cmd = [
        sys.executable, "-c", "from replog.cli.app import main; main()", "serve",
        "--data-dir", str(data_dir), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
        "--ready-file", str(ready), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    info: dict[str, str] = json.loads(ready.read_text())
    return proc, info


def main() -> None:
    """Run the measurement and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replog-bench-metrics-") as tmp:
        proc, info = _serve(Path(tmp) / "data")
        try:
            with Client(info["grpc_addr"]) as client:
                client.create_topic("orders", partitions=args.partitions)
                for p in range(args.partitions):
                    client.produce_batch([b"x" * 100], topic="orders", partition=p)
                client.commit_offsets("g", {("orders", p): 0 for p in range(args.partitions)})
            url = f"http://{info['http_addr']}/metrics"
            times, body = [], b""
            for _ in range(args.scrapes):
                started = time.perf_counter()
                with urlopen(url, timeout=30) as response:
                    body = response.read()
                times.append((time.perf_counter() - started) * 1000)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(60)
    times.sort()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(
        f"{args.partitions} partitions: /metrics median {statistics.median(times):.1f} ms, "
        f"p90 {times[int(len(times) * 0.9) - 1]:.1f} ms, max {times[-1]:.1f} ms; "
        f"{len(body) / 1024:.0f} KiB, {series} samples"
    )


if __name__ == "__main__":
    main()
