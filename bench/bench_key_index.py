"""The per-partition key index (``replog.broker.key_index``): memory per key and rates.

Each run is a fresh subprocess (so ``ru_maxrss`` is that run's own peak):

- **memory**: ``--keys`` distinct keys (default 10 million, ``key-<n>``) added in batches
  of 1,000 new keys; the peak RSS of the process and, over the RSS before the index
  existed, bytes per key (target: 10 million keys in <= 300 MiB);
- **rates** on that index: adding batches of 1,000 new keys, of 1,000 random existing
  keys, and of 100 records of one key (the conditional-append shape); ``latest`` of
  existing and of absent keys (the record read back is a synthetic ``key_at``, so this is
  the index's own cost); writing a checkpoint and opening it again;
- **with a real Log** (``--log-records``, default 500,000, 100 B values, ``sync="never"``):
  the conditional per-key path without a network: per batch of 100 records of one key,
  ``latest`` (reading the record back from the Log), ``Log.append_batch``, ``add_batch``.

Figures are the median of ``--runs`` runs (min..max in brackets). The run's files live in a
temporary directory (about 300 MB for 10 million keys) removed at the end.
Run: ``PYTHONPATH=src python bench/bench_key_index.py`` (``--out`` picks the markdown file
whose ``key-index`` section is replaced; default docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_storage import machine, write_section  # bench/ is on sys.path

from replog.broker.key_index import KeyIndex
from replog.broker.key_index_file import CHECKPOINT_NAME
from replog.broker.key_source import LogKeySource
from replog.storage import Log, LogConfig
from replog.v1.record_pb2 import Record

_MIB = 1 << 20
_BATCH = 1000


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Synthetic:
    """A KeySource without disk: the record at offset ``o`` has key ``key_of(o)``.

    Offsets below ``distinct`` are the new keys ``key-<o>``; the next ``updates`` offsets
    spread over them (a multiplicative hash of the offset); after those, batches of 100
    records share one key.
    """

    lowest_offset = 0

    def __init__(self, distinct: int, updates: int) -> None:
        self.next_offset = 0
        self.distinct = distinct
        self.single_from = distinct + updates

    def key_of(self, offset: int) -> bytes:
        if offset < self.distinct:
            return b"key-%d" % offset
        if offset < self.single_from:
            return b"key-%d" % (offset * 2654435761 % self.distinct)
        return b"key-%d" % ((offset - self.single_from) // 100 * 40503 % self.distinct)

    def key_at(self, offset: int) -> bytes | None:
        return self.key_of(offset)

    def keys(self, start: int, end: int) -> Iterator[tuple[int, list[bytes]]]:
        for base in range(start, end, _BATCH):
            yield base, [self.key_of(o) for o in range(base, min(end, base + _BATCH))]


class _Clock:
    """Wall and CPU time of the timed parts only (the machine is shared: CPU time says what
    the code costs, wall time what a caller waited)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._began = (0.0, 0.0)

    def __enter__(self) -> None:
        self._began = (time.perf_counter(), time.process_time())

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._began[0]
        self.cpu += time.process_time() - self._began[1]

    def rates(self, name: str, count: int) -> dict[str, float]:
        return {name: count / self.wall, f"{name}_cpu": count / self.cpu}


def _add(
    index: KeyIndex, source: _Synthetic, name: str, count: int, batch: int
) -> dict[str, float]:
    """Add ``count`` records of the source, ``batch`` at a time: records/s of add_batch."""
    clock = _Clock()
    key_of = source.key_of
    start = index.next_offset
    for base in range(start, start + count, batch):
        keys = [key_of(o) for o in range(base, min(start + count, base + batch))]
        source.next_offset = base + len(keys)
        with clock:
            index.add_batch(base, keys)
    return clock.rates(name, count)


def _lookups(index: KeyIndex, name: str, distinct: int, absent: bool) -> dict[str, float]:
    rng = random.Random(9)
    prefix = b"absent" if absent else b"key"
    keys = [b"%s-%d" % (prefix, rng.randrange(distinct)) for _ in range(min(200_000, distinct))]
    clock = _Clock()
    with clock:
        for key in keys:
            index.latest(key)
    return clock.rates(name, len(keys))


def memory_run(distinct: int, root: str) -> dict[str, float]:
    """One run of the memory, rate and checkpoint figures on ``distinct`` keys."""
    updates = min(1_000_000, distinct)  # smaller runs (the smoke test) scale down
    single = min(200_000, distinct) // 100 * 100
    source = _Synthetic(distinct, updates)
    base_rss = _rss_now()
    index = KeyIndex(os.path.join(root, "index"), source)
    result = _add(index, source, "new_keys_per_s", distinct, _BATCH)
    peak = _peak_rss()
    result["peak_rss_mib"] = peak / _MIB
    result["base_rss_mib"] = base_rss / _MIB
    result["bytes_per_key"] = (peak - base_rss) / distinct
    result |= _add(index, source, "existing_keys_per_s", updates, _BATCH)
    result |= _add(index, source, "one_key_records_per_s", single, 100)
    result |= _lookups(index, "lookups_hit_per_s", distinct, absent=False)
    result |= _lookups(index, "lookups_absent_per_s", distinct, absent=True)
    began = time.perf_counter()
    index.checkpoint()
    result["checkpoint_write_s"] = time.perf_counter() - began
    result["checkpoint_mib"] = os.path.getsize(os.path.join(root, "index", CHECKPOINT_NAME)) / _MIB
    index.close(checkpoint=False)
    del index
    began = time.perf_counter()
    index = KeyIndex(os.path.join(root, "index"), source)
    result["checkpoint_open_s"] = time.perf_counter() - began
    index.close(checkpoint=False)
    return result


