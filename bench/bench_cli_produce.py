"""``seq 1 N | replog produce``: records per second, the command's CPU time and peak memory.

Starts one ``replog serve`` (a temporary data directory, 127.0.0.1, ``--sync never`` so the
command, not the disk, is measured), pipes ``seq 1 --records`` into ``replog produce`` and
waits for it; the time runs from the start of ``replog produce`` (Python start-up included)
to its exit. CPU time and peak RSS are those of the ``replog produce`` process alone (from
``wait4``). Checks that it exited 0 and that the log then holds the lines in order. Prints
the medians of ``--runs`` runs, each against a fresh server. Run:
``python bench/bench_cli_produce.py`` (``PYTHONPATH`` chooses the code measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from local_server import REPLOG, local_server  # bench/ is on sys.path (run as a script)

from replog.client import Client


def _check_log(addr: str, records: int, ordered: bool) -> None:
    """The log holds ``records`` records, from line 1 to the last when ``ordered`` (only
    those two are read back; tests/integration/test_produce_cli.py checks every line)."""
    with Client(addr) as client:
        end = client.consume_batch(0, max_records=1).high_watermark
        first = client.consume_batch(0, max_records=1).records[0].value
        last = client.consume_batch(end - 1, max_records=1).records[0].value
    if end != records or (ordered and (first, last) != (b"1", b"%d" % records)):
        raise SystemExit(f"log holds {end} records, first {first!r}, last {last!r}")


def one_run(records: int, ordered: bool) -> tuple[float, float, float]:
    """(records/s, CPU seconds, peak RSS MiB) of one ``replog produce`` on a fresh server."""
    replog = REPLOG
    with local_server("--sync", "never", prefix="replog-bench-cli-") as addr:
        seq = subprocess.Popen(["seq", "1", str(records)], stdout=subprocess.PIPE)
        started = time.perf_counter()
        produce = subprocess.Popen(
            [replog, "produce", "-s", addr], stdin=seq.stdout, stderr=subprocess.PIPE
        )
        assert seq.stdout is not None and produce.stderr is not None
        seq.stdout.close()
        summary = produce.stderr.read()
        _, status, usage = os.wait4(produce.pid, 0)
        took = time.perf_counter() - started
        produce.returncode = os.waitstatus_to_exitcode(status)
        produce.stderr.close()
        seq.wait()
        if produce.returncode != 0:
            raise SystemExit(f"replog produce exited {produce.returncode}: {summary!r}")
        _check_log(addr, records, ordered)
        return records / took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    """Measure and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--unordered", action="store_true", help="do not check order (code before issue 13)"
    )
    a = parser.parse_args()
    runs = [one_run(a.records, not a.unordered) for _ in range(a.runs)]
    rates, cpus, rss = zip(*runs, strict=True)
    print(
        f"seq 1 {a.records} | replog produce: median {statistics.median(rates):,.0f} rec/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}); CPU {statistics.median(cpus):.2f} s "
        f"(runs: {', '.join(f'{c:.2f}' for c in cpus)}); peak RSS "
        f"{statistics.median(rss):.0f} MiB (runs: {', '.join(f'{m:.0f}' for m in rss)})"
    )


if __name__ == "__main__":
    main()
