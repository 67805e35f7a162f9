"""The verifiable log's cost on appends: records/s with and without each partition's tree.

    .venv/bin/python bench/bench_tlog.py            # ~1 min, writes the tlog section of docs
    .venv/bin/python bench/bench_tlog.py --quick    # a few seconds, prints only

100 B records in batches of 1,000, into one partition: the embedded ``Broker`` (``sync``
never, so the tree's hashing and tile writes are the largest share they can be) and a
single-node ``replog serve`` (``--sync never``) through the gRPC client, each with the tree
(``Broker(verifiable=True)`` / the default) and without (``verifiable=False`` /
``REPLOG_TLOG_TILES=0``). Runs alternate between the two; the figure is the median of
``--runs``. Only the text between ``<!-- tlog:begin -->`` and ``<!-- tlog:end -->`` in
docs/benchmarks.md is replaced.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_server import local_server

from replog.broker import Broker
from replog.broker.config import TopicConfig
from replog.client import Client
from replog.tlog.proof import consistency_proof, inclusion_proof
from replog.tlog.tile_files import TileDirectory

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- tlog:begin -->", "<!-- tlog:end -->"
BATCH = [bytes(100)] * 1_000


def embedded(batches: int, *, tree: bool, sync: str = "never") -> float:
    """Records/s appending ``batches`` batches to an embedded broker's one partition."""
    directory = tempfile.mkdtemp(prefix="replog-bench-tlog-")
    try:
        broker = Broker(directory, defaults=TopicConfig(sync=sync), verifiable=tree)
        try:
            start = time.perf_counter()
            for _ in range(batches):
                broker.append_batch("default", BATCH)
            elapsed = time.perf_counter() - start
        finally:
            broker.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return batches * len(BATCH) / elapsed


def embedded_fsync(batches: int, *, tree: bool) -> float:
    """``embedded`` with ``sync`` always (the default): one fsync per batch."""
    return embedded(batches, tree=tree, sync="always")


def single_node(batches: int, *, tree: bool) -> float:
    """Records/s producing ``batches`` batches to a single-node server over gRPC."""
    os.environ["REPLOG_TLOG_TILES"] = "1" if tree else "0"
    try:
        with local_server("--sync", "never") as addr, Client(addr) as client:
            client.produce_batch(BATCH)  # warm the connection
            start = time.perf_counter()
            for _ in range(batches):
                client.produce_batch(BATCH)
            elapsed = time.perf_counter() - start
    finally:
        del os.environ["REPLOG_TLOG_TILES"]
    return batches * len(BATCH) / elapsed


def proof_ms(leaves: int, proofs: int = 200) -> tuple[float, float]:
    """Median ms of an inclusion and of a consistency proof from a tile tree of ``leaves``
    (random leaf hashes), the tile cache emptied before each: every tile read from disk."""
    directory = Path(tempfile.mkdtemp(prefix="replog-bench-proofs-"))
    try:
        tree = TileDirectory(directory)
        chunk = 1 << 16
        for start in range(0, leaves, chunk):
            raw = os.urandom(32 * min(chunk, leaves - start))
            tree.append_hashes([raw[i : i + 32] for i in range(0, len(raw), 32)])
        rng = random.Random(15)
        inclusion: list[float] = []
        consistency: list[float] = []
        for _ in range(proofs):
            tree._cache.clear()
            start = time.perf_counter()
            inclusion_proof(tree, rng.randrange(leaves), leaves)
            inclusion.append(time.perf_counter() - start)
            tree._cache.clear()
            start = time.perf_counter()
            consistency_proof(tree, rng.randrange(1, leaves), leaves)
            consistency.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return statistics.median(inclusion) * 1000, statistics.median(consistency) * 1000


def measure(fn: Callable[..., float], batches: int, runs: int) -> tuple[float, float]:
    """Median records/s (with the tree, without), runs alternating."""
    with_tree: list[float] = []
    without: list[float] = []
    for _ in range(runs):
        without.append(fn(batches, tree=False))
        with_tree.append(fn(batches, tree=True))
    return statistics.median(with_tree), statistics.median(without)


def report(
    rows: list[tuple[str, float, float]],
    batches: int,
    runs: int,
    proofs: tuple[int, float, float],
) -> str:
    """The markdown section."""
    lines = [
        BEGIN,
        "## Verifiable log: append cost of the tree (`bench/bench_tlog.py`)",
        "",
        f"{batches:,} batches of 1,000 records of 100 B into one partition (`sync` never "
        "unless said), "
        f"median of {runs} runs; {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}.",
        "",
        "| path | with the tree (records/s) | without (records/s) | cost |",
        "|---|---:|---:|---:|",
    ]
    for name, with_tree, without in rows:
        cost = (1 - with_tree / without) * 100
        lines.append(f"| {name} | {with_tree:,.0f} | {without:,.0f} | {cost:.1f}% |")
    leaves, inclusion, consistency = proofs
    lines += [
        "",
        f"Proofs from the tiles on disk at {leaves:,} leaves (random leaf hashes, the tile "
        f"cache emptied before each, median of 200): inclusion {inclusion:.2f} ms, "
        f"consistency {consistency:.2f} ms. A proof reads a few tiles per tile level, so at "
        "100 million leaves (4 tile levels, against 3 here) it reads about a third more.",
        "",
        "The tree costs two SHA-256 calls per record in CPython (the leaf, and on average one "
        "interior node), about 1 µs together on this machine, in the appending thread under "
        "the Log's write lock, plus four tile files per 1,000 records, written by one "
        "tile-writer thread. Against appends of about 1 µs per record that is far above the "
        "issue's 10% target; meeting it needs the hashing in C (a batch SHA-256 over "
        "the frames) or off the append path.",
        "",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    """Measure and write (or print) the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print only")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    batches, runs = (20, 1) if args.quick else (300, args.runs)
    rows = [
        ("embedded `Broker.append_batch`", *measure(embedded, batches, runs)),
        ("embedded, `sync` always", *measure(embedded_fsync, batches // 3, runs)),
        ("single node, gRPC `produce_batch`", *measure(single_node, batches // 3, runs)),
    ]
    leaves = 1 << 16 if args.quick else (1 << 20) + 12_345
    section = report(rows, batches, runs, (leaves, *proof_ms(leaves)))
    print(section)
    if args.quick:
        return
    text = args.out.read_text() if args.out.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text + "\n" + section + "\n"
    )
    args.out.write_text(text)


if __name__ == "__main__":
    main()
