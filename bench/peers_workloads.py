"""The client side of bench_peers.py: one function per system, run in a fresh subprocess.

Each ``work_*`` gets a spec (addresses, value size, counts) and does, in this order:

1. ``produce``: ``records`` values in the system's best client mode, timed until the last
   acknowledgement arrived (records/s);
2. ``consume``: read those ``records`` back from the start in the system's best consume mode;
3. ``one``: ``latency_records`` values one at a time, each waiting for its ack; p50/p99 of
   the per-request time and the resulting records/s.

It returns a flat dict of figures. Nothing here starts or stops servers.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

WARMUP = 200  # one-at-a-time requests before the timed ones (connections, code paths)


def _warmup(spec: dict[str, Any]) -> int:
    return int(spec.get("warmup", WARMUP))


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    n = len(samples)
    return {
        "p50_ms": samples[n // 2] * 1000,
        "p99_ms": samples[min(n - 1, int(n * 0.99))] * 1000,
        "one_rps": n / sum(samples),
    }


def _one_at_a_time(call: Callable[[], Any], count: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        call()
    clock = time.perf_counter
    samples = []
    for _ in range(count):
        start = clock()
        call()
        samples.append(clock() - start)
    return _percentiles(samples)


# -- replog ------------------------------------------------------------------------------------


def work_replog(spec: dict[str, Any]) -> dict[str, Any]:
    """Producer.send per record (linger 5 ms, batches up to 10,000, 4 in flight); consume by
    ConsumeBatchStream and, separately, by consume_batch pages of 1,000."""
    from replog import Client, Producer

    value = os.urandom(spec["value_bytes"])
    n = spec["records"]
    out: dict[str, Any] = {}
    with Client(spec["addr"], timeout=60) as client:
        client.produce(value)  # the connection is up before the clock starts
        with Producer(client, linger_ms=5, max_batch_records=10_000, max_in_flight=4) as producer:
            start = time.perf_counter()
            futures = [producer.send(value) for _ in range(n)]
            producer.flush()
            out["produce_rps"] = n / (time.perf_counter() - start)
        # Batches in flight together may be appended out of order, so the records' offsets
        # are distinct but not necessarily in send order; in a cluster a control record (a
        # leader's no-op, a membership change) may take an offset among them.
        offsets = [future.result() for future in futures]
        base = min(offsets)
        assert len(set(offsets)) == n, "two records were acknowledged at one offset"
        assert max(offsets) - base < n + 100, "offsets are far from dense"
        del futures, offsets

        start = time.perf_counter()
        seen = 0
        batches = client.stream_batches(base, max_records=10_000)
        for batch in batches:
            seen += len(batch.records)
            if seen >= n:
                break
        batches.close()
        out["consume_rps"] = n / (time.perf_counter() - start)

        start = time.perf_counter()
        offset, seen = base, 0
        while seen < n:
            records = client.consume_batch(offset, max_records=min(1000, n - seen)).records
            assert records, "consume_batch returned nothing before the end"
            offset = records[-1].offset + 1  # control records are skipped, not returned
            seen += len(records)
        out["consume_pages_rps"] = n / (time.perf_counter() - start)

        out.update(
            _one_at_a_time(lambda: client.produce(value), spec["latency_records"], _warmup(spec))
        )
    return out


# -- Redis Streams -----------------------------------------------------------------------------


def work_redis(spec: dict[str, Any]) -> dict[str, Any]:
    """XADD in non-transactional pipelines of ``pipeline`` commands; XRANGE pages of 1,000."""
    import redis

    value = os.urandom(spec["value_bytes"])
    n = spec["records"]
    depth = spec.get("pipeline", 1000)
    stream = "bench"
    out: dict[str, Any] = {}
    client = redis.Redis(host=spec["host"], port=spec["port"], socket_timeout=60)
    try:
        client.ping()
        fields = {b"v": value}
        start = time.perf_counter()
        done = 0
        while done < n:
            pipe = client.pipeline(transaction=False)
            count = min(depth, n - done)
            for _ in range(count):
                pipe.xadd(stream, fields)
            ids = pipe.execute()
            assert len(ids) == count
            done += count
        out["produce_rps"] = n / (time.perf_counter() - start)

        start = time.perf_counter()
        seen, low = 0, "-"
        while seen < n:
            page = client.xrange(stream, min=low, max="+", count=min(1000, n - seen))
            assert page, "XRANGE returned nothing before the end"
            seen += len(page)
            low = "(" + page[-1][0].decode()
        out["consume_rps"] = n / (time.perf_counter() - start)

        out.update(
            _one_at_a_time(
                lambda: client.xadd(stream, fields), spec["latency_records"], _warmup(spec)
            )
        )
    finally:
        client.close()
    return out


# -- NATS JetStream ----------------------------------------------------------------------------


def work_nats(spec: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_nats(spec))


async def _nats(spec: dict[str, Any]) -> dict[str, Any]:
    """publish_async with a window of ``window`` unacknowledged messages; a pull consumer
    (AckPolicy none) fetching batches of 1,000; ``js.publish`` one at a time."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType

    value = os.urandom(spec["value_bytes"])
    n = spec["records"]
    subject = "bench"
    out: dict[str, Any] = {}
    nc = await nats.connect(servers=spec["servers"], max_reconnect_attempts=3)
    try:
        js = nc.jetstream(timeout=30, publish_async_max_pending=spec.get("window", 4000))
        deadline = time.monotonic() + 30  # a fresh cluster needs a meta leader first
        while True:
            try:
                await js.add_stream(
                    name="BENCH",
                    subjects=[subject],
                    storage=StorageType.FILE,
                    num_replicas=spec["replicas"],
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        await js.publish(subject, value)  # the stream has a leader before the clock starts

        start = time.perf_counter()
        futures = [await js.publish_async(subject, value) for _ in range(n)]
        acks = await asyncio.gather(*futures)
        out["produce_rps"] = n / (time.perf_counter() - start)
        assert acks[-1].seq - acks[0].seq == n - 1, "sequence numbers are not contiguous"
        first_seq = acks[0].seq
        del futures, acks

        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=first_seq,
        )
        psub = await js.pull_subscribe(subject, config=config)
        start = time.perf_counter()
        seen = 0
        while seen < n:
            msgs = await psub.fetch(min(1000, n - seen), timeout=10)
            seen += len(msgs)
        out["consume_rps"] = n / (time.perf_counter() - start)
        await psub.unsubscribe()

        clock = time.perf_counter
        for _ in range(_warmup(spec)):
            await js.publish(subject, value)
        samples = []
        for _ in range(spec["latency_records"]):
            t0 = clock()
            await js.publish(subject, value)
            samples.append(clock() - t0)
        out.update(_percentiles(samples))
    finally:
        await nc.close()
    return out


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "replog": work_replog,
    "redis": work_redis,
    "nats": work_nats,
}
