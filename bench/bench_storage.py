"""Storage engine benchmarks: measure, then write the storage section of docs/benchmarks.md.

    .venv/bin/python bench/bench_storage.py            # full run (~3-5 min), writes the docs
    .venv/bin/python bench/bench_storage.py --quick    # tiny sizes, 1 run, writes a temp file

Every figure is measured in a fresh subprocess (``--worker``), so peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that scenario alone and one
scenario's garbage does not slow the next. Figures are medians over ``--runs`` runs; the
min..max spread is printed next to them. Only the text between ``<!-- storage:begin -->``
and ``<!-- storage:end -->`` in the output file is replaced, so other benchmark sections
can live in the same file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- storage:begin -->", "<!-- storage:end -->"
MB = 1_000_000
MiB = 1 << 20
GiB = 1 << 30

# -- workers (run in a subprocess each) --------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _memory() -> dict[str, float]:
    """Peak RSS of this process (``ru_maxrss``, and ``VmHWM`` which, unlike ``ru_maxrss``,
    does not inherit the spawning parent's size), and the anonymous / file-backed split of
    the current RSS (file-backed = mmap'd index pages, reclaimable page cache)."""
    out = {"rss_mb": _rss_mb()}
    with open("/proc/self/status") as file:
        for line in file:
            name, _, rest = line.partition(":")
            if name in ("VmHWM", "RssAnon", "RssFile"):
                out[name] = int(rest.split()[0]) / 1024
    return out


def _config(sync: str) -> Any:
    from replog import LogConfig

    return LogConfig(sync=sync)  # type: ignore[arg-type]


def work_append(spec: dict[str, Any]) -> dict[str, Any]:
    """Append ``value_bytes`` values in batches of ``batch`` for about ``seconds``."""
    from replog import Log

    directory = spec["dir"]
    shutil.rmtree(directory, ignore_errors=True)
    value = os.urandom(spec["value_bytes"])
    batch = [value] * spec["batch"]
    seconds = spec["seconds"]
    threads = spec.get("threads", 1)
    with Log(directory, _config(spec["sync"])) as log:
        for _ in range(max(1, 200 // spec["batch"])):  # warm-up: first segment, code paths
            log.append_batch(batch)
        warm = log.next_offset
        if threads == 1:
            step = batch if spec["batch"] > 1 else None
            start = time.perf_counter()
            deadline = start + seconds
            while True:
                for _ in range(32):
                    if step is None:
                        log.append(value)
                    else:
                        log.append_batch(step)
                if time.perf_counter() >= deadline:
                    break
            elapsed = time.perf_counter() - start
        else:
            stop = threading.Event()

            def loop() -> None:
                while not stop.is_set():
                    log.append(value)

            pool = [threading.Thread(target=loop) for _ in range(threads)]
            start = time.perf_counter()
            for thread in pool:
                thread.start()
            stop.wait(seconds)
            stop.set()
            for thread in pool:
                thread.join()
            elapsed = time.perf_counter() - start
        records = log.next_offset - warm
    shutil.rmtree(directory, ignore_errors=True)
    return {"records_per_s": records / elapsed, "records": records, "seconds": elapsed}


def work_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the big log: 100 B values in batches of 1,000, sync never, until ``bytes``."""
    from replog import Log

    directory = spec["dir"]
    shutil.rmtree(directory, ignore_errors=True)
    value = os.urandom(100)
    batch = [value] * 1000
    start = time.perf_counter()
    with Log(directory, _config("never")) as log:
        while log.size_bytes < spec["bytes"]:
            log.append_batch(batch)
        records, size, segments = log.next_offset, log.size_bytes, log.segment_count
    elapsed = time.perf_counter() - start
    return {
        "records": records,
        "bytes": size,
        "segments": segments,
        "seconds": elapsed,
        **_memory(),
    }


def work_open(spec: dict[str, Any]) -> dict[str, Any]:
    """Time opening the log directory (a clean open, or a recovery after a crash)."""
    from replog import Log

    start = time.perf_counter()
    log = Log(spec["dir"], _config("never"))
    elapsed = time.perf_counter() - start
    records = log.next_offset
    log.close()
    return {"seconds": elapsed, "records": records, "rss_mb": _rss_mb()}


def work_seq_read(spec: dict[str, Any]) -> dict[str, Any]:
    """Read the whole log front to back with ``read_batch`` or ``read_payloads``."""
    from replog import Log

    with Log(spec["dir"], _config("never")) as log:
        read = log.read_batch if spec["method"] == "read_batch" else log.read_payloads
        offset, end = log.lowest_offset, log.next_offset
        limit = spec.get("records") or end - offset
        stop = min(end, offset + limit)
        start = time.perf_counter()
        count = 0
        while offset < stop:
            got = len(read(offset, max_records=1000))
            offset += got
            count += got
        elapsed = time.perf_counter() - start
        memory = _memory()
    return {"records_per_s": count / elapsed, "records": count, **memory}


def work_random_read(spec: dict[str, Any]) -> dict[str, Any]:
    """Time ``Log.read`` of uniformly random offsets (warm page cache)."""
    from replog import Log

    rng = random.Random(spec.get("seed", 1))
    with Log(spec["dir"], _config("never")) as log:
        low, high = log.lowest_offset, log.next_offset - 1
        offsets = [rng.randint(low, high) for _ in range(spec["reads"])]
        for offset in offsets[:1000]:  # warm-up
            log.read(offset)
        clock = time.perf_counter_ns
        samples = []
        for offset in offsets:
            t0 = clock()
            log.read(offset)
            samples.append(clock() - t0)
        memory = _memory()
    samples.sort()
    n = len(samples)
    return {
        "p50_us": samples[n // 2] / 1000,
        "p99_us": samples[min(n - 1, int(n * 0.99))] / 1000,
        "max_us": samples[-1] / 1000,
        **memory,
    }


def work_crash_writer(spec: dict[str, Any]) -> dict[str, Any]:
    """Append to the log forever; say "ready" after ``records`` records (then get killed)."""
    from replog import Log

    value = os.urandom(100)
    batch = [value] * 100
    log = Log(spec["dir"], _config("never"))
    for _ in range(spec["records"] // 100):
        log.append_batch(batch)
    print("ready", flush=True)
    while True:
        log.append_batch(batch)


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "append": work_append,
    "build": work_build,
    "open": work_open,
    "seq_read": work_seq_read,
    "random_read": work_random_read,
    "crash_writer": work_crash_writer,
}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter and return its JSON result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec['kind']} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def crash(directory: str, records: int) -> None:
    """Start a writer on ``directory``, let it append ``records``, then kill -9 it mid-stream."""
    spec = {"kind": "crash_writer", "dir": directory, "records": records}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    if line.strip() != "ready":
        raise RuntimeError("crash writer died before it was ready")


def zero_active_index(directory: str) -> int:
    """Zero the last segment's index (as if its pages never reached the disk); return the
    size of that segment's store, which the next open must scan."""
    stores = sorted(Path(directory).glob("*.store"))
    index = stores[-1].with_suffix(".index")
    size = index.stat().st_size
    with open(index, "r+b") as file:
        for start in range(0, size, MiB):
            file.write(bytes(min(MiB, size - start)))
    return stores[-1].stat().st_size


# -- the driver --------------------------------------------------------------------------------


@dataclass
class Plan:
    runs: int
    append_seconds: float
    threaded_seconds: float
    big_bytes: int
    random_reads: int
    crash_records: int


FULL = Plan(
    runs=3,
    append_seconds=1.0,
    threaded_seconds=2.0,
    big_bytes=GiB,
    random_reads=200_000,
    crash_records=50_000,
)
QUICK = Plan(
    runs=1,
    append_seconds=0.05,
    threaded_seconds=0.1,
    big_bytes=4 * MiB,
    random_reads=2_000,
    crash_records=1_000,
)


def _median(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def measure(plan: Plan, bench_dir: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Run every scenario ``plan.runs`` times; return medians (and spreads) by name."""
    results: dict[str, Any] = {"appends": [], "plan": plan.__dict__}
    scratch = os.path.join(bench_dir, "append")
    for sync in ("never", "always"):
        for value_bytes in (100, 1024):
            for batch in (1, 100, 1000):
                cases = [1, 8] if (sync, batch, value_bytes) == ("always", 1, 100) else [1]
                for threads in cases:
                    seconds = plan.threaded_seconds if threads > 1 else plan.append_seconds
                    spec = {
                        "kind": "append",
                        "dir": scratch,
                        "value_bytes": value_bytes,
                        "batch": batch,
                        "sync": sync,
                        "threads": threads,
                        "seconds": seconds,
                    }
                    rates = [run_worker(spec)["records_per_s"] for _ in range(plan.runs)]
                    med, low, high = _median(rates)
                    say(
                        f"append {value_bytes:>4} B batch {batch:>4} sync {sync:<6} "
                        f"threads {threads}: {med:,.0f} rec/s"
                    )
                    results["appends"].append(
                        {
                            "value_bytes": value_bytes,
                            "batch": batch,
                            "sync": sync,
                            "threads": threads,
                            "records_per_s": med,
                            "min": low,
                            "max": high,
                            "mb_per_s": med * value_bytes / MB,
                        }
                    )
    big = os.path.join(bench_dir, "big")
    say(f"building a {plan.big_bytes / GiB:.3g} GiB log of 100 B values ...")
    results["build"] = run_worker({"kind": "build", "dir": big, "bytes": plan.big_bytes})
    say(f"  {results['build']['records']:,} records in {results['build']['segments']} segments")
    opens = [run_worker({"kind": "open", "dir": big}) for _ in range(plan.runs)]
    results["open_clean"] = _median([o["seconds"] for o in opens])
    say(f"open clean: {results['open_clean'][0] * 1000:.1f} ms")
    for method in ("read_batch", "read_payloads"):
        reads = [
            run_worker({"kind": "seq_read", "dir": big, "method": method}) for _ in range(plan.runs)
        ]
        results[method] = _median([r["records_per_s"] for r in reads])
        results[method + "_mem"] = max(reads, key=lambda r: r["rss_mb"])
        say(f"{method}: {results[method][0]:,.0f} rec/s")
    randoms = [
        run_worker({"kind": "random_read", "dir": big, "reads": plan.random_reads, "seed": run})
        for run in range(plan.runs)
    ]
    results["random_p50"] = _median([r["p50_us"] for r in randoms])
    results["random_p99"] = _median([r["p99_us"] for r in randoms])
    results["random_mem"] = max(randoms, key=lambda r: r["rss_mb"])
    say(f"random read p50 {results['random_p50'][0]:.1f} us p99 {results['random_p99'][0]:.1f} us")
    recoveries, rebuilds, scanned = [], [], []
    for _ in range(plan.runs):
        crash(big, plan.crash_records)
        recoveries.append(run_worker({"kind": "open", "dir": big})["seconds"])
        crash(big, plan.crash_records)
        scanned.append(zero_active_index(big))
        rebuilds.append(run_worker({"kind": "open", "dir": big})["seconds"])
    results["recovery"] = _median(recoveries)
    results["rebuild"] = _median(rebuilds)
    results["rebuild_scanned_bytes"] = statistics.median(scanned)
    say(f"recovery after kill -9: {results['recovery'][0] * 1000:.1f} ms")
    say(f"recovery with the active index lost: {results['rebuild'][0] * 1000:.1f} ms")
    results["baseline_rss"] = _baseline_rss()
    return results


def _baseline_rss() -> float:
    code = "import resource, replog; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1024


# -- the machine ---------------------------------------------------------------------------------


def machine(bench_dir: str) -> dict[str, str]:
    """Describe where the figures were measured."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with open("/proc/meminfo") as file:
        for line in file:
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
                break
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "RAM": ram,
        "kernel": platform.release(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "filesystem": _filesystem(bench_dir),
    }


def _filesystem(path: str) -> str:
    real = os.path.realpath(path)
    best, kind, device = "", "unknown", ""
    with open("/proc/mounts") as file:
        for line in file:
            fields = line.split()
            mount = fields[1].replace("\\040", " ")
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind, device = mount, fields[2], fields[0]
    return f"{kind} ({device} on {best}; bench dir {path})"


# -- the report --------------------------------------------------------------------------------

TARGETS = {
    ("never", 100, "batched"): 1_000_000,
    ("always", 100, "batched"): 500_000,
    ("never", 100, "unbatched"): 300_000,
}


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def _target_cell(row: dict[str, Any]) -> tuple[str, str]:
    if row["value_bytes"] != 100 or row["threads"] != 1:
        return "", ""
    if row["batch"] == 100:
        return "", ""
    kind = "unbatched" if row["batch"] == 1 else "batched"
    target = TARGETS.get((row["sync"], 100, kind))
    if target is None:
        return "", ""
    return f">= {target:,}", _verdict(row["records_per_s"] >= target)


def render(results: dict[str, Any], info: dict[str, str], command: str, quick: bool) -> str:
    plan = results["plan"]
    build = results["build"]
    lines = [
        BEGIN,
        "## Storage engine (`replog.storage.Log`)",
        "",
        f"Measured {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} with `{command}`"
        + (" (**--quick: tiny sizes, not representative**)" if quick else "")
        + f". Every figure is the median of {plan['runs']} run(s), each in a fresh process; "
        "min..max in brackets. Generated by `bench/bench_storage.py`; do not edit by hand.",
        "",
        "### Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
        "### Append throughput",
        "",
        f"Default `LogConfig` (64 MiB segments) apart from `sync`; each run appends for "
        f"{plan['append_seconds']} s ({plan['threaded_seconds']} s threaded) into a fresh "
        "directory. Batch 1 is `Log.append(value)`, larger batches `Log.append_batch`. "
        "MB/s counts value bytes (10^6). The batched targets apply to batches of 1,000.",
        "",
        "| value | batch | sync | threads | records/s | MB/s | target | |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in results["appends"]:
        target, verdict = _target_cell(row)
        size = "1 KiB" if row["value_bytes"] == 1024 else f"{row['value_bytes']} B"
        lines.append(
            f"| {size} | {row['batch']:,} | {row['sync']} | {row['threads']} "
            f"| {row['records_per_s']:,.0f} [{row['min']:,.0f}..{row['max']:,.0f}] "
            f"| {row['mb_per_s']:,.1f} | {target} | {verdict} |"
        )
    size = build["bytes"]
    size_text = f"{size / GiB:.2f} GiB" if size >= GiB / 2 else f"{size / MiB:.1f} MiB"

    def fig(triple: list[float], fmt: str) -> str:
        med, low, high = triple
        return f"{med:{fmt}} [{low:{fmt}}..{high:{fmt}}]"

    seq_target = 1_500_000
    rb, rp = results["read_batch"], results["read_payloads"]
    p99 = results["random_p99"]
    opened = results["open_clean"]
    rss = {
        "appending (building the log)": build,
        "reading sequentially (read_batch)": results["read_batch_mem"],
        "reading sequentially (read_payloads)": results["read_payloads_mem"],
        "random reads": results["random_mem"],
    }
    lines += [
        "",
        f"### Reads, open and recovery: a {size_text} log",
        "",
        f"{build['records']:,} records of 100 B values in {build['segments']} segments, "
        f"built with `append_batch` of 1,000, sync never, in {build['seconds']:.1f} s "
        f"({build['records'] / build['seconds']:,.0f} rec/s). Reads run with a warm page "
        "cache (the log was just written; RAM is larger than the log). Sequential reads walk "
        "the whole log with `max_records=1000`; random reads are `Log.read(offset)` of "
        f"{plan['random_reads']:,} uniformly random offsets, each timed alone.",
        "",
        "| what | figure | target | |",
        "|---|---:|---:|---|",
        f"| sequential `read_batch` (decoded Records) | {fig(rb, ',.0f')} rec/s "
        f"| >= {seq_target:,} | {_verdict(rb[0] >= seq_target)} |",
        f"| sequential `read_payloads` (bytes, CRC-checked) | {fig(rp, ',.0f')} rec/s "
        f"| >= {seq_target:,} | {_verdict(rp[0] >= seq_target)} |",
        f"| random `read` p50 | {fig(results['random_p50'], '.1f')} µs | | |",
        f"| random `read` p99 | {fig(p99, '.1f')} µs | <= 50 µs | {_verdict(p99[0] <= 50)} |",
        f"| open, cleanly closed | {fig([s * 1000 for s in opened], '.1f')} ms | <= 500 ms "
        f"| {_verdict(opened[0] <= 0.5)} |",
        f"| open after `kill -9` of a writer (index pre-sized) "
        f"| {fig([s * 1000 for s in results['recovery']], '.1f')} ms | | |",
        f"| open after `kill -9` with the active index zeroed (rebuild by scanning "
        f"{results['rebuild_scanned_bytes'] / MiB:.1f} MiB of store) "
        f"| {fig([s * 1000 for s in results['rebuild']], '.1f')} ms | | |",
        "",
        "### Peak memory",
        "",
        "Peak RSS of the worker process: `ru_maxrss` (what the target is checked against) "
        "and `VmHWM` from /proc/self/status (the same peak, but not inflated by the spawning "
        "parent, which `ru_maxrss` inherits across fork+exec). Both count the resident pages "
        "of the mmap'd index files; the last two columns split the RSS at the end of the run "
        "into anonymous memory and file-backed pages (mostly index maps: reclaimable page "
        "cache, not heap). MiB = 2^20 bytes. An interpreter with only `replog` imported: "
        f"{results['baseline_rss']:.1f} MiB (`ru_maxrss`).",
        "",
        "| while | peak RSS (`ru_maxrss`) | target | | `VmHWM` | anon at end | file at end |",
        "|---|---:|---:|---|---:|---:|---:|",
        *[
            f"| {what} | {m['rss_mb']:.1f} MiB | < 100 MB "
            f"| {_verdict(m['rss_mb'] * MiB < 100 * MB)} "
            f"| {m.get('VmHWM', 0):.1f} MiB | {m.get('RssAnon', 0):.1f} MiB "
            f"| {m.get('RssFile', 0):.1f} MiB |"
            for what, m in rss.items()
        ],
        "",
        END,
    ]
    return "\n".join(lines)


def write_section(path: Path, section: str, name: str = "storage") -> None:
    """Replace the ``name`` section of ``path`` (or add it; create the file if missing).

    ``section`` must start with ``<!-- name:begin -->`` and end with ``<!-- name:end -->``.
    """
    text = path.read_text() if path.exists() else ""
    if not text.strip():
        text = "# Benchmarks\n\nGenerated sections; each `make bench-*` target rewrites its own.\n"
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 run, temp output")
    parser.add_argument("--dir", help="bench directory (default: a new one under /tmp)")
    parser.add_argument("--out", help="markdown file to update (default: docs/benchmarks.md)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; 1 with --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the bench directory")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["kind"]](spec)), flush=True)
        return 0
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = Plan(**{**plan.__dict__, "runs": args.runs})
    bench_dir = args.dir or tempfile.mkdtemp(prefix="replog-bench-", dir="/tmp")
    os.makedirs(bench_dir, exist_ok=True)
    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = Path(tempfile.mkstemp(prefix="replog-bench-", suffix=".md")[1])
    else:
        out = DOCS
    command = "make bench-storage" if not args.quick else "bench/bench_storage.py --quick"
    started = time.perf_counter()
    try:
        info = machine(bench_dir)
        results = measure(plan, bench_dir, lambda text: print(text, flush=True))
    finally:
        if not args.keep:
            shutil.rmtree(bench_dir, ignore_errors=True)
    write_section(out, render(results, info, command, args.quick))
    print(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
