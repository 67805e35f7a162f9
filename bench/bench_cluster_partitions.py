"""Partition groups on a 3-node cluster of ``replog serve`` processes (127.0.0.1,
``sync=always``), measured in one run (issue 12, "Performance"):

1. throughput: committed 100 B records/s into one topic of 6 partitions (RF 3), every
   partition loaded, against the same cluster's single-partition topic (RF 3); produces
   sent to each partition's leader, and the naive way (all to one node; followers forward);
2. idle cost: 1,000 partitions (RF 3), no traffic: CPU % of one core and RSS per node,
   and the time from the create call until every node knows a leader for every partition;
3. failover: kill -9 of the node leading the most of those partitions; for each partition it
   led, the time until a write to it is acknowledged again (p50 and max).

    make bench-cluster-partitions
    python bench/bench_cluster_partitions.py --runs 1 --idle-partitions 200 --no-write  # a look

Load: ``--clients`` client processes, each request a ``ProduceBatch`` of ``--batch``
records to one partition, ``--in-flight`` requests outstanding per partition (the
single-partition topic gets as many requests outstanding in all as the 6-partition one).
Every process is stopped by PID when the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_storage import machine, write_section

from replog.client.core import encode_batch_request, encode_record
from replog.v1 import admin_pb2, log_pb2

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
_TICKS = os.sysconf("SC_CLK_TCK")
_PRODUCE_BATCH = "/replog.v1.Log/ProduceBatch"
_GET_SERVERS = "/replog.v1.Log/GetServers"
_DESCRIBE = "/replog.v1.Admin/DescribeTopic"
_CREATE = "/replog.v1.Admin/CreateTopic"
#: How often the leaders are polled: DescribeTopic of 1,000 partitions on every node is work
#: for the servers, and polling it every few ms measured the polling.
_POLL_S = 0.25


# -- the cluster ------------------------------------------------------------------------------


@dataclass
class Node:
    """One ``replog serve`` process."""

    name: str
    proc: subprocess.Popen[bytes]
    addr: str
    channel: grpc.Channel = field(repr=False)

    def call(self, path: str, request: Any, response: Any, timeout: float = 10) -> Any:
        """One unary call to this node (no client-side routing)."""
        method = self.channel.unary_unary(
            path, request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )  # fmt: skip
        return method(request, timeout=timeout)

    def cpu_s(self) -> float:
        """User + system CPU seconds so far (``/proc/<pid>/stat``)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def rss_mib(self) -> float:
        """Resident set size now."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        """kill -9 (by PID) and reap."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.channel.close()


