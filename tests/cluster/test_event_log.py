"""The event log of real ``replog serve`` processes (``--log-format json``): after kill -9 of
the leader, the survivors log it unreachable and one of them the election it won, by node
name; a single node logs its start and a SIGHUP reload."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replog.cluster.members import raft_id
from tests.cluster.conftest import ProcCluster, ProcNode
from tests.integration.conftest import ServerProcess, wait_until

INFO = ("--log-level", "info")


def _lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a process's log."""
    lines = path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _events(path: Path, event: str) -> list[dict[str, Any]]:
    """The JSON event lines of ``event`` in a process's log."""
    return [doc for doc in _lines(path) if doc.get("event") == event]


def test_survivors_log_the_dead_leader_unreachable_and_the_election_won_by_name(
    direct_procs: ProcCluster,
) -> None:
    direct_procs.bootstrap(3, *INFO)
    leader = direct_procs.leader()
    assert leader is not None
    direct_procs.nodes[leader].kill()  # SIGKILL, by PID
    survivors = [n for n in direct_procs.nodes.values() if n.name != leader]

    def unreachable(node: ProcNode) -> list[dict[str, Any]]:
        return [e for e in _events(node.log_path, "node_unreachable") if e["peer"] == leader]

    def won() -> list[dict[str, Any]]:
        return [
            e
            for n in survivors
            for e in _events(n.log_path, "election_won")
            if e["group"] == "controller" and e["node"] == n.name and e["from"] == leader
        ]

    wait_until(lambda: all(unreachable(n) for n in survivors), 15, "both survivors to log it")
    (line,) = wait_until(won, 15, "a survivor to log the election it won")
    for node in survivors:
        (down,) = unreachable(node)
        assert down["node"] == node.name and down["level"] == "info"
        assert down["msg"].startswith(f"node {leader} is unreachable")
    # An election timeout (500 ms here) may end before liveness (1 s) reports the leader.
    assert line["reason"] in (None, f"{leader} was unreachable") and line["term"] >= 2
    for node in direct_procs.nodes.values():  # names, never the derived integer ids
        for doc in _lines(node.log_path):
            assert not any(str(raft_id(n)) in doc["msg"] for n in direct_procs.names), doc
    assert line["msg"].startswith("the controller group: this node won the election in term ")
    assert f"(the leader before: {leader})" in line["msg"]


def test_a_single_node_logs_its_start_and_a_sighup_reload(
    tmp_path: Path, process_factory: Callable[..., ServerProcess]
) -> None:
    node = process_factory(tmp_path / "data", "--node-id", "solo", *INFO)
    (start,) = _events(node.log_path, "start")
    assert start["node"] == "solo" and start["level"] == "info"
    assert start["grpc_addr"] == node.grpc_address and start["http_addr"] == node.http_address
    assert start["data_dir"] == str(tmp_path / "data") and start["cluster"] is None
    assert start["msg"] == (
        f"started node solo (single node): gRPC {node.grpc_address}, "
        f"HTTP {node.http_address}, data dir {tmp_path / 'data'}"
    )
    os.kill(node.proc.pid, signal.SIGHUP)
    (reload,) = wait_until(lambda: _events(node.log_path, "reload"), 10, "the reload line")
    assert reload["node"] == "solo"
    assert reload["msg"] == "SIGHUP: no ACL configured; nothing to reload"
    assert node.terminate() == 0
