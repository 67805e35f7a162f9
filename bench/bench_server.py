"""Server benchmarks: producer (send, send_many), stream consume, HTTP batch, produce latency.

Runs ``replog serve`` (sync=always) in a subprocess on a temporary directory and prints the
median of ``--runs`` runs for each figure. Usage:

    .venv/bin/python bench/bench_server.py [--records 300000] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from replog import Client, Producer
from replog.errors import UnavailableError

VALUE = b"x" * 100


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    ready = data.parent / "ready.json"
    cmd = [
        sys.executable,
        "-c",
        "from replog.cli.app import main; main()",
        "serve",
        "--data-dir",
        str(data),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--sync",
        "always",
        "--ready-file",
        str(ready),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("server did not start")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    return proc, info["grpc_addr"], info["http_addr"]


def bench_producer(addr: str, n: int) -> float:
    with (
        Client(addr) as client,
        Producer(client, linger_ms=5, max_batch_records=10_000, max_in_flight=4) as producer,
    ):
        start = time.perf_counter()
        last = None
        for _ in range(n):
            last = producer.send(VALUE)
        producer.flush()
        assert last is not None and last.result() >= 0
        return n / (time.perf_counter() - start)


def bench_producer_many(addr: str, n: int, chunk: int = 1000) -> float:
    """The same as bench_producer, queueing ``chunk`` values per ``send_many`` call."""
    values = [VALUE] * chunk
    with (
        Client(addr) as client,
        Producer(client, linger_ms=5, max_batch_records=10_000, max_in_flight=4) as producer,
    ):
        start = time.perf_counter()
        futures = []
        for _ in range(n // chunk):
            futures = producer.send_many(values)
        producer.flush()
        assert futures and futures[-1].result() >= 0
        return n // chunk * chunk / (time.perf_counter() - start)


def bench_stream(addr: str, n: int) -> float:
    with Client(addr) as client:
        start = time.perf_counter()
        seen = 0
        batches = client.stream_batches(0, max_records=10_000)
        for batch in batches:
            seen += len(batch.records)
            if seen >= n:
                break
        batches.close()
        return seen / (time.perf_counter() - start)


def bench_http(addr: str, n: int, batch: int = 2000, threads: int = 2) -> float:
    host, port = addr.rsplit(":", 1)
    body = json.dumps({"records": [{"value": base64.b64encode(VALUE).decode()}] * batch}).encode()
    per_thread = n // (batch * threads)

    def work() -> None:
        conn = http.client.HTTPConnection(host, int(port))
        for _ in range(per_thread):
            conn.request("POST", "/v1/records:batch", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        conn.close()

    start = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per_thread * batch * threads / (time.perf_counter() - start)


def bench_latency(addr: str, n: int = 2000) -> tuple[float, float]:
    with Client(addr) as client:
        for _ in range(50):
            client.produce(VALUE)
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            client.produce(VALUE)
            samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2] * 1000, samples[int(len(samples) * 0.99)] * 1000


def one_run(records: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, grpc_addr, http_addr = start_server(Path(tmp) / "data")
        try:
            result = {"producer_rps": bench_producer(grpc_addr, records)}
            result["stream_rps"] = bench_stream(grpc_addr, records)
            result["http_batch_rps"] = bench_http(http_addr, records // 2)
            result["produce_p50_ms"], result["produce_p99_ms"] = bench_latency(grpc_addr)
            result["send_many_rps"] = bench_producer_many(grpc_addr, records)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(60)
    return result


# (figure key, what it is, unit, target, True when higher is better)
FIGURES = [
    ("producer_rps", "batching `Producer.send`, 100 B records", "rec/s", 300_000, True),
    ("send_many_rps", "batching `Producer.send_many` (chunks of 1,000)", "rec/s", None, True),
    ("stream_rps", "`ConsumeBatchStream` through `Client.stream`", "rec/s", 500_000, True),
    (
        "http_batch_rps",
        "HTTP `POST /v1/records:batch` (2 threads, 2,000/request)",
        "rec/s",
        100_000,
        True,
    ),
    ("produce_p50_ms", "single unbatched `produce` p50 (light load)", "ms", 2.0, False),
    ("produce_p99_ms", "single unbatched `produce` p99 (light load)", "ms", 10.0, False),
]


def render(runs: list[dict[str, float]], records: int) -> str:
    """The server section of docs/benchmarks.md: medians with min..max and the targets."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_storage import machine

    info = machine(tempfile.gettempdir())
    lines = [
        "<!-- server:begin -->",
        "## Single-node server",
        "",
        f"Command: `make bench-server` (`bench/bench_server.py --records {records:,} "
        f"--runs {len(runs)}`): one `replog serve` subprocess, `sync=always`, 100 B values, "
        "client and server on the same machine. Medians of the runs, [min..max].",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items() if key != "filesystem"],
        "",
        "| what | figure | target | |",
        "|---|---:|---:|---|",
    ]
    for key, what, unit, target, higher in FIGURES:
        values = [run[key] for run in runs]
        fmt = ",.0f" if unit == "rec/s" else ".2f"
        figure = (
            f"{statistics.median(values):{fmt}} [{min(values):{fmt}}..{max(values):{fmt}}] {unit}"
        )
        if target is None:
            lines.append(f"| {what} | {figure} | | |")
            continue
        median = statistics.median(values)
        ok = median >= target if higher else median <= target
        bound = f">= {target:,}" if higher else f"<= {target}"
        lines.append(f"| {what} | {figure} | {bound} {unit} | {'pass' if ok else '**miss**'} |")
    lines.append("<!-- server:end -->")
    return "\n".join(lines)


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def soak(seconds: float, rate: int = 20_000, sample_s: float = 10.0) -> str:
    """Produce ``rate`` records/s and tail them for ``seconds``, sampling the server's RSS.

    Returns the markdown lines of the soak section (RSS at start, after warm-up, max, end).
    """
    with tempfile.TemporaryDirectory() as tmp:
        proc, grpc_addr, _ = start_server(Path(tmp) / "data")
        stop = threading.Event()
        consumed = [0]

        def consume() -> None:
            with Client(grpc_addr) as client:
                batches = client.stream_batches(0, max_records=10_000)
                try:
                    for batch in batches:
                        consumed[0] += len(batch.records)
                        if stop.is_set():
                            break
                except UnavailableError:
                    if not stop.is_set():
                        raise
                batches.close()

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        samples: list[tuple[float, float]] = []
        produced = 0
        try:
            with Client(grpc_addr) as client, Producer(client, linger_ms=5) as producer:
                start = time.monotonic()
                next_sample = start
                while (now := time.monotonic()) - start < seconds:
                    due = int((now - start) * rate) - produced
                    if due > 0:
                        producer.send_many([VALUE] * due)
                        produced += due
                    if now >= next_sample:
                        samples.append((now - start, _rss_mib(proc.pid)))
                        next_sample += sample_s
                    time.sleep(0.01)  # pacing the load generator, not synchronisation
                producer.flush()
            samples.append((time.monotonic() - start, _rss_mib(proc.pid)))
        finally:
            stop.set()
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(60)
            reader.join(10)
    warm = [rss for t, rss in samples if t >= 60] or [samples[-1][1]]
    return (
        f"Soak: `bench/bench_server.py --soak-seconds {seconds:.0f}` — {rate:,} records/s "
        f"produced and tailed for {seconds / 60:.0f} min ({produced:,} records, "
        f"{consumed[0]:,} consumed). Server RSS: {samples[0][1]:.1f} MiB at start, "
        f"{warm[0]:.1f} MiB after 1 min, max {max(r for _, r in samples):.1f} MiB, "
        f"{samples[-1][1]:.1f} MiB at the end ({len(samples)} samples)."
    )


def main() -> None:
    """Run the benchmarks, print every run and write the medians to docs/benchmarks.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--soak-seconds", type=float, help="instead: a steady load, sampling server RSS"
    )
    args = parser.parse_args()
    if args.soak_seconds:
        line = soak(args.soak_seconds)
        print(line)
        if not args.no_write:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_storage import DOCS, write_section

            write_section(DOCS, f"<!-- soak:begin -->\n{line}\n<!-- soak:end -->", "soak")
        return
    runs = [one_run(args.records) for _ in range(args.runs)]
    for run in runs:
        print(json.dumps({k: round(v, 2) for k, v in run.items()}))
    section = render(runs, args.records)
    print(section)
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_storage import DOCS, write_section

        write_section(DOCS, section, "server")


if __name__ == "__main__":
    main()
