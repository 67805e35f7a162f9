"""Consumer groups on one node: a group's read rate against plain ``stream_batches``, and
how long a rebalance after a clean leave takes.

Starts one ``replog serve`` (a temporary data directory, 127.0.0.1), fills a topic of
``--partitions`` partitions with ``--records`` records of 100 B, then, ``--runs`` times:

- plain: ``--members`` processes, each reading its share of the partitions to their end
  with ``Client.stream_batches`` (the same parallelism as the group, without it);
- group: ``--members`` processes, each a ``replog.Consumer`` of one new group (from the
  earliest offset) reading until the group has read them all, with ``poll_batch`` (the
  records a fetch brought, together) and, in another group, ``poll`` (one by one);
- rebalance: ``--members`` consumers of a group in this process, stable; one closes; the
  time until the others own every partition.

Prints the medians. Run: ``python bench/bench_groups.py`` (``PYTHONPATH`` chooses the code).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from typing import Any

from local_server import local_server  # bench/ is on sys.path (run as a script)

from replog.client import Client, Consumer

TOPIC = "bench-groups"


def _fill(addr: str, partitions: int, records: int) -> None:
    with Client(addr, timeout=30) as client:
        client.create_topic(TOPIC, partitions)
        value = b"v" * 100
        per = records // partitions
        for p in range(partitions):
            for start in range(0, per, 5_000):
                client.produce_batch([value] * min(5_000, per - start), topic=TOPIC, partition=p)


def _plain(addr: str, partitions: list[int], ends: dict[int, int], touch: bool, out: Any) -> None:
    """Read ``partitions`` to their ``ends`` with stream_batches (reading each record's
    value when ``touch``); put (count, end time)."""
    count = 0
    with Client(addr, timeout=30) as client:
        for p in partitions:
            for batch in client.stream_batches(0, max_records=10_000, topic=TOPIC, partition=p):
                count += len(batch.records)
                if touch:
                    sum(len(r.value) for r in batch.records)
                if (batch.next_offset or 0) >= ends[p]:
                    break
    out.put((count, time.time()))


def _member(
    addr: str, group: str, total: int, batches: bool, touch: bool, done: Any, out: Any
) -> None:
    """Consume in ``group`` (records one by one, or ``batches`` with ``poll_batch``) until
    the group as a whole read ``total``; put (count, time of the last record)."""
    count = reported = 0
    last = time.time()
    with Client(addr, timeout=30) as client:
        consumer = Consumer(client, group=group, topics=[TOPIC], auto_offset_reset="earliest")
        try:
            while True:
                if batches:
                    batch = consumer.poll_batch(0.2)
                    got = len(batch.records) if batch is not None else 0
                    if touch and batch is not None:
                        sum(len(r.value) for r in batch.records)
                else:
                    got = 1 if consumer.poll(0.2) is not None else 0
                if got:
                    count += got
                    last = time.time()
                    if count - reported >= 1000:
                        with done.get_lock():
                            done.value += count - reported
                        reported = count
                elif done.value >= total - 1000 * 3:
                    break
        finally:
            consumer.close()
    out.put((count, last))


def _spawn(target: Any, args_of: list[tuple[Any, ...]]) -> tuple[float, int]:
    """Run one process per args tuple from now; (seconds until the last ended, records)."""
    out: Any = mp.Queue()
    started = time.time()
    procs = [mp.Process(target=target, args=(*a, out)) for a in args_of]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(60)
    return max(end for _, end in results) - started, sum(c for c, _ in results)


def _rebalance(addr: str, members: int, group: str) -> float:
    """Seconds from one member's close until the others own every partition."""
    with Client(addr, timeout=30) as client:
        consumers = [
            Consumer(client, group=group, topics=[TOPIC], auto_offset_reset="latest")
            for _ in range(members)
        ]
        try:
            partitions = len(client.describe_topic(TOPIC).partitions)
            deadline = time.monotonic() + 30
            while sum(len(c.assignment()) for c in consumers) < partitions:
                for c in consumers:
                    c.poll(0.01)
                if time.monotonic() > deadline:
                    raise RuntimeError("the group never became stable")
            leaving, staying = consumers[0], consumers[1:]
            started = time.perf_counter()
            leaving.close()
            while sum(len(c.assignment()) for c in staying) < partitions:
                for c in staying:
                    c.poll(0.001)
            return time.perf_counter() - started
        finally:
            for c in consumers:
                c.close()


def main() -> None:
    """Parse the arguments, run, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=600_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--touch",
        action="store_true",
        help="every reader reads each record's value (else the records are only counted)",
    )
    a = parser.parse_args()
    plain: list[float] = []
    group: list[float] = []
    one_by_one: list[float] = []
    rebalance: list[float] = []
    with local_server("--sync", "never", prefix="replog-bench-groups-") as addr:
        _fill(addr, a.partitions, a.records)
        with Client(addr) as client:
            ends = {p.partition: p.next_offset for p in client.describe_topic(TOPIC).partitions}
        total = sum(ends.values())
        shares = [list(range(m, a.partitions, a.members)) for m in range(a.members)]
        for run in range(a.runs):
            seconds, count = _spawn(_plain, [(addr, share, ends, a.touch) for share in shares])
            plain.append(count / seconds)
            for batches, rates in ((True, group), (False, one_by_one)):
                done: Any = mp.Value("q", 0)
                kind = "b" if batches else "r"
                args = [
                    (addr, f"g{kind}{run}", total, batches, a.touch, done) for _ in range(a.members)
                ]
                seconds, count = _spawn(_member, args)
                rates.append(count / seconds)
            rebalance.append(_rebalance(addr, a.members, f"r{run}"))
            print(
                f"run {run + 1}: plain {plain[-1]:,.0f} rec/s, group poll_batch "
                f"{group[-1]:,.0f} rec/s, group poll {one_by_one[-1]:,.0f} rec/s, "
                f"rebalance {rebalance[-1] * 1000:.0f} ms",
                flush=True,
            )
    p, g, r = (statistics.median(x) for x in (plain, group, one_by_one))
    print(f"median plain stream_batches ({a.members} processes): {p:,.0f} records/s")
    print(f"median group of {a.members}, poll_batch: {g:,.0f} records/s ({g / p:.0%} of plain)")
    print(f"median group of {a.members}, poll: {r:,.0f} records/s ({r / p:.0%} of plain)")
    print(f"median rebalance after a clean leave: {statistics.median(rebalance) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
