"""What node liveness costs an idle cluster.

``pings``: three nodes' transports (gRPC server + inbox + RaftTransport each) in this process
with no Raft group at all, so only liveness pings flow: CPU % of this process (all threads,
``time.process_time``) over ``--seconds`` and the pings received per second.
``cluster``: three idle ``replog serve`` processes (bootstrap + 2 joins): the CPU % of each,
from /proc, over ``--seconds``. Run it with ``PYTHONPATH`` on two checkouts to compare.

    PYTHONPATH=src python bench/bench_liveness.py pings --seconds 20
    PYTHONPATH=src python bench/bench_liveness.py cluster --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

from bench_cluster import _leader, _start, _wait  # bench/ is on sys.path when run as a script
from grpc import aio

from replog.client import Client
from replog.cluster.inbox import Inbox
from replog.cluster.members import AddressBook, raft_id
from replog.cluster.transport import RAFT_SERVICE, RaftTransport
from replog.v1 import raft_pb2


async def _pings(seconds: float, interval_ms: int) -> None:
    import grpc

    root = Path(tempfile.mkdtemp())
    names = ["n1", "n2", "n3"]
    received = [0]
    parts = []
    for name in names:
        book = AddressBook(root / f"{name}.json")
        inbox = Inbox(raft_id(name), "c", book)
        own = raft_id(name)
        transport = RaftTransport(
            name=name,
            addr="",
            resolve=book.address,
            cluster_id="c",
            peers=lambda own=own: [raft_id(n) for n in names if raft_id(n) != own],
            liveness_interval_s=interval_ms / 1000,
        )
        inbox.on_heard = transport.heard

        async def stream(requests, context, inbox=inbox):  # type: ignore[no-untyped-def]
            async for batch in requests:
                received[0] += 1
                inbox.receive(batch)
            return raft_pb2.RaftAck()

        server = aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            RAFT_SERVICE,
            {"Stream": grpc.stream_unary_rpc_method_handler(
                stream,
                request_deserializer=raft_pb2.RaftBatch.FromString,
                response_serializer=raft_pb2.RaftAck.SerializeToString,
            )},
        ),))  # fmt: skip
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        transport.addr = f"127.0.0.1:{port}"
        parts.append((name, book, transport, server))
    for _, book, _, _ in parts:
        for name, _, transport, _ in parts:
            book.set(name, transport.addr)
    for _, _, transport, _ in parts:
        transport.start()
    await asyncio.sleep(2)  # warm up: streams open
    cpu, wall, before = time.process_time(), time.monotonic(), received[0]
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    live = all(t.live(raft_id(n)) for _, _, t, _ in parts for n in names if n != t.name)
    print(
        f"pings only, 3 nodes in one process, interval {interval_ms} ms: "
        f"CPU {100 * cpu / wall:.2f} % of one core for all three "
        f"({100 * cpu / wall / 3:.2f} % per node), {(received[0] - before) / wall:.1f} "
        f"pings/s received, all live: {live}"
    )
    for _, _, transport, server in parts:
        await transport.close()
        await server.stop(None)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cluster(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        procs = {}
        try:
            procs["n1"], a1 = _start(root, "n1", "--bootstrap")
            _wait(lambda: _leader(a1))
            for n in ("n2", "n3"):
                procs[n], _ = _start(root, n, "--join", a1)
            with Client(a1) as c:
                _wait(lambda: len(c.servers()) == 3)
            time.sleep(3)  # settle: joins, promotions, catch-up done
            start = {n: _cpu_s(p.pid) for n, p in procs.items()}
            wall = time.monotonic()
            time.sleep(seconds)
            wall = time.monotonic() - wall
            cpu = {n: 100 * (_cpu_s(p.pid) - start[n]) / wall for n, p in procs.items()}
            shown = ", ".join(f"{n} {v:.2f} %" for n, v in cpu.items())
            print(f"idle 3-node cluster over {wall:.0f} s: CPU per process {shown}")
        finally:
            for p in procs.values():
                os.kill(p.pid, signal.SIGTERM)
            for p in procs.values():
                p.wait(timeout=30)


def main() -> None:
    """Run the measurement named on the command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["pings", "cluster"])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--interval-ms", type=int, default=250)
    args = parser.parse_args()
    if args.mode == "pings":
        asyncio.run(_pings(args.seconds, args.interval_ms))
    else:
        _cluster(args.seconds)


if __name__ == "__main__":
    main()
