"""Per-key conditional appends on one node: records per second.

Starts one ``replog serve`` (a temporary data directory, 127.0.0.1, ``--sync always``),
creates a topic with ``key_index=true`` and runs ``--writers`` threads, each owning
``--keys`` keys of its own: every request is a batch of ``--batch`` records of one key
with ``expected_key_offset`` = that key's last offset (the event-sourcing append: an
aggregate's new events, refused if someone else appended first). For comparison the same
batches are also sent without the condition. Prints the medians of ``--runs`` runs.
Run: ``python bench/bench_conditional.py`` (``PYTHONPATH`` chooses the code measured).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import grpc
from local_server import local_server  # bench/ is on sys.path (run as a script)

from replog.client import Client
from replog.v1 import log_pb2
from replog.v1.record_pb2 import Record


def _writer(addr: str, w: int, keys: int, batch: int, seconds: float, conditional: bool) -> int:
    """Send batches until ``seconds`` passed; how many records were appended."""
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary(
            "/replog.v1.Log/ProduceBatch",
            request_serializer=log_pb2.ProduceBatchRequest.SerializeToString,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        last = [-1] * keys
        sent = 0
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline:
            k = i % keys
            key = b"agg-%d-%d" % (w, k)
            request = log_pb2.ProduceBatchRequest(
                records=[Record(key=key, value=b"e" * 100) for _ in range(batch)],
                topic="events",
                partition=0,
            )
            if conditional:
                request.expected_key_offset = last[k]
            response = call(request, timeout=30)
            last[k] = response.base_offset + batch - 1
            sent += batch
            i += 1
        return sent


def one_run(writers: int, keys: int, batch: int, seconds: float, conditional: bool) -> float:
    """Records per second of one run against a fresh server."""
    with local_server("--sync", "always", prefix="replog-bench-cond-") as addr:
        with Client(addr) as client:
            client.create_topic("events", 1, config={"key_index": "true"})
        totals: list[int] = [0] * writers

        def run(w: int) -> None:
            totals[w] = _writer(addr, w, keys, batch, seconds, conditional)

        threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(totals) / (time.perf_counter() - started)


def main() -> None:
    """Parse the options, run, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--keys", type=int, default=1000, help="keys per writer")
    parser.add_argument("--batch", type=int, default=100, help="records per request")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    o = parser.parse_args()
    for conditional in (True, False):
        rates = [one_run(o.writers, o.keys, o.batch, o.seconds, conditional) for _ in range(o.runs)]
        what = "expected_key_offset" if conditional else "no condition       "
        print(
            f"{what}: median {statistics.median(rates):,.0f} records/s "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}; {o.writers} writers, "
            f"batches of {o.batch} records of one key, sync=always)"
        )


if __name__ == "__main__":
    main()
