"""Real replicated clusters on ephemeral 127.0.0.1 ports: in-process nodes (own thread + loop)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replog.cluster.cluster_node import ClusterNode
from tests.integration.conftest import ThreadedServer, process_factory, wait_until

FAST = {"raft_tick_ms": 50, "election_ticks": 10}


class Node(ThreadedServer):
    """A cluster member; ``name`` is its node id."""

    def __init__(self, data_dir: Path, name: str, **settings: Any) -> None:
        super().__init__(data_dir, server_id=name, **FAST, **settings)
        self.name = name

    @property
    def cluster(self) -> ClusterNode:
        assert self.agent is not None and self.agent.cluster is not None
        return self.agent.cluster

    @property
    def running(self) -> bool:
        return self.loop is not None

    def is_leader(self) -> bool:
        return self.running and self.cluster.node.is_leader

    def hears_from(self, other: Node) -> bool:
        return self.running and other.cluster.id in self.cluster.node.last_contact

    def is_voter(self, other: Node) -> bool:
        return self.cluster.id != 0 and other.cluster.id in self.cluster.node.raft.config.voters

    def stop_without_hand_over(self) -> None:
        """Stop like a crash (minus the lost page cache): leadership is not handed over."""
        if self.running:

            async def no_transfer(*_: Any, **__: Any) -> None:
                return None

            self.cluster.shutdown_transfer = no_transfer  # type: ignore[method-assign]
        self.stop()


class Cluster:
    """Nodes of one cluster; every started node is stopped by the fixture."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[Node] = []

    def start_node(self, name: str, **settings: Any) -> Node:
        node = Node(self.root / name, name, **settings)
        self.nodes.append(node)
        return node.start()  # type: ignore[return-value]

    def bootstrap(self, size: int = 3, **settings: Any) -> list[Node]:
        first = self.start_node("n1", bootstrap=True, **settings)
        wait_until(first.is_leader, 10, "n1 to lead")
        for i in range(2, size + 1):
            self.join(f"n{i}", **settings)
        return self.nodes

    def join(self, name: str, **settings: Any) -> Node:
        node = self.start_node(name, join=self.leader().grpc_address, **settings)
        wait_until(lambda: self.leader().is_voter(node), 20, f"{name} to become a voter")
        # A learner may be promoted before it answered anything (a short log is "caught
        # up" at match 0), and it drops Raft traffic until its join is answered.
        wait_until(lambda: self.leader().hears_from(node), 20, f"{name} to answer the leader")
        return node

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.running]

    def leader(self, timeout: float = 10) -> Node:
        def find() -> Node | None:
            leaders = [n for n in self.running() if n.is_leader()]
            return leaders[0] if len(leaders) == 1 else None

        node: Node = wait_until(find, timeout, "a single leader")
        return node

    def followers(self) -> list[Node]:
        leader = self.leader()
        return [n for n in self.running() if n is not leader]

    def stop_all(self) -> None:
        """Stop every node, gracefully, but without a hand-over that cannot succeed: a node
        that leads groups, each with other voters and none of them still running, stops
        without trying (each try would wait out an election timeout per stopped voter, and
        the wait for its producers' entries could not end sooner: nothing can commit)."""
        for node in self.nodes:
            if node.running and node.agent is not None and not self._can_hand_over(node):
                node.stop_without_hand_over()
            else:
                node.stop()

    def _can_hand_over(self, node: Node) -> bool:
        member = node.agent.cluster if node.agent is not None else None
        if member is None:
            return True
        running = {n.cluster.id for n in self.running() if n is not node}
        hosted = list(member.topics_host.partitions.hosted.values())  # one step: its loop runs
        groups = [member.node, *(h.node for h in hosted)]
        led = [g.raft.config.voters - {member.id} for g in groups if g.is_leader]
        # a voter to hand over to, or a group that commits on its own (or nothing led)
        return not led or any(not others or others & running for others in led)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop_all()


@pytest.fixture
def three(cluster: Cluster) -> Cluster:
    cluster.bootstrap(3)
    return cluster


