"""The nemesis: plan events turned into faults and operator actions on the live cluster.

An event that does not apply right now (no leader to crash, a node already up) does nothing.
"""

from __future__ import annotations

import asyncio
import random

from replog.cluster.raft_node import RaftNode
from replog.raft.core import Raft
from replog.raft.membership import ConfChange, ConfChangeOp
from tests.sim.driver.cluster import DriverCluster
from tests.sim.driver.plan import Event
from tests.sim.driver.workload import Operator


class Nemesis:
    """Applies :class:`Event` values to a :class:`DriverCluster`."""

    def __init__(
        self, seed: int, cluster: DriverCluster, operator: Operator, trace: list[str]
    ) -> None:
        self.cluster = cluster
        self.operator = operator
        self.trace = trace
        self.rng = random.Random(f"driver-nemesis-{seed}")
        self.all_ids = list(range(1, cluster.voters + 3))

    def apply(self, ev: Event) -> None:
        """Perform ``ev`` now and note it (with the cluster's state before it) in the trace."""
        self.trace.append(f"{ev}  [{self.cluster.describe()}]")
        getattr(self, "_ev_" + ev.kind.replace("-", "_"))(ev)
        if self.cluster.swarm.quiesce:
            # Node liveness reports a peer down only after it was silent for longer than
            # any message takes (1 s by default): what the peer sent before the fault has
            # arrived by then, as here, where the report comes after the longest delay.
            loop = asyncio.get_running_loop()
            loop.call_later(self.cluster.net.delay_s[1], self.cluster.report_liveness)

    def _ev_crash(self, ev: Event) -> None:
        up = [s.id for s in self.cluster.nodes.values() if s.node is not None]
        if up:
            self.cluster.crash(up[ev.a % len(up)])

    def _ev_restart(self, ev: Event) -> None:
        down = [s.id for s in self.cluster.nodes.values() if s.node is None and not s.ghost]
        if down:
            self.cluster.start(down[ev.a % len(down)])

    def _ev_crash_leader(self, ev: Event) -> None:
        leader = self.cluster.leader()
        if leader is not None:
            self.cluster.crash(leader.id)

    def _ev_partition(self, ev: Event) -> None:
        links = self.cluster.net.partition({n: bool(ev.a >> (n - 1) & 1) for n in self.all_ids})
        self._heal_later(links, ev.b)

    def _ev_isolate_leader(self, ev: Event) -> None:
        leader = self.cluster.leader()
        if leader is not None:
            self._heal_later(self.cluster.net.isolate(leader.id, self.all_ids), ev.b)

    def _heal_later(self, links: set[tuple[int, int]], after_ms: int) -> None:
        """A cut that lasts ``after_ms`` (0: until a heal event)."""
        if after_ms:
            asyncio.get_running_loop().call_later(after_ms / 1000, self.cluster.net.restore, links)

    def _ev_heal(self, ev: Event) -> None:
        self.cluster.net.heal()

    def _ev_transfer(self, ev: Event) -> None:
        leader = self.cluster.leader()
        if leader is not None and leader.id != ev.a:
            self._transfer(leader, ev.a)

    def _transfer(self, leader: RaftNode, to: int) -> None:
        def transfer(r: Raft) -> None:
            r.transfer_leadership(to)

        self.trace.append(f"{'':9} transfer {leader.id} -> {to}")
        leader.call(transfer).add_done_callback(_consume)

    def _ev_regain(self, ev: Event) -> None:
        """Hand leadership back to the node that led before the current leader."""
        leader = self.cluster.leader()
        if leader is None:
            return
        terms = sorted(self.cluster.monitor.leaders.items(), reverse=True)
        before = next((node for term, node in terms if node != leader.id), None)
        if before is not None and self.cluster.live(before) is not None:
            self._transfer(leader, before)

    def _ev_add_learner(self, ev: Event) -> None:
        for leader in self._targets():
            absent = [n for n in self.all_ids if n not in leader.raft.config.members()]
            if absent:
                self._add_learner(leader, absent[ev.a % len(absent)])

    def _add_learner(self, leader: RaftNode, node_id: int) -> None:
        if node_id not in self.cluster.nodes:
            sim = self.cluster.add_spare(node_id)  # the joiner runs before it asks to join
            if self.rng.random() < self.cluster.swarm.ghost_learners:
                sim.ghost = True  # ... unless its process never comes up (until the end)
            else:
                self.cluster.start(node_id)
        self.operator.propose(ConfChange(ConfChangeOp.ADD_LEARNER, node_id), leader)

    def _ev_remove(self, ev: Event) -> None:
        for leader in self._targets():
            config = leader.raft.config
            # Keep two voters at least, so that the cluster can still elect after healing.
            members = config.members() if len(config.voters) > 2 else config.learners
            if members:
                node_id = sorted(members)[ev.a % len(members)]
                self.operator.propose(ConfChange(ConfChangeOp.REMOVE, node_id), leader)

    def _targets(self) -> list[RaftNode]:
        """Where the operator sends a change: the leader, or every node that thinks it leads
        (the operator of each side of a partition makes its own change)."""
        if self.cluster.swarm.changes_on_every_leader:
            return self.cluster.leaders()
        leader = self.cluster.leader()
        return [leader] if leader is not None else []


def _consume(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()  # a refused transfer is part of the run, not an error