def log_run(records: int, root: str) -> dict[str, float]:
    """The conditional per-key path on a real Log: latest, append_batch, add_batch."""
    log = Log(os.path.join(root, "log"), LogConfig(sync="never"))
    index = KeyIndex(os.path.join(root, "log-index"), LogKeySource(log))
    rng = random.Random(11)
    value = b"v" * 100
    batches = records // 100
    keys = [b"aggregate-%d" % rng.randrange(batches // 4 + 1) for _ in range(batches)]
    versions: dict[bytes, int] = {}  # what each writer last saw: its expected offset
    clock = _Clock()
    with clock:
        for key in keys:
            if index.latest(key) != versions.get(key, -1):  # the apply path's check
                raise AssertionError("a conditional append would have been refused")
            base = log.append_batch([Record(key=key, value=value) for _ in range(100)])
            index.add_batch(base, [key] * 100)
            versions[key] = base + 99
    index.close(checkpoint=False)
    log.close()
    return clock.rates("conditional_records_per_s", batches * 100)


def _child(kind: str, size: int) -> None:
    root = tempfile.mkdtemp(prefix="replog-bench-keyindex-")
    try:
        result = memory_run(size, root) if kind == "memory" else log_run(size, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


def _runs(kind: str, size: int, runs: int) -> list[dict[str, float]]:
    out = []
    for _ in range(runs):
        args = [sys.executable, __file__, "--child", kind, "--size", str(size)]
        done = subprocess.run(args, check=True, capture_output=True, text=True)
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def _figure(results: list[dict[str, float]], name: str, digits: int = 0) -> str:
    values = [r[name] for r in results]
    form = f"{{:,.{digits}f}}"
    spread = f"{form.format(min(values))}..{form.format(max(values))}"
    return f"{form.format(statistics.median(values))} [{spread}]"


_MEMORY_ROWS = [
    ("peak RSS of the process, MiB", "peak_rss_mib", 1, ""),
    ("RSS before the index (interpreter, replog imported), MiB", "base_rss_mib", 1, ""),
    ("index bytes per key (peak RSS over the RSS before)", "bytes_per_key", 1, ""),
    ("checkpoint write (fsynced), s", "checkpoint_write_s", 2, ""),
    ("checkpoint size, MiB", "checkpoint_mib", 1, ""),
    ("open from the checkpoint, s", "checkpoint_open_s", 2, ""),
]
_RATE_ROWS = [
    ("add_batch, batches of 1,000 new keys: keys/s", "new_keys_per_s"),
    ("add_batch, batches of 1,000 random existing keys: keys/s", "existing_keys_per_s"),
    ("add_batch, batches of 100 records of one key: records/s", "one_key_records_per_s"),
    ("latest, existing keys (synthetic read-back): lookups/s", "lookups_hit_per_s"),
    ("latest, absent keys: lookups/s", "lookups_absent_per_s"),
]


def _section(
    memory: list[dict[str, float]], logged: list[dict[str, float]], args: argparse.Namespace
) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    info = machine(tempfile.gettempdir())
    index_mib = statistics.median(r["bytes_per_key"] for r in memory) * args.keys / _MIB
    lines = [
        "<!-- key-index:begin -->",
        "## Key index (`replog.broker.key_index`)",
        "",
        f"Measured {stamp} with `PYTHONPATH=src python bench/bench_key_index.py --keys "
        f"{args.keys} --log-records {args.log_records} --runs {args.runs}`. Every figure is "
        f"the median of {args.runs} runs, each in a fresh process; min..max in brackets. "
        "Rates are given per wall-clock second and per CPU second of the process (the "
        f"machine was shared: load average {os.getloadavg()[0]:.1f} at the end). Generated "
        "by `bench/bench_key_index.py`; do not edit by hand.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in info.items()],
        "",
        f"### {args.keys:,} distinct keys",
        "",
        f"The index itself: {index_mib:,.0f} MiB for {args.keys:,} keys (target: <= 300 MiB).",
        "",
        "| figure | value |",
        "|---|---:|",
        *[f"| {label} | {_figure(memory, key, d)} |" for label, key, d, _ in _MEMORY_ROWS],
        "",
        "| rate | per wall second | per CPU second |",
        "|---|---:|---:|",
        *[
            f"| {label} | {_figure(memory, key)} | {_figure(memory, key + '_cpu')} |"
            for label, key in _RATE_ROWS
        ],
        "",
        "### The conditional per-key path on a real `Log` (no network)",
        "",
        f"{args.log_records:,} records of 100 B in batches of 100 records of one key (keys "
        'drawn from a quarter as many aggregates), `sync="never"`: per batch `latest` '
        "(reading the record back from the Log), `Log.append_batch`, `add_batch`. "
        "Target for the whole path: >= 100,000 records/s.",
        "",
        "| rate | per wall second | per CPU second |",
        "|---|---:|---:|",
        f"| records/s | {_figure(logged, 'conditional_records_per_s')} | "
        f"{_figure(logged, 'conditional_records_per_s_cpu')} |",
        "<!-- key-index:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and rewrite its section of the markdown file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--log-records", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--child", choices=["memory", "log"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.size)
        return
    memory = _runs("memory", args.keys, args.runs)
    logged = _runs("log", args.log_records, args.runs)
    section = _section(memory, logged, args)
    write_section(args.out, section, "key-index")
    print(section)


if __name__ == "__main__":
    main()
