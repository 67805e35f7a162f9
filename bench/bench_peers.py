"""replog against the systems users would pick instead: Redis Streams and NATS JetStream.

    .venv/bin/python bench/bench_peers.py            # full run (~15 min): installs missing
                                                     # peers, writes docs/benchmarks.md + docs/img
    .venv/bin/python bench/bench_peers.py --quick    # small counts, 1 run, temp output, no installs
                                                     # (a smoke run of the harness, no figures)

Every system runs on 127.0.0.1 in a fresh temporary directory with fresh ports, once per
(value size, run); every server is stopped by PID in a ``finally`` block. The client side of
each run is a fresh subprocess (``--worker``) so one system's client library and garbage do
not slow the next. The machine's own limits (sequential write, fdatasync/s, loopback round
trip) are measured in the same run. Figures are medians over ``--runs`` runs. Only the text
between ``<!-- peers:begin -->`` and ``<!-- peers:end -->`` of the output file is replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_setup import Proc, ensure_peer, have_module, running, versions
from peers_systems import SYSTEMS, System

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Plan:
    runs: int
    records: int  # produced, then consumed, per (system, size, run)
    latency_records: int  # one-at-a-time produces per (system, size, run)
    sizes: tuple[int, ...]
    worker_timeout_s: float
    warmup: int = 200  # untimed one-at-a-time produces before the timed ones
    raft_tick_ms: int | None = None  # replog nodes' Raft tick (None: the server's default)


FULL = Plan(runs=3, records=100_000, latency_records=5_000, sizes=(100, 1024), worker_timeout_s=600)
# --quick checks that the harness works, not how fast anything is: tiny counts, and the 50 ms
# Raft tick of the test suite's clusters so elections and graceful stops take a fraction of
# the default's (an election timeout of 0.5 s instead of 1 s).
QUICK = Plan(
    runs=1,
    records=500,
    latency_records=50,
    sizes=(100,),
    worker_timeout_s=60,
    warmup=20,
    raft_tick_ms=50,
)


def run_worker(family: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The client side of one run, in a fresh interpreter; its JSON result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps({"family": family, **spec})],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{family} worker failed: {proc.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def one_run(system: System, size: int, plan: Plan, scratch: Path) -> dict[str, Any]:
    """Start the system's servers, run the workloads against them, stop them by PID."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{system.key}-", dir=scratch))
    procs: list[Proc] = []
    try:
        with running(procs):
            endpoint = system.start(tmp, procs)
            spec = {
                **endpoint,
                "value_bytes": size,
                "records": plan.records,
                "latency_records": plan.latency_records,
                "warmup": plan.warmup,
            }
            return run_worker(system.family, spec, plan.worker_timeout_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(
    systems: list[System], plan: Plan, install: bool, scratch: Path, say: Any
) -> dict[str, Any]:
    """``{key: {"runs": {size: [result, ...]}} | {"skipped": reason}}`` for every system."""
    results: dict[str, Any] = {}
    ready: dict[str, str] = {"replog": ""}
    updated = [False]
    for system in systems:
        if system.family not in ready:
            ready[system.family] = ensure_peer(system.family, install, say, updated)
        if ready[system.family]:
            results[system.key] = {"skipped": ready[system.family]}
            say(f"{system.label}: skipped: {ready[system.family]}")
            continue
        runs: dict[int, list[dict[str, Any]]] = {}
        try:
            for size in plan.sizes:
                runs[size] = []
                for run in range(plan.runs):
                    started = time.perf_counter()
                    result = one_run(system, size, plan, scratch)
                    runs[size].append(result)
                    say(
                        f"{system.label:<36} {size:>5} B run {run + 1}: "
                        + " ".join(f"{k}={v:,.2f}" for k, v in result.items())
                        + f" ({time.perf_counter() - started:.1f} s)"
                    )
        except Exception as exc:  # one failing system must not lose the others' figures
            reason = f"failed: {str(exc).strip().splitlines()[-1][:300]}"
            say(f"{system.label}: {reason}")
            results[system.key] = {"skipped": reason}
            continue
        results[system.key] = {"runs": runs}
    return results


def machine_limits(scratch: Path, runs: int, quick: bool) -> dict[str, list[float]]:
    from peers_machine import limits

    samples = [limits(scratch / "machine", quick) for _ in range(runs)]
    return {key: [s[key] for s in samples] for key in samples[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts, 1 run, temp output")
    parser.add_argument("--out", help="markdown file to update (default: docs/benchmarks.md)")
    parser.add_argument("--img-dir", help="where the PNGs go (default: img/ beside --out)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; 1 with --quick)")
    parser.add_argument("--records", type=int, help="records per produce/consume run")
    parser.add_argument("--latency-records", type=int, help="one-at-a-time produces per run")
    parser.add_argument(
        "--systems",
        help="comma-separated keys (default: all): " + ", ".join(s.key for s in SYSTEMS),
    )
    parser.add_argument("--no-install", action="store_true", help="skip missing peers")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        from peers_workloads import WORKERS

        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["family"]](spec)), flush=True)
        return 0

    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop every server by PID
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = QUICK if args.quick else FULL
    overrides = {
        "runs": args.runs,
        "records": args.records,
        "latency_records": args.latency_records,
    }
    plan = Plan(**{**asdict(plan), **{k: v for k, v in overrides.items() if v}})
    install = not (args.quick or args.no_install)
    if plan.raft_tick_ms is not None:  # the replog servers started below inherit it
        os.environ["REPLOG_RAFT_TICK_MS"] = str(plan.raft_tick_ms)
    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="replog-peers-")) / "benchmarks.md"
    else:
        out = DOCS
    img_dir = Path(args.img_dir) if args.img_dir else out.parent / "img"
    wanted = set(args.systems.split(",")) if args.systems else None
    systems = [s for s in SYSTEMS if wanted is None or s.key in wanted]
    if install and not have_module("matplotlib"):
        print("matplotlib missing: pip install matplotlib", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"],
            check=False,
            timeout=600,
        )

    def say(text: str) -> None:
        print(text, flush=True)

    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="replog-peers-bench-"))  # honours TMPDIR
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_storage import machine

        info = machine(str(scratch))
        say("measuring the machine's limits ...")
        limits = machine_limits(scratch, plan.runs, args.quick)
        say("  " + json.dumps({k: round(statistics.median(v), 1) for k, v in limits.items()}))
        results = measure(systems, plan, install, scratch, say)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    from bench_storage import write_section
    from peers_report import charts, render

    command = "make bench" if not args.quick else "bench/bench_peers.py --quick"
    figures = charts(results, systems, plan.sizes, img_dir, say)
    rel = os.path.relpath(img_dir, out.parent)
    section = render(
        results=results,
        systems=systems,
        plan=plan,
        info=info,
        versions=versions(),
        limits=limits,
        command=command,
        quick=args.quick,
        figures=[f"{rel}/{name}" for name in figures],
    )
    write_section(out, section, "peers")
    say(f"wrote {out} and {len(figures)} chart(s) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
