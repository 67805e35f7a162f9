"""The Producer's records per second: keyed on several partitions, or keyless on one.

Starts one ``replog serve`` (a temporary data directory, 127.0.0.1, ``--sync never`` so
the producer's batching, not the disk, is measured), creates a topic of ``--partitions``
partitions and sends ``--records`` records of ``--size`` bytes, each with its own key (so
consecutive records go to different partitions), then flushes; ``--keyless`` sends
records without a key to the default topic instead. ``--idempotence on|off|both``: the
idempotent ordered producer (the default), ``enable_idempotence=False``, or both on the
same server in each run (alternating which goes first). Prints the median of ``--runs``
runs. Run: ``python bench/bench_producer_keys.py`` (``PYTHONPATH`` chooses the code
measured; code without ``enable_idempotence`` is measured as it is).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

from local_server import local_server  # bench/ is on sys.path (run as a script)

from replog.client import Client, Producer


def _measure(client: Client, args: argparse.Namespace, idempotent: bool) -> float:
    """Records per second of one producer on a running server."""
    value = b"x" * args.size
    options = {"topic": "" if args.keyless else "keys"}
    if "enable_idempotence" in inspect.signature(Producer).parameters:
        options["enable_idempotence"] = idempotent
    with Producer(client, **options) as producer:  # type: ignore[arg-type]
        started = time.perf_counter()
        if args.keyless:
            futures = [producer.send(value) for _ in range(args.records)]
        else:
            futures = [producer.send(value, b"key-%d" % i) for i in range(args.records)]
        producer.flush()
        took = time.perf_counter() - started
    failed = sum(f.exception() is not None for f in futures)
    if failed:
        raise SystemExit(f"{failed} records failed")
    return args.records / took


def one_run(args: argparse.Namespace, modes: list[bool]) -> dict[bool, float]:
    """Records per second of each mode (idempotent or not) against one fresh server."""
    with (
        local_server("--sync", "never", prefix="replog-bench-keys-") as addr,
        Client(addr) as client,
    ):
        if not args.keyless:
            client.create_topic("keys", args.partitions)
        return {mode: _measure(client, args, mode) for mode in modes}


def main() -> None:
    """Measure and print the median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keyless", action="store_true")
    parser.add_argument("--idempotence", choices=("on", "off", "both"), default="both")
    a = parser.parse_args()
    modes = {"on": [True], "off": [False], "both": [True, False]}[a.idempotence]
    rates: dict[bool, list[float]] = {mode: [] for mode in modes}
    for run in range(a.runs):
        order = modes if run % 2 == 0 else modes[::-1]
        for mode, rate in one_run(a, order).items():
            rates[mode].append(rate)
    what = "keyless, default topic" if a.keyless else f"keyed, {a.partitions} partitions"
    for mode, got in rates.items():
        print(
            f"producer ({what}), idempotence {'on ' if mode else 'off'}, {a.records} x {a.size}"
            f" B: median {statistics.median(got):,.0f} rec/s"
            f" (runs: {', '.join(f'{r:,.0f}' for r in got)})"
        )
    if len(rates) == 2:
        ratio = statistics.median(rates[True]) / statistics.median(rates[False])
        print(f"idempotent / not idempotent: {ratio:.1%} (target >= 95%)")


if __name__ == "__main__":
    main()
