"""Benchmark the cost of many partitions on one node: create time, RSS, file descriptors and
idle CPU of a single-node ``replog serve`` holding a topic of ``--partitions`` partitions.

    make bench-partitions        # 1,000 partitions, 3 runs, results in docs/benchmarks.md
    python bench/bench_partitions.py --partitions 200 --runs 1 --no-write   # quick look

The server runs in a subprocess on a temporary directory (sync=always). Idle CPU is the
server's user+system CPU over ``--idle-seconds`` after the topic exists, as a percentage of
one core. (The issue's cluster targets — 3 nodes, RF 3 — need partition groups; this is the
single-node part.)
"""

from __future__ import annotations

import argparse
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
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(partitions: int, idle_s: float) -> dict[str, float]:
    """Start a server, create the topic, measure, stop the server."""
    workdir = Path(tempfile.mkdtemp(prefix="replog-bench-parts-", dir="/tmp"))
    proc, addr, _ = start_server(workdir / "data")
    try:
        base_rss = _rss_mib(proc.pid)
        with Client(addr) as client:
            start = time.perf_counter()
            client.create_topic("many", partitions=partitions, timeout=600)
            created_s = time.perf_counter() - start
        time.sleep(1)  # let the create's last writes settle before the idle window
        cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
        time.sleep(idle_s)
        idle = 100 * (_cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        return {
            "create_s": created_s,
            "rss_mib": _rss_mib(proc.pid),
            "rss_base_mib": base_rss,
            "fds": float(len(os.listdir(f"/proc/{proc.pid}/fd"))),
            "idle_cpu_pct": idle,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def _median(runs: list[dict[str, float]], key: str) -> str:
    values = [r[key] for r in runs]
    return f"{statistics.median(values):,.2f} [{min(values):,.2f}..{max(values):,.2f}]"


def section(
    partitions: int, runs: list[dict[str, float]], idle_s: float, info: dict[str, str]
) -> str:
    """The markdown section of the figures."""
    lines = [
        "<!-- partitions:begin -->",
        "## Many partitions on one node",
        "",
        f"Command: `make bench-partitions` (`bench/bench_partitions.py --partitions "
        f"{partitions} --runs {len(runs)}`): one `replog serve` subprocess, `sync=always`, one "
        f"topic of {partitions:,} partitions created over gRPC, then {idle_s:g} s idle. "
        "Medians of the runs, [min..max].",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        "| what | figure |",
        "|---|---:|",
        f"| create the topic | {_median(runs, 'create_s')} s |",
        f"| server RSS with the topic | {_median(runs, 'rss_mib')} MiB |",
        f"| server RSS before it | {_median(runs, 'rss_base_mib')} MiB |",
        f"| open file descriptors | {_median(runs, 'fds')} |",
        f"| idle CPU | {_median(runs, 'idle_cpu_pct')} % of one core |",
        "<!-- partitions:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    runs = [one_run(args.partitions, args.idle_seconds) for _ in range(args.runs)]
    text = section(args.partitions, runs, args.idle_seconds, machine(tempfile.gettempdir()))
    print(text)
    if not args.no_write:
        write_section(DOCS, text, "partitions")


if __name__ == "__main__":
    main()