__all__ = ["Cluster", "Node", "process_factory", "wait_until"]
_: Callable[..., Any] = wait_until


# == Real-process clusters behind a partitionable network (issue #6, test_faults*.py) ========
# Appended section: ``replog serve`` subprocesses whose node-to-node traffic goes through
# tests/cluster/proxy.py (one egress proxy per node, via ``grpc_proxy``). Every process is
# killed by PID (SIGCONT first, in case it was stopped) and the proxy stopped in the
# fixture's finalizer, even when the test fails.

import json as _json  # noqa: E402
import os as _os  # noqa: E402
import signal as _signal  # noqa: E402
import subprocess as _subprocess  # noqa: E402
import sys as _sys  # noqa: E402
import time as _time  # noqa: E402

import grpc as _grpc  # noqa: E402

from replog.v1 import cluster_pb2 as _cluster_pb2  # noqa: E402
from tests.cluster.proxy import NetProxy  # noqa: E402

PROC_TICK_MS = 50
PROC_ELECTION_TICKS = 10
ELECTION_TIMEOUT_S = PROC_TICK_MS * PROC_ELECTION_TICKS / 1000
_PROXY_ENV = ("grpc_proxy", "https_proxy", "http_proxy", "no_proxy", "no_grpc_proxy")


def admin_call(addr: str, method: str, request: Any, response: Any, timeout: float = 1.0) -> Any:
    """One ``replog.v1.Cluster`` call straight to ``addr`` (not through the proxy)."""
    with _grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)]) as channel:
        call = channel.unary_unary(
            f"/replog.v1.Cluster/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=timeout)


class ProcNode:
    """One ``replog serve`` process of a :class:`ProcCluster`, restartable on its data dir."""

    def __init__(self, name: str, data_dir: Path, workdir: Path, net: NetProxy) -> None:
        self.name = name
        self.data_dir = data_dir
        self.workdir = workdir
        self.net = net
        self.proxy_url = net.add_node(name)
        self.proc: _subprocess.Popen[bytes] | None = None
        self.grpc_address = ""
        self.paused = False
        self.common: tuple[str, ...] = ()
        self.starts = 0
        self.log_path = workdir / f"{name}.log"
        self.proxied = True
        """Whether its node-to-node traffic goes through the proxy (else straight)."""

    def spawn(self, *extra: str) -> ProcNode:
        """Start the process (without waiting for it to listen)."""
        assert not self.running, f"{self.name} already runs"
        self.starts += 1
        self.ready_file = self.workdir / f"{self.name}-ready-{self.starts}.json"
        env = {k: v for k, v in _os.environ.items() if k.lower() not in _PROXY_ENV}
        if self.proxied:
            env["grpc_proxy"] = self.proxy_url
        env |= {
            "REPLOG_RAFT_TICK_MS": str(PROC_TICK_MS),
            "REPLOG_ELECTION_TICKS": str(PROC_ELECTION_TICKS),
        }
        cmd = [
            _sys.executable, "-c", "from replog.cli.app import main; main()", "serve",
            "--node-id", self.name, "--data-dir", str(self.data_dir),
            "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
            "--ready-file", str(self.ready_file), "--sync", "always",
            "--log-level", "warning", "--log-format", "json", *self.common, *extra,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log_file:
            log_file.write(f"--- start {self.starts}: {' '.join(extra)}\n".encode())
            log_file.flush()
            self.proc = _subprocess.Popen(cmd, stdout=log_file, stderr=log_file, env=env)
        self.paused = False
        return self

    def wait_ready(self, timeout: float = 20) -> ProcNode:
        """Wait for the ready file; register the bound address with the proxy."""
        info = wait_until(self._ready, timeout, f"{self.name}'s ready file")
        self.grpc_address = info["grpc_addr"]
        self.net.register(self.name, self.grpc_address)
        return self

    def start(self, *extra: str) -> ProcNode:
        return self.spawn(*extra).wait_ready()

    def _ready(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
        if not self.ready_file.exists():
            return None
        data: dict[str, Any] = _json.loads(self.ready_file.read_text())
        return data

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL by PID (SIGCONT first if stopped) and reap. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.paused:
                _os.kill(self.proc.pid, _signal.SIGCONT)
            _os.kill(self.proc.pid, _signal.SIGKILL)
        self.proc.wait(10)
        self.paused = False

    def terminate(self) -> None:
        """SIGTERM by PID (a graceful stop: what it stored is all on disk once it exited)."""
        if self.running:
            if self.paused:
                _os.kill(self.pid, _signal.SIGCONT)
                self.paused = False
            _os.kill(self.pid, _signal.SIGTERM)

    def wait_exited(self, timeout: float = 20) -> int:
        """Wait for the process to exit (SIGKILL by PID after ``timeout``); its exit status."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except _subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not stop in {timeout} s: {self.tail()}"
            ) from None

    def pause(self) -> None:
        """SIGSTOP by PID."""
        _os.kill(self.pid, _signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT by PID."""
        _os.kill(self.pid, _signal.SIGCONT)
        self.paused = False

    def status(self, timeout: float = 0.5) -> Any:
        """This node's Cluster/Status, or None if it does not answer in time."""
        if not self.running or self.paused or not self.grpc_address:
            return None
        try:
            return admin_call(
                self.grpc_address,
                "Status",
                _cluster_pb2.StatusRequest(),
                _cluster_pb2.StatusResponse,
                timeout,
            )
        except _grpc.RpcError:
            return None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class ProcCluster:
    """Named ``replog serve`` processes behind a :class:`NetProxy`."""

    def __init__(self, root: Path, net: NetProxy, *, proxied: bool = True) -> None:
        self.root = root
        self.net = net
        self.proxied = proxied
        """False: nodes talk straight to each other (no network faults, and no proxy in the
        test's process, where the workload's threads would slow every Raft message)."""
        self.nodes: dict[str, ProcNode] = {}
        self.common: tuple[str, ...] = ()
        """Flags every node gets at every start (e.g. a small ``--segment-bytes``)."""

    def node(self, name: str) -> ProcNode:
        if name not in self.nodes:
            node = self.nodes[name] = ProcNode(name, self.root / name, self.root, self.net)
            node.common = self.common
            node.proxied = self.proxied
        return self.nodes[name]

    @property
    def names(self) -> list[str]:
        return sorted(self.nodes)

    def up(self) -> list[ProcNode]:
        """Nodes whose process runs and is not stopped."""
        return [n for n in self.nodes.values() if n.running and not n.paused]

    def addresses(self) -> list[str]:
        return [n.grpc_address for n in self.up()]

    def bootstrap(self, size: int = 3, *common: str) -> ProcCluster:
        """n1 bootstraps; n2..n<size> join through it concurrently; wait for ``size`` voters."""
        self.common = common
        first = self.node("n1").start("--bootstrap")
        wait_until(lambda: self.leader(["n1"], timeout=0) == "n1", 20, "n1 to lead")
        join = ("--join", first.grpc_address)
        joiners = [self.node(f"n{i}").spawn(*join) for i in range(2, size + 1)]
        for node in joiners:
            node.wait_ready()
        self.wait_voters(size)
        if not self.proxied:
            return self
        leader = self.leader()
        for other in self.names:  # the leader and each follower talk through the proxy
            if other != leader:
                for a, b in ((leader, other), (other, leader)):
                    wait_until(lambda a=a, b=b: self.net.connections[(a, b)], 10, f"{a}->{b}")
        return self

    def wait_voters(self, count: int, timeout: float = 30) -> None:
        def voters() -> bool:
            leader = self.leader(timeout=0)
            status = self.nodes[leader].status() if leader else None
            return status is not None and sum(m.voter for m in status.members) == count

        wait_until(voters, timeout, f"{count} voters")

    def leader(self, among: list[str] | None = None, timeout: float = 10) -> str | None:
        """The one node that leads in the highest term and is followed by a majority of
        ``among`` (default: every node); None if ``timeout`` is 0 and there is none yet."""
        group = among or self.names

        def find() -> str | None:
            statuses = {n: self.nodes[n].status() for n in group if n in self.nodes}
            claims = [
                (s.term, n) for n, s in statuses.items() if s is not None and s.role == "leader"
            ]
            if not claims:
                return None
            term, name = max(claims)
            agree = [
                n for n, s in statuses.items() if s is not None and s.leader_id == name
                and s.term == term
            ]  # fmt: skip
            return name if len(agree) > len(group) // 2 else None

        if timeout == 0:
            return find()
        found: str = wait_until(find, timeout, f"a leader among {group}")
        return found

    def wait_converged(self, names: list[str] | None = None, timeout: float = 20) -> int:
        """Wait until ``names`` (default: every node) share one commit index equal to the
        leader's last index, and the leader knows each of them stored it; return it.

        The stored part matters: a follower's commit index may run ahead of what it has
        written (a large Ready is written by a worker thread), and the checker reads the
        logs on disk after kill -9."""
        group = names or self.names

        def converged() -> int | None:
            statuses = [self.nodes[n].status() for n in group]
            if any(s is None for s in statuses):
                return None
            leaders = [s for s in statuses if s.role == "leader"]
            if len(leaders) != 1:
                return None
            lead = leaders[0]
            commits = {s.commit_index for s in statuses}
            stored = {m.match_index for m in lead.members if m.id in group}
            if commits != {lead.commit_index} or stored != {lead.commit_index}:
                return None
            return lead.commit_index

        try:
            commit: int = wait_until(converged, timeout, f"{group} to converge")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; statuses: {self.describe(group)}") from None
        return commit

    def describe(self, names: list[str] | None = None) -> str:
        """Each node's role, term, leader, commit and (as the leader sees them) match indexes."""
        out = []
        for n in names or self.names:
            s = self.nodes[n].status()
            if s is None:
                out.append(f"{n}: no answer")
                continue
            members = ", ".join(f"{m.id}@{m.match_index}{'' if m.voter else '(learner)'}"
                                for m in s.members)  # fmt: skip
            out.append(f"{n}: {s.role} term={s.term} leader={s.leader_id} "
                       f"commit={s.commit_index} [{members}]")  # fmt: skip
        return "; ".join(out)

    def transfer_leader(self, to: str, timeout: float = 10) -> Any:
        leader = self.leader()
        assert leader is not None
        return admin_call(
            self.nodes[leader].grpc_address,
            "TransferLeader",
            _cluster_pb2.TransferLeaderRequest(node_id=to),
            _cluster_pb2.TransferLeaderResponse,
            timeout,
        )

    def kill_all(self) -> None:
        for node in self.nodes.values():
            node.kill()

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM every running node at once, then wait for each to exit."""
        running = [n for n in self.nodes.values() if n.running]
        for node in running:
            node.terminate()
        for node in running:
            node.wait_exited(timeout)

    def log_dirs(self) -> dict[str, Path]:
        return {name: node.data_dir / "log" for name, node in self.nodes.items()}

    def tails(self) -> str:
        return "\n".join(f"== {n.name} (pid {n.proc.pid if n.proc else '-'})\n{n.tail()}"
                         for n in self.nodes.values())  # fmt: skip


@pytest.fixture
def net() -> Iterator[NetProxy]:
    proxy = NetProxy()
    yield proxy
    proxy.stop()


@pytest.fixture
def procs(tmp_path: Path, net: NetProxy) -> Iterator[ProcCluster]:
    """An empty cluster of processes; every one is killed by PID at the end."""
    yield from _proc_cluster(ProcCluster(tmp_path, net))


@pytest.fixture
def direct_procs(tmp_path: Path, net: NetProxy) -> Iterator[ProcCluster]:
    """``procs`` whose nodes talk straight to each other (no network faults)."""
    yield from _proc_cluster(ProcCluster(tmp_path, net, proxied=False))


def _proc_cluster(cluster: ProcCluster) -> Iterator[ProcCluster]:
    started = _time.monotonic()
    try:
        yield cluster
    finally:
        print(f"\n[{_time.monotonic() - started:.1f} s] node logs:\n{cluster.tails()}")
        cluster.kill_all()
