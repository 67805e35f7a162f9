"""The servers bench_peers.py compares: how each is started on 127.0.0.1, and what its
acknowledgement means. Every starter appends the processes it started to ``procs`` before
waiting on them, so the caller's ``finally`` stops them by PID even if startup fails."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers_setup import LOOPBACK, Proc, free_port, port_open, start, wait_for

Starter = Callable[[Path, list[Proc]], dict[str, Any]]


@dataclass(frozen=True)
class System:
    """One row of the comparison: a system in one durability setting and topology."""

    key: str
    family: str  # "replog", "redis" or "nats": which worker and which peer install
    label: str
    nodes: int
    durability: str  # what an acknowledgement means, in words
    synced: bool  # True when the ack waits for fsync/fdatasync
    start: Starter


# -- replog ------------------------------------------------------------------------------------

REPLOG = [sys.executable, "-c", "from replog.cli.app import main; main()", "serve"]


def _replog_node(
    tmp: Path, procs: list[Proc], name: str, sync: str, *extra: str, wait: bool = True
) -> str:
    ready = tmp / f"{name}.ready.json"
    cmd = [
        *REPLOG,
        "--data-dir",
        str(tmp / name),
        "--grpc-addr",
        f"{LOOPBACK}:0",
        "--http-addr",
        f"{LOOPBACK}:0",
        "--sync",
        sync,
        "--ready-file",
        str(ready),
        "--log-level",
        "warning",
        *extra,
    ]
    proc = start(f"replog {name}", cmd, tmp / f"{name}.log")
    procs.append(proc)
    if not wait:
        return ""
    wait_for(ready.exists, 60, f"replog {name} to listen", [proc])
    # the file may be seen before its content is complete
    info = wait_for(lambda: json.loads(ready.read_text()), 10, f"{name}'s ready file", [proc])
    return str(info["grpc_addr"])


def replog_single(sync: str) -> Starter:
    def go(tmp: Path, procs: list[Proc]) -> dict[str, Any]:
        return {"addr": _replog_node(tmp, procs, "n1", sync)}

    return go


def replog_cluster(sync: str) -> Starter:
    """n1 bootstraps a cluster, n2 and n3 join it; clients talk to the leader (n1)."""

    def go(tmp: Path, procs: list[Proc]) -> dict[str, Any]:
        from replog import Client

        leader = _replog_node(tmp, procs, "n1", sync, "--node-id", "n1", "--bootstrap")
        with Client(leader, timeout=5) as client:
            wait_for(lambda: client.servers()[0].is_leader, 30, "n1 to lead", procs)
            for name in ("n2", "n3"):  # both start before the membership is waited on
                _replog_node(
                    tmp, procs, name, sync, "--node-id", name, "--join", leader, wait=False
                )
            # Three *voters*: a learner's promotion during the run would put a control record
            # (a configuration entry) among the measured records.
            wait_for(
                lambda: sum(s.is_voter for s in client.servers()) == 3,
                60,
                "three voters",
                procs,
            )
            wait_for(lambda: client.produce(b"ready") >= 0, 30, "a replicated produce", procs)
        return {"addr": leader}

    return go


# -- Redis -------------------------------------------------------------------------------------


def redis_server(fsync: str) -> Starter:
    """One redis-server, AOF on with ``appendfsync fsync``, RDB snapshots off."""

    def go(tmp: Path, procs: list[Proc]) -> dict[str, Any]:
        port = free_port()
        data = tmp / "redis"
        data.mkdir()
        cmd = [
            "redis-server",
            "--bind",
            LOOPBACK,
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        proc = start("redis-server", cmd, tmp / "redis.log")
        procs.append(proc)
        wait_for(lambda: port_open(port), 30, "redis-server to listen", [proc])
        return {"host": LOOPBACK, "port": port}

    return go


# -- NATS --------------------------------------------------------------------------------------


def nats_servers(count: int) -> Starter:
    """``count`` nats-servers with JetStream (file store); with more than one, a cluster
    whose routes are all on 127.0.0.1."""

    def go(tmp: Path, procs: list[Proc]) -> dict[str, Any]:
        ports = [free_port() for _ in range(count)]
        routes = [free_port() for _ in range(count)]
        for i in range(count):
            name = f"s{i + 1}"
            store = tmp / name
            store.mkdir()
            lines = [
                f'server_name: "{name}"',
                f'listen: "{LOOPBACK}:{ports[i]}"',
                f'jetstream {{ store_dir: "{store}" }}',
            ]
            if count > 1:
                others = ", ".join(
                    f'"nats-route://{LOOPBACK}:{r}"' for j, r in enumerate(routes) if j != i
                )
                lines.append(
                    f'cluster {{ name: "bench", listen: "{LOOPBACK}:{routes[i]}", '
                    f"routes: [{others}] }}"
                )
            conf = tmp / f"{name}.conf"
            conf.write_text("\n".join(lines) + "\n")
            procs.append(
                start(f"nats-server {name}", ["nats-server", "-c", str(conf)], tmp / f"{name}.log")
            )
        for port in ports:
            wait_for(lambda port=port: port_open(port), 30, "nats-server to listen", procs)
        time.sleep(0.2 if count == 1 else 1.0)  # routes connect; the worker retries anyway
        return {"servers": [f"nats://{LOOPBACK}:{p}" for p in ports], "replicas": count}

    return go


NATS_DURABILITY = (
    "ack after the write to the leader's file (page cache); nats-server 2.9.10 has no "
    "`sync_always`: the store is fsynced by a background timer"
)

SYSTEMS = [
    System(
        "replog-always",
        "replog",
        "replog sync=always",
        1,
        "ack after fdatasync (group commit)",
        True,
        replog_single("always"),
    ),
    System(
        "replog-never",
        "replog",
        "replog sync=never",
        1,
        "ack after write() to the page cache; no fsync",
        False,
        replog_single("never"),
    ),
    System(
        "redis-always",
        "redis",
        "Redis AOF appendfsync always",
        1,
        "ack after AOF write + fsync (one fsync per event-loop pass serves a whole pipeline)",
        True,
        redis_server("always"),
    ),
    System(
        "redis-everysec",
        "redis",
        "Redis AOF appendfsync everysec",
        1,
        "ack after write() of the AOF; fsync every 1 s (power loss can lose ~1 s of acks)",
        False,
        redis_server("everysec"),
    ),
    System(
        "nats-r1",
        "nats",
        "NATS JetStream R1 (file)",
        1,
        NATS_DURABILITY,
        False,
        nats_servers(1),
    ),
    System(
        "replog3-always",
        "replog",
        "replog 3 nodes sync=always",
        3,
        "ack after a majority (2 of 3) fdatasync'd (Raft commit)",
        True,
        replog_cluster("always"),
    ),
    System(
        "replog3-never",
        "replog",
        "replog 3 nodes sync=never",
        3,
        "ack after a majority (2 of 3) wrote to the page cache; no fsync",
        False,
        replog_cluster("never"),
    ),
    System(
        "nats-r3",
        "nats",
        "NATS JetStream R3 (file, 3 servers)",
        3,
        "ack after a majority (2 of 3) of replicas wrote to the page cache; no per-ack fsync",
        False,
        nats_servers(3),
    ),
]


def like_for_like(system: System) -> tuple[str, str]:
    """The replog rows a peer row is compared with: (synced, unsynced) of its topology."""
    if system.nodes == 1:
        return "replog-always", "replog-never"
    return "replog3-always", "replog3-never"