def _wait(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return value


class Cluster:
    """Three ``replog serve`` processes: n1 bootstraps, n2 and n3 join it."""

    def __init__(self, root: Path, extra: tuple[str, ...] = ()) -> None:
        self.root = root
        self.extra = extra
        self.nodes: dict[str, Node] = {}
        self.made: set[str] = set()

    def start(self, size: int = 3) -> Cluster:
        first = self._start("n1", "--bootstrap")
        _wait(lambda: any(s.is_leader for s in self.servers(first)), 30, "n1 to lead")
        for i in range(2, size + 1):
            self._start(f"n{i}", "--join", first.addr)
        _wait(lambda: len(self.servers(first)) == size, 60, f"{size} servers")
        return self

    def _start(self, name: str, *how: str) -> Node:
        ready = self.root / f"{name}.ready"
        cmd = [
            sys.executable, "-c", "from replog.cli.app import main; main()", "serve",
            "--data-dir", str(self.root / name), "--grpc-addr", "127.0.0.1:0",
            "--http-addr", "127.0.0.1:0", "--ready-file", str(ready), "--node-id", name,
            "--log-level", "warning", "--sync", "always", *self.extra, *how,
        ]  # fmt: skip
        log_file = open(self.root / f"{name}.log", "ab")  # noqa: SIM115  (the child's)
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=log_file)
        log_file.close()
        try:
            _wait(lambda: ready.exists() or proc.poll() is not None, 30, f"{name} to start")
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {(self.root / f'{name}.log').read_text()}")
        except BaseException:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        addr = json.loads(ready.read_text())["grpc_addr"]
        node = self.nodes[name] = Node(name, proc, addr, grpc.insecure_channel(addr))
        return node

    def servers(self, node: Node) -> list[Any]:
        try:
            response = node.call(
                _GET_SERVERS, log_pb2.GetServersRequest(), log_pb2.GetServersResponse, 2
            )
        except grpc.RpcError:
            return []
        return list(response.servers)

    def alive(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.proc.poll() is None]

    def controller_leader(self) -> Node:
        def find() -> Node | None:
            for node in self.alive():
                for s in self.servers(node):
                    if s.is_leader:
                        return next((n for n in self.alive() if n.addr == s.rpc_addr), None)
            return None

        found: Node = _wait(find, 30, "a controller leader")
        return found

    def create_topic(self, name: str, partitions: int, timeout: float = 120) -> None:
        request = admin_pb2.CreateTopicRequest(
            name=name, partitions=partitions, replication_factor=3
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                leader = self.controller_leader()
                leader.call(_CREATE, request, admin_pb2.CreateTopicResponse, timeout)
                return
            except grpc.RpcError as exc:
                # A node that joined a moment ago may not be registered yet: "larger than
                # the 2 nodes"; refused, so nothing was created.
                refused = exc.code() is grpc.StatusCode.INVALID_ARGUMENT
                if not refused or "larger than" not in str(exc.details()):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def leaders(self, topic: str) -> dict[int, dict[str, str]]:
        """partition -> (node asked -> the leader that node names, "" for none)."""
        out: dict[int, dict[str, str]] = {}
        for node in self.alive():
            try:
                info = node.call(
                    _DESCRIBE, admin_pb2.DescribeTopicRequest(name=topic),
                    admin_pb2.DescribeTopicResponse, 30,
                ).topic  # fmt: skip
            except grpc.RpcError:
                continue
            for p in info.partitions:
                out.setdefault(p.partition, {})[node.name] = p.leader
        return out

    def agreed(self, topic: str) -> dict[int, str]:
        """partition -> its leader, for the partitions every live node names one live
        leader for (the same one)."""
        alive = {n.name for n in self.alive()}
        result: dict[int, str] = {}
        for partition, seen in self.leaders(topic).items():
            names = set(seen.values())
            if set(seen) == alive and len(names) == 1 and names <= alive:
                result[partition] = names.pop()
        return result

    def agreed_leaders(self, topic: str) -> dict[int, str] | None:
        """partition -> its leader, once every live node names the same live one for each."""
        alive = {n.name for n in self.alive()}
        result: dict[int, str] = {}
        for partition, seen in self.leaders(topic).items():
            names = set(seen.values())
            if set(seen) != alive or len(names) != 1 or not names <= alive:
                return None
            result[partition] = names.pop()
        return result or None

    def stop(self) -> None:
        for node in self.nodes.values():
            node.kill()


# -- throughput -------------------------------------------------------------------------------


def _load(
    targets: list[tuple[str, str, int]], in_flight: int, batch: int, start_at: float, seconds: float
) -> tuple[int, int]:
    """A client process: ``in_flight`` threads per (address, topic, partition), each sending
    ProduceBatch requests of ``batch`` 100 B records; (records, errors) acknowledged within
    [start_at, start_at + seconds] (wall clock, shared by the processes)."""
    record = encode_record(b"x" * 100)
    counts: list[tuple[int, int]] = []
    lock = threading.Lock()
    channels = {addr: grpc.insecure_channel(addr) for addr, _, _ in targets}

    def run(addr: str, topic: str, partition: int) -> None:
        request = encode_batch_request([record] * batch, topic, partition)
        call = channels[addr].unary_unary(
            _PRODUCE_BATCH, request_serializer=None,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )  # fmt: skip
        acked = errors = 0
        end = start_at + seconds
        while time.time() < start_at - 1.0:
            time.sleep(0.01)
        while (now := time.time()) < end:
            try:
                response = call(request, timeout=10)
            except grpc.RpcError:
                errors += 1
                time.sleep(0.01)
                continue
            done = time.time()
            if now >= start_at and done <= end:
                acked += response.count
        with lock:
            counts.append((acked, errors))

    threads = [
        threading.Thread(target=run, args=t, daemon=True) for t in targets for _ in range(in_flight)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for channel in channels.values():
        channel.close()
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def throughput(
    pool: ProcessPoolExecutor,
    targets: list[tuple[str, str, int]],
    *,
    clients: int,
    in_flight: int,
    batch: int,
    seconds: float,
) -> float:
    """Committed records/s of ``targets`` spread over ``clients`` processes."""
    shares: list[list[tuple[str, str, int]]] = [[] for _ in range(clients)]
    for i, target in enumerate(targets):
        shares[i % clients].append(target)
    start_at = time.time() + 2.0  # room for the processes' threads to connect and warm up
    futures = [
        pool.submit(_load, share, in_flight, batch, start_at, seconds) for share in shares if share
    ]
    results = [f.result() for f in futures]
    errors = sum(r[1] for r in results)
    if errors:
        print(f"  ({errors} produce requests failed and were retried)")
    return sum(r[0] for r in results) / seconds


def throughput_round(
    cluster: Cluster, pool: ProcessPoolExecutor, args: argparse.Namespace
) -> dict[str, float]:
    """The three throughput figures on the running cluster (topics made on the first call)."""
    n = args.partitions
    if "one" not in cluster.made:
        cluster.create_topic("one", 1)
        cluster.create_topic("six", n)
        cluster.made.add("one")
    one = _wait(lambda: cluster.agreed_leaders("one"), 30, "a leader for 'one'", _POLL_S)
    six = _wait(lambda: cluster.agreed_leaders("six"), 30, "leaders for 'six'", _POLL_S)
    addr = {name: node.addr for name, node in cluster.nodes.items()}
    naive = cluster.nodes["n1"].addr
    kw = {"clients": args.clients, "batch": args.batch, "seconds": args.seconds}
    total = args.in_flight * n  # requests outstanding in all, the same for both topics
    cpu: dict[str, float] = {}

    def measured(what: str, targets: list[tuple[str, str, int]]) -> float:
        before = {name: node.cpu_s() for name, node in cluster.nodes.items()}
        t0 = time.monotonic()
        rate = throughput(pool, targets, in_flight=args.in_flight, **kw)
        spent = time.monotonic() - t0
        cpu[what] = sum(node.cpu_s() - before[m] for m, node in cluster.nodes.items()) / spent
        return rate

    single = measured("single", [(addr[one[0]], "one", 0)] * n)
    spread = measured("spread", [(addr[six[p]], "six", p) for p in range(n)])
    forwarded = measured("naive", [(naive, "six", p) for p in range(n)])
    leads = {name: sum(1 for v in six.values() if v == name) for name in addr}
    print(
        f"  1 partition {single:,.0f} rec/s; {n} partitions to leaders {spread:,.0f} rec/s "
        f"(leaders {leads}), all to n1 {forwarded:,.0f} rec/s; {total} requests in flight; "
        f"servers' CPU in cores {_fmt(cpu, '.2f')}"
    )
    return {"single": single, "spread": spread, "naive": forwarded} | {
        f"cpu_{k}": v for k, v in cpu.items()
    }


# -- idle cost and failover -------------------------------------------------------------------


def idle_round(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh cluster: create the partitions, measure it idle, then kill its busiest leader."""
    cluster = Cluster(root, tuple(args.serve_arg))
    try:
        cluster.start()
        base_rss = {n.name: n.rss_mib() for n in cluster.alive()}
        base_cpu = _idle_cpu(cluster, min(5.0, args.idle_seconds))
        started = time.perf_counter()
        cluster.create_topic("many", args.idle_partitions, timeout=120)
        called = time.perf_counter() - started
        deadline = started + args.create_timeout
        while len(leaders := cluster.agreed("many")) < args.idle_partitions:
            if time.perf_counter() > deadline:
                break
            time.sleep(_POLL_S)
        converged = len(leaders) == args.idle_partitions
        created = time.perf_counter() - started if converged else float("inf")
        time.sleep(2.0)  # the creation's last writes and quiescence settle
        cpu = _idle_cpu(cluster, args.idle_seconds)
        rss = {n.name: n.rss_mib() for n in cluster.alive()}
        fds = {n.name: len(os.listdir(f"/proc/{n.proc.pid}/fd")) for n in cluster.alive()}
        leads = {name: sum(1 for v in leaders.values() if v == name) for name in cluster.nodes}
        disk = _du_gib(root)
        result: dict[str, Any] = {
            "create_call_s": called, "create_s": created, "cpu": cpu, "rss": rss,
            "base_rss": base_rss, "base_cpu": base_cpu, "fds": fds, "leads": leads,
            "agreed": len(leaders), "disk_gib": disk,
        }  # fmt: skip
        print(
            f"  {args.idle_partitions} partitions: {len(leaders)} with one agreed leader, created "
            f"in {created:.1f} s (call {called:.1f} s), idle CPU {_fmt(cpu, '.1f')} %, "
            f"RSS {_fmt(rss, '.0f')} MiB, leaders {leads}, {disk:.1f} GiB on disk"
        )
        if leaders:
            result |= failover(cluster, leaders, elect_first=args.elect_first)
        return result
    finally:
        cluster.stop()


def _du_gib(path: Path) -> float:
    """Disk space allocated under ``path``."""
    total = 0
    for f in path.rglob("*"):
        with contextlib.suppress(OSError):
            if f.is_file():
                total += f.stat().st_blocks * 512
    return total / (1 << 30)


def _fmt(values: dict[str, float], spec: str) -> str:
    return " ".join(f"{k} {v:{spec}}" for k, v in sorted(values.items()))


def _idle_cpu(cluster: Cluster, seconds: float) -> dict[str, float]:
    """CPU % of one core per node over ``seconds`` of no traffic."""
    nodes = cluster.alive()
    before = [(n.cpu_s(), time.monotonic()) for n in nodes]
    time.sleep(seconds)
    return {
        n.name: 100 * (n.cpu_s() - c0) / (time.monotonic() - t0)
        for n, (c0, t0) in zip(nodes, before, strict=True)
    }


def failover(
    cluster: Cluster, leaders: dict[int, str], *, elect_first: bool = False
) -> dict[str, Any]:
    """kill -9 the node leading the most partitions; per partition it led, seconds until a
    produce to it (sent to the survivors in turn) is acknowledged. ``elect_first``: no
    produce before every one of them has a leader all survivors agree on (the time until
    then is printed): the election and the first writes measured apart."""
    counts = {name: sum(1 for v in leaders.values() if v == name) for name in cluster.nodes}
    victim = max(counts, key=lambda name: counts[name])
    led = sorted(p for p, name in leaders.items() if name == victim)
    survivors = [n.addr for n in cluster.alive() if n.name != victim]
    killed_at = time.monotonic()
    cluster.nodes[victim].kill()
    if elect_first:
        wanted = set(led)
        while not wanted <= set(cluster.agreed("many")):
            if time.monotonic() - killed_at > 60:
                break
            time.sleep(_POLL_S)
        print(f"  every partition {victim} led has an agreed leader after "
              f"{time.monotonic() - killed_at:.2f} s (polled every {_POLL_S} s)")  # fmt: skip
    times = asyncio.run(_write_again(survivors, led, killed_at))
    times.sort()
    result = {
        "victim": victim, "led": len(led), "p50_s": statistics.median(times),
        "max_s": times[-1], "p90_s": times[int(0.9 * (len(times) - 1))],
    }  # fmt: skip
    print(
        f"  kill -9 {victim} (led {len(led)}): writable again p50 {result['p50_s']:.2f} s, "
        f"p90 {result['p90_s']:.2f} s, max {result['max_s']:.2f} s"
    )
    return result


async def _write_again(addrs: list[str], partitions: list[int], since: float) -> list[float]:
    channels = [aio.insecure_channel(a) for a in addrs]
    record = encode_record(b"after the failover")
    calls = [
        c.unary_unary(
            _PRODUCE_BATCH, request_serializer=None,
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        for c in channels
    ]  # fmt: skip

    async def one(partition: int) -> float:
        request = encode_batch_request([record], "many", partition)
        attempt = 0
        while True:
            try:
                await calls[attempt % len(calls)](request, timeout=0.5)
                return time.monotonic() - since
            except grpc.RpcError:
                attempt += 1
                if time.monotonic() - since > 60:
                    return float("inf")
                await asyncio.sleep(0.02)

    try:
        return list(await asyncio.gather(*(one(p) for p in partitions)))
    finally:
        for c in channels:
            await c.close()


# -- report -----------------------------------------------------------------------------------


def _cell(values: list[float], spec: str) -> str:
    return f"{statistics.median(values):{spec}} [{min(values):{spec}}..{max(values):{spec}}]"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def section(
    args: argparse.Namespace, tput: list[dict[str, float]], idle: list[dict[str, Any]], load: str
) -> str:
    """The markdown section of the figures."""
    n, k = args.partitions, args.idle_partitions
    ratio = [r["spread"] / r["single"] for r in tput]
    ratio_naive = [r["naive"] / r["single"] for r in tput]
    cpu_max = [max(r["cpu"].values()) for r in idle]
    rss_max = [max(r["rss"].values()) for r in idle]
    create = [r["create_s"] for r in idle]
    inf = float("inf")
    p50 = [r.get("p50_s", inf) for r in idle]
    worst = [r.get("max_s", inf) for r in idle]
    per_node_cpu = {name: [r["cpu"][name] for r in idle] for name in sorted(idle[0]["cpu"])}
    per_node_rss = {name: [r["rss"][name] for r in idle] for name in sorted(idle[0]["rss"])}
    info = machine(tempfile.gettempdir())
    lines = [
        "<!-- cluster-partitions:begin -->",
        "## Partition groups on a three-node cluster",
        "",
        f"Command: `make bench-cluster-partitions` (`bench/bench_cluster_partitions.py "
        f"--runs {args.runs} --idle-runs {args.idle_runs}`), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: three "
        "`replog serve` processes on 127.0.0.1 and the clients on this one machine, "
        "`sync=always`, default timeouts (tick 100 ms x 10 election ticks, node liveness "
        "pings every 250 ms, a peer silent for 1 s is down). Medians of the runs, [min..max]. "
        f"Load average before the runs: {load}.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
        f"Throughput: a topic of 1 partition and one of {n} (RF 3) on the same cluster; "
        f"{args.clients} client processes, each request a `ProduceBatch` of {args.batch} "
        f"records of 100 B, {args.in_flight * n} requests outstanding in all for either topic "
        f'({args.in_flight} per partition of the {n}), {args.seconds:g} s each. "to leaders": '
        "each partition's requests go to its leader (found with DescribeTopic on every node); "
        '"all to n1": every request goes to n1, which forwards those of the partitions it '
        "does not lead.",
        "",
        f"Idle, creation and failover: a fresh cluster, one topic of {k:,} partitions (RF 3), "
        f"no traffic for {args.idle_seconds:g} s (CPU from `/proc/<pid>/stat`); creation runs "
        "from the CreateTopic call until every node names the same leader for every partition. "
        "Then kill -9 of the node leading the most partitions; for each partition it led, a "
        "produce of one record is retried (each attempt 0.5 s at most, 20 ms apart, the two "
        "survivors in turn) until acknowledged.",
        "",
        "| what | figure | target | |",
        "|---|---:|---:|---|",
        f"| committed rec/s, 1 partition | {_cell([r['single'] for r in tput], ',.0f')} | | |",
        f"| committed rec/s, {n} partitions, to leaders | "
        f"{_cell([r['spread'] for r in tput], ',.0f')} | | |",
        f"| committed rec/s, {n} partitions, all to n1 | "
        f"{_cell([r['naive'] for r in tput], ',.0f')} | | |",
        f"| {n} partitions ÷ 1, to leaders | {_cell(ratio, '.2f')} | >= 1.3 "
        f"| {_verdict(statistics.median(ratio) >= 1.3)} |",
        f"| {n} partitions ÷ 1, all to n1 | {_cell(ratio_naive, '.2f')} | | |",
        *[
            f"| the three servers' CPU while loaded: {what} "
            f"| {_cell([r['cpu_' + key] for r in tput], '.2f')} cores | | |"
            for key, what in (
                ("single", "1 partition"),
                ("spread", f"{n} partitions to leaders"),
                ("naive", f"{n} partitions all to n1"),
            )
        ],
        f"| create {k:,} partitions until every one has a leader | {_cell(create, '.1f')} s "
        f"| <= 30 s | {_verdict(statistics.median(create) <= 30)} |",
        f"| idle CPU, busiest node | {_cell(cpu_max, '.1f')} % of a core | <= 5 % "
        f"| {_verdict(statistics.median(cpu_max) <= 5)} |",
        *[
            f"| idle CPU, {name} | {_cell(v, '.1f')} % of a core | | |"
            for name, v in per_node_cpu.items()
        ],
        f"| idle CPU before the topic, busiest node | "
        f"{_cell([max(r['base_cpu'].values()) for r in idle], '.1f')} % of a core | | |",
        f"| RSS, largest node | {_cell(rss_max, '.0f')} MiB | <= 400 MiB "
        f"| {_verdict(statistics.median(rss_max) <= 400)} |",
        *[f"| RSS, {name} | {_cell(v, '.0f')} MiB | | |" for name, v in per_node_rss.items()],
        f"| RSS before the topic, largest node | "
        f"{_cell([max(r['base_rss'].values()) for r in idle], '.0f')} MiB | | |",
        f"| partitions with one leader all nodes agree on, at the end of the wait "
        f"({args.create_timeout:g} s at most) | {_cell([float(r['agreed']) for r in idle], '.0f')} "
        f"of {k:,} | | |",
        f"| disk allocated by the cluster | {_cell([r['disk_gib'] for r in idle], '.1f')} GiB "
        "| | |",
        f"| partitions the killed node led | "
        f"{_cell([float(r.get('led', 0)) for r in idle], '.0f')} | | |",
        f"| failover: writable again, p50 over those partitions | {_cell(p50, '.2f')} s | | |",
        f"| failover: writable again, max over those partitions | {_cell(worst, '.2f')} s "
        f"| <= 2 s | {_verdict(statistics.median(worst) <= 2)} |",
        "<!-- cluster-partitions:end -->",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the rounds, print each, write the medians to docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="throughput rounds")
    parser.add_argument("--idle-runs", type=int, default=3, help="idle + failover rounds")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--in-flight", type=int, default=2, help="requests per partition")
    parser.add_argument("--batch", type=int, default=500, help="records per request")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput figure")
    parser.add_argument("--idle-partitions", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--create-timeout", type=float, default=90.0, help="give up waiting for leaders"
    )
    parser.add_argument("--skip", default="", help="comma-separated: throughput,idle")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra serve flag")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--elect-first", action="store_true", help="failover: no writes until leaders agree"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the servers
    skip = set(filter(None, args.skip.split(",")))
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}")
    tput: list[dict[str, float]] = []
    idle: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="replog-bench-cp-") as tmp:
        root = Path(tmp)
        if "throughput" not in skip:
            cluster = Cluster(root / "tput", tuple(args.serve_arg))
            (root / "tput").mkdir()
            ctx = get_context("spawn")
            try:
                cluster.start()
                with ProcessPoolExecutor(args.clients, mp_context=ctx) as pool:
                    for _ in range(args.runs):
                        tput.append(throughput_round(cluster, pool, args))
            finally:
                cluster.stop()
        if "idle" not in skip:
            for i in range(args.idle_runs):
                (root / f"idle{i}").mkdir()
                try:
                    idle.append(idle_round(root / f"idle{i}", args))
                finally:  # ~0.2 GiB for 1,000 partitions x 3 nodes (36 GiB before 2026-12-02)
                    shutil.rmtree(root / f"idle{i}", ignore_errors=True)
    if tput and idle:
        text = section(args, tput, idle, load)
        print(text)
        if not args.no_write:
            write_section(DOCS, text, "cluster-partitions")
    else:
        print(json.dumps({"throughput": tput, "idle": idle}, indent=1, default=str))


if __name__ == "__main__":
    main()
