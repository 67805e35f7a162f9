"""Benchmark the keyed partitioner: ``partition_for_key`` (Kafka's murmur2) records per second.

Pure CPU on one core, no I/O; keys are random bytes of ``--key-bytes`` length. Rates are per
second of this process's CPU time (``time.process_time``), so other work on a shared machine
slows them less than it would wall-clock rates.

    PYTHONPATH=src python bench/bench_partitioner.py --key-bytes 16 --keys 100000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from replog.broker.partitioner import murmur2, partition_for_key


def _rate(keys: list[bytes], partitions: int, *, hash_only: bool) -> float:
    start = time.process_time()
    if hash_only:
        for key in keys:
            murmur2(key)
    else:
        for key in keys:
            partition_for_key(key, partitions)
    return len(keys) / (time.process_time() - start)


def main() -> None:
    """Print murmur2 and partition_for_key rates (median of ``--runs``) as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key-bytes", type=int, default=16)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    keys = [os.urandom(args.key_bytes) for _ in range(args.keys)]
    result = {"key_bytes": args.key_bytes, "keys": args.keys}
    for name, hash_only in (("murmur2_per_s", True), ("partition_for_key_per_s", False)):
        rates = [_rate(keys, args.partitions, hash_only=hash_only) for _ in range(args.runs)]
        result[name] = round(statistics.median(rates))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
