"""A simulated cluster: nodes, a lossy network and disks that keep only what was persisted."""

from __future__ import annotations

import contextlib
import heapq
import random
from collections.abc import Callable

from replog.raft import (
    ConfChange,
    ConfChangeError,
    ConfChangeOp,
    Entry,
    Membership,
    MemoryRaftStorage,
    Message,
    NotLeaderError,
    Raft,
    RaftConfig,
    Ready,
    Role,
)
from tests.sim.plan import Event, Swarm


class InvariantError(AssertionError):
    """An invariant was broken; the message says which and where."""


class SimNode:
    """One node: a Raft core (None while crashed) over a storage that survives crashes."""

    def __init__(self, node_id: int, storage: MemoryRaftStorage) -> None:
        self.id = node_id
        self.storage = storage
        self.raft: Raft | None = None
        self.pending: Ready | None = None  # a Ready handed out, not yet performed
        self.pending_due = 0
        self.applied = 0  # last index applied in the current incarnation
        self.incarnation = 0
        self.last_commit = 0


class Cluster:
    """Runs the nodes, the network and the plan's events for one seed."""

    def __init__(self, seed: int, nodes: int, swarm: Swarm, on_ready: Callable[..., None]) -> None:
        self.seed = seed
        self.swarm = swarm
        self.net_rng = random.Random(f"net-{seed}")
        self.step_no = 0
        self.on_ready = on_ready
        self.nodes: dict[int, SimNode] = {}
        self.queue: list[tuple[int, int, Message]] = []
        self.seq = 0
        self.blocked: set[tuple[int, int]] = set()
        self.drop = swarm.drop
        self.duplicate = swarm.duplicate
        self.max_delay_steps = swarm.max_delay_steps
        self.ready_probability = swarm.ready_probability
        self.proposals = 0
        self.log: list[str] = []
        voters = Membership(frozenset(range(1, nodes + 1)))
        for node_id in range(1, nodes + 1):
            self._create(node_id, MemoryRaftStorage(voters))

    # -- nodes ----------------------------------------------------------------------------

    def _create(self, node_id: int, storage: MemoryRaftStorage) -> None:
        node = SimNode(node_id, storage)
        self.nodes[node_id] = node
        self._boot(node)

    def _boot(self, node: SimNode) -> None:
        cfg = RaftConfig(
            node_id=node.id,
            election_ticks=self.swarm.election_ticks,
            heartbeat_ticks=1,
            max_msg_bytes=self.swarm.max_msg_bytes,
            max_inflight_msgs=self.swarm.max_inflight_msgs,
            pre_vote=self.swarm.pre_vote,
            check_quorum=self.swarm.check_quorum,
        )
        node.incarnation += 1
        rng = random.Random(f"{self.seed}-{node.id}-{node.incarnation}")
        node.raft = Raft(cfg, node.storage, rng)
        node.applied = node.raft.log.applying
        node.last_commit = node.raft.log.committed

    def leader(self) -> SimNode | None:
        """Return a live node that believes it leads in the highest term, if any."""
        best: SimNode | None = None
        for node in self.nodes.values():
            r = node.raft
            if r is None or r.role is not Role.LEADER:
                continue
            if best is None or best.raft is None or r.term > best.raft.term:
                best = node
        return best

    # -- network --------------------------------------------------------------------------

    def send(self, m: Message) -> None:
        """Put ``m`` on the wire: maybe drop it, maybe duplicate it, delay it at random."""
        rng = self.net_rng
        if self.drop and rng.random() < self.drop:
            return
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        for _ in range(copies):
            due = self.step_no + 1 + rng.randrange(self.max_delay_steps)
            self.seq += 1
            heapq.heappush(self.queue, (due, self.seq, m))

    def deliver_due(self) -> None:
        """Hand every message due by now to its (live, reachable) destination."""
        queue = self.queue
        while queue and queue[0][0] <= self.step_no:
            m = heapq.heappop(queue)[2]
            node = self.nodes.get(m.dst)
            if node is None or node.raft is None or (m.src, m.dst) in self.blocked:
                continue
            node.raft.step(m)

    # -- ready ----------------------------------------------------------------------------

    def process_ready(self, node: SimNode) -> None:
        """Take a Ready and perform it now, or later if the swarm simulates a slow disk
        (the core keeps running meanwhile, as it will under the asyncio driver)."""
        r = node.raft
        assert r is not None and node.pending is None
        rd: Ready = r.ready()
        if self.swarm.async_ready_steps:
            node.pending = rd
            node.pending_due = self.step_no + self.net_rng.randrange(self.swarm.async_ready_steps)
        else:
            self.perform_ready(node, rd)

    def perform_ready(self, node: SimNode, rd: Ready) -> None:
        """Perform one Ready in the documented order: persist, send, apply, advance."""
        r = node.raft
        assert r is not None
        node.pending = None
        storage = node.storage
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.save_hard_state(rd.hard_state)
        for m in rd.messages:
            self.send(m)
        self.on_ready(node, rd)
        r.advance(rd)

    # -- events ---------------------------------------------------------------------------

    def apply_event(self, ev: Event) -> None:
        """Perform a plan event; events that do not apply right now are ignored."""
        handler = getattr(self, "_ev_" + ev.kind.replace("-", "_"))
        handler(ev)

    def _ev_propose(self, ev: Event) -> None:
        node = self.leader()
        if node is None or node.raft is None:
            return
        # "p<proposal>:<position>/<size>": the checker finds each proposal's entries by it.
        n = self.proposals
        payloads = [b"p%d:%d/%d" % (n, k, ev.a) for k in range(ev.a)]
        try:
            node.raft.propose(payloads)
            self.proposals += 1
        except NotLeaderError:
            pass

    def _ev_partition(self, ev: Event) -> None:
        ids = range(1, 8)
        side = {n: bool(ev.a >> (n - 1) & 1) for n in ids}
        self.blocked = {(a, b) for a in ids for b in ids if side[a] != side[b]}

    def _ev_one_way(self, ev: Event) -> None:
        self.blocked.add((ev.a, ev.b))

    def _ev_heal(self, ev: Event) -> None:
        self.blocked = set()

    def _ev_crash(self, ev: Event) -> None:
        node = self.nodes.get(ev.a)
        if node is not None:
            node.raft = None  # Everything not persisted in node.storage is lost.
            node.pending = None

    def _ev_crash_leader(self, ev: Event) -> None:
        node = self.leader()
        if node is not None:
            node.raft = None
            node.pending = None

    def _ev_isolate_leader(self, ev: Event) -> None:
        node = self.leader()
        if node is not None:
            others = [n for n in range(1, 8) if n != node.id]
            self.blocked |= {(node.id, n) for n in others} | {(n, node.id) for n in others}

    def _ev_restart(self, ev: Event) -> None:
        node = self.nodes.get(ev.a)
        if node is not None and node.raft is None:
            self._boot(node)

    def _conf_change(self, change: ConfChange) -> None:
        node = self.leader()
        if node is None or node.raft is None:
            return
        try:
            node.raft.propose_conf_change(change)
        except (ConfChangeError, NotLeaderError):
            return
        if change.op is ConfChangeOp.ADD_LEARNER and change.node_id not in self.nodes:
            self._create(change.node_id, MemoryRaftStorage())

    def _ev_add_learner(self, ev: Event) -> None:
        self._conf_change(ConfChange(ConfChangeOp.ADD_LEARNER, ev.a))

    def _ev_promote(self, ev: Event) -> None:
        self._conf_change(ConfChange(ConfChangeOp.PROMOTE, ev.a))

    def _ev_remove(self, ev: Event) -> None:
        self._conf_change(ConfChange(ConfChangeOp.REMOVE, ev.a))

    def _ev_remove_leader(self, ev: Event) -> None:
        node = self.leader()
        if node is not None:
            self._conf_change(ConfChange(ConfChangeOp.REMOVE, node.id))

    def _ev_transfer(self, ev: Event) -> None:
        node = self.leader()
        if node is None or node.raft is None:
            return
        with contextlib.suppress(NotLeaderError, ValueError):
            node.raft.transfer_leadership(ev.a)

    def _ev_compact(self, ev: Event) -> None:
        node = self.nodes.get(ev.a)
        if node is None or node.raft is None:
            return
        keep = self.net_rng.randrange(0, 8)
        upto = min(node.applied, node.storage.last_index()) - keep
        if upto > node.storage.first_index():
            node.storage.compact(upto)


def entry_at(node: SimNode, index: int) -> Entry | None:
    """Return the entry at ``index`` in the node's log (memory view if alive), if present."""
    if node.raft is not None:
        log = node.raft.log
        if log.first_index() <= index <= log.last_index():
            return log.entries(index, index + 1)[0]
        return None
    s = node.storage
    if s.first_index() <= index <= s.last_index():
        return s.entries(index, index + 1, 1 << 30)[0]
    return None
