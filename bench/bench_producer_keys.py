"""A keyed Producer on a topic of several partitions: records per second.

Starts one ``replog serve`` (a temporary data directory, 127.0.0.1, ``--sync never`` so
the producer's batching, not the disk, is measured), creates a topic of ``--partitions``
partitions and sends ``--records`` records of ``--size`` bytes, each with its own key (so
consecutive records go to different partitions), then flushes. Prints the median of
``--runs`` runs. Run: ``python bench/bench_producer_keys.py`` (``PYTHONPATH`` chooses the
code measured).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replog.client import Client, Producer


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def one_run(records: int, size: int, partitions: int) -> float:
    """Records per second of one run against a fresh server."""
    data = tempfile.mkdtemp(prefix="replog-bench-keys-")
    grpc_port, http_port = _port(), _port()
    replog = Path(sys.executable).with_name("replog")
    args = [str(replog), "serve", "--data-dir", data, "--sync", "never"]
    args += ["--grpc-addr", f"127.0.0.1:{grpc_port}", "--http-addr", f"127.0.0.1:{http_port}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        addr = f"127.0.0.1:{grpc_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with Client(addr, timeout=1) as probe:
                    probe.servers()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with Client(addr) as client:
            client.create_topic("keys", partitions)
            value = b"x" * size
            with Producer(client, topic="keys") as producer:
                started = time.perf_counter()
                futures = [producer.send(value, b"key-%d" % i) for i in range(records)]
                producer.flush()
                took = time.perf_counter() - started
            failed = sum(f.exception() is not None for f in futures)
            if failed:
                raise SystemExit(f"{failed} records failed")
        return records / took
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    """Measure and print the median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    a = parser.parse_args()
    rates = [one_run(a.records, a.size, a.partitions) for _ in range(a.runs)]
    print(
        f"keyed producer, {a.partitions} partitions, {a.records} x {a.size} B: median "
        f"{statistics.median(rates):,.0f} rec/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
