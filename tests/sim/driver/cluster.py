"""Real :class:`RaftNode` objects in one virtual-time event loop, over in-memory disks.

Each node is the production driver, unmodified: the harness only sets what it is given from
outside (its ``send`` callback, its clocks in ``NodeOptions``, its executor, which runs persist
work inline instead of in a thread, and its core's message size, scaled down with the data).
A crash cancels the node's loop task mid-flight: nothing is cleaned up and no waiter is failed
(the clean ``stop`` is never called); what the node had written to its :class:`SimStore`
survives, the rest is gone; a restart builds a new ``RaftNode`` from that store.

:class:`Monitor` checks Raft safety online, whenever a node persists its hard state or changes
leader: the persisted commit never goes back, every committed index holds the same entry on
every node, and one leader per term.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Sequence

from replog.cluster.failover import leader_down
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.raft.membership import ConfChange, ConfChangeOp
from replog.raft.messages import Entry, HardState, Membership, Message
from replog.raft.ready import Role
from replog.raft.storage import ENTRY_OVERHEAD_BYTES, MemoryRaftStorage
from tests.sim.driver.history import Promotion
from tests.sim.driver.loop import InlineExecutor, VirtualTimeLoop
from tests.sim.driver.net import Network
from tests.sim.driver.plan import Swarm

TICK_S = 0.1
ELECTION_TICKS = 10


class Monitor:
    """Online safety checks; violations are collected, the run goes on to its end."""

    def __init__(self) -> None:
        self.committed: dict[int, Entry] = {}
        self.persisted_commit: dict[int, int] = {}
        self.checked: dict[int, int] = {}
        self.leaders: dict[int, int] = {}
        self.elected: list[tuple[float, int, int]] = []  # (virtual time, term, node)
        self.violations: list[str] = []

    def on_hard_state(self, node: int, store: MemoryRaftStorage, state: HardState) -> None:
        """A node persists ``state``: its commit must not go back and must agree with others."""
        before = self.persisted_commit.get(node, 0)
        if state.commit < before:
            self.violations.append(f"node {node} persisted commit {state.commit} < {before}")
        self.persisted_commit[node] = max(before, state.commit)
        top = min(state.commit, store.last_index())
        lo = max(self.checked.get(node, 0), store.first_index() - 1) + 1
        for index in range(lo, top + 1):
            entry = store.entries(index, index + 1, 1 << 30)[0]
            known = self.committed.setdefault(index, entry)
            if known != entry:
                self.violations.append(
                    f"State Machine Safety: node {node} committed {_short(entry)} at {index}, "
                    f"another node committed {_short(known)}"
                )
        self.checked[node] = max(self.checked.get(node, 0), top)

    def on_leader(self, node: int, term: int) -> None:
        """``node`` leads ``term``: no other node may have led it."""
        first = self.leaders.setdefault(term, node)
        self.elected.append((asyncio.get_running_loop().time(), term, node))
        if first != node:
            self.violations.append(f"Election Safety: nodes {first} and {node} both lead {term}")


class SimStore(MemoryRaftStorage):
    """A :class:`MemoryRaftStorage` a ``RaftNode`` can own: everything it holds is durable."""

    def __init__(
        self,
        node: int,
        monitor: Monitor,
        appended: Callable[[int, Sequence[Entry]], None],
        config: Membership | None = None,
    ) -> None:
        super().__init__(config)
        self.node = node
        self.monitor = monitor
        self.appended = appended
        self.log_lost = False  # nothing here is ever torn: what it holds is durable
        self.lost_commit = 0
        self.directory = None  # no files: producer state is rebuilt from the entries

    def clear_log_lost(self) -> None:
        """Nothing to clear: nothing is ever lost here."""

    def clear_lost_commit(self) -> None:
        """Nothing to clear: nothing is ever lost here."""

    def append(self, entries: Sequence[Entry]) -> None:
        """Store ``entries`` (replacing the suffix from their first index); tell the harness."""
        super().append(entries)
        self.appended(self.node, entries)

    def save_hard_state(self, state: HardState) -> None:
        """Replace the hard state (checked by the monitor first)."""
        self.monitor.on_hard_state(self.node, self, state)
        super().save_hard_state(state)

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries ``[lo, hi)`` within ``max_bytes`` (at least one), as the base class returns
        them, without first slicing to ``hi`` (a leader reads far ahead for a slow follower)."""
        if lo <= self._snap_index or hi - lo <= 1:
            return super().entries(lo, hi, max_bytes)
        base = self._snap_index + 1
        found: list[Entry] = []
        size = 0
        stored = self._entries
        for position in range(lo - base, min(hi - base, len(stored))):
            entry = stored[position]
            size += len(entry.data) + ENTRY_OVERHEAD_BYTES
            if size > max_bytes and found:
                break
            found.append(entry)
        return found

    def close(self) -> None:
        """Nothing to release: the data stays for the next incarnation."""


@dataclasses.dataclass(slots=True)
class SimNode:
    """One node id: its durable store and the running ``RaftNode`` (None while down)."""

    id: int
    store: SimStore
    node: RaftNode | None = None
    incarnation: int = 0
    down: asyncio.Future[None] | None = None  # set when this incarnation crashes
    ghost: bool = False  # added as a learner, but its process is not started yet


class DriverCluster:
    """The nodes, the network and the node-level faults of one run."""

    def __init__(self, seed: int, swarm: Swarm, voters: int, monitor: Monitor) -> None:
        self.seed = seed
        self.swarm = swarm
        self.monitor = monitor
        self.promotions: list[Promotion] = []
        self.unexpected: list[str] = []
        self.unquiesced: list[tuple[float, int]] = []  # (virtual time, node) woken by liveness
        self.on_append: Callable[[RaftNode | None, Sequence[Entry]], None] = lambda n, e: None
        self.on_commit: Callable[[RaftNode], None] = lambda node: None
        self.net = Network(
            random.Random(f"driver-net-{seed}"),
            self.live,
            drop=swarm.drop,
            duplicate=swarm.duplicate,
            delay_s=swarm.delay_s,
        )
        config = Membership(frozenset(range(1, voters + 1)))
        self.voters = voters
        self.nodes = {i: SimNode(i, self._store(i, config)) for i in range(1, voters + 1)}

    @property
    def ids(self) -> list[int]:
        """Every node id the cluster has ever had, voters first."""
        return sorted(self.nodes)

    def live(self, node_id: int) -> RaftNode | None:
        """The running node behind ``node_id``, if it is up."""
        sim = self.nodes.get(node_id)
        return sim.node if sim is not None else None

    def leaders(self) -> list[RaftNode]:
        """Every live node that believes it leads, the highest term first."""
        found = [s.node for s in self.nodes.values() if s.node is not None and s.node.is_leader]
        return sorted(found, key=lambda n: (-n.raft.term, n.id))

    def leader(self) -> RaftNode | None:
        """The live node leading the highest term, if any."""
        found = self.leaders()
        return found[0] if found else None

    # -- node lifecycle -------------------------------------------------------------------

    def _store(self, node_id: int, config: Membership | None = None) -> SimStore:
        return SimStore(node_id, self.monitor, lambda n, e: self.on_append(self.live(n), e), config)

    def add_spare(self, node_id: int) -> SimNode:
        """An empty node (no configuration) that a learner can be added as."""
        if node_id not in self.nodes:
            self.nodes[node_id] = SimNode(node_id, self._store(node_id))
        return self.nodes[node_id]

    def start(self, node_id: int) -> RaftNode:
        """Boot a new incarnation of ``node_id`` from its store."""
        sim = self.nodes[node_id]
        assert sim.node is None, f"node {node_id} is already up"
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        sim.incarnation += 1
        sim.ghost = False
        options = NodeOptions(
            tick_s=TICK_S,
            election_ticks=ELECTION_TICKS,
            wall_clock_ns=loop.wall_clock_ns,
            monotonic=loop.time,
            quiesce=self.swarm.quiesce,
        )
        rng = random.Random(f"driver-{self.seed}-{node_id}-{sim.incarnation}")
        node = RaftNode(sim.store, node_id, rng, options)  # type: ignore[arg-type]
        node._executor.shutdown()
        node._executor = InlineExecutor()  # type: ignore[assignment]
        node.raft.cfg = dataclasses.replace(node.raft.cfg, max_msg_bytes=self.swarm.max_msg_bytes)
        node.send = self.net.send
        node.send_snapshot = self._unexpected_snapshot
        node.on_leader_change = self._leader_watcher(node)
        node.on_commit = lambda: self.on_commit(node)
        node.leader_live = lambda leader: self.reachable(node_id, leader)
        self._watch_promotions(node)
        sim.node, sim.down = node, loop.create_future()
        node.start()
        return node

    def crash(self, node_id: int) -> bool:
        """Kill ``node_id``'s loop where it stands; return whether it was up."""
        sim = self.nodes.get(node_id)
        if sim is None or sim.node is None:
            return False
        task = sim.node._task
        assert task is not None
        task.cancel()
        assert sim.down is not None
        sim.down.set_result(None)
        sim.node = None
        return True

    def reachable(self, a: int, b: int) -> bool:
        """Whether node liveness on ``a`` holds ``b`` live: ``b`` is up and no link between
        them is cut (the simulation's stand-in for liveness pings)."""
        blocked = self.net.blocked
        return self.live(b) is not None and (a, b) not in blocked and (b, a) not in blocked

    def report_liveness(self) -> None:
        """Node liveness after a fault: every live node whose leader it now holds down is
        told (``failover.leader_down``), as the host does on a liveness report."""
        for sim in self.nodes.values():
            node = sim.node
            lead = node.raft.lead if node is not None else None
            if node is not None and lead is not None and not self.reachable(node.id, lead):
                if node.quiescence.quiet:
                    self.unquiesced.append((asyncio.get_running_loop().time(), node.id))
                leader_down(node, lead)

    def _leader_watcher(self, node: RaftNode) -> Callable[[int | None], None]:
        def changed(leader: int | None) -> None:
            if leader == node.id and node.raft.role is Role.LEADER:
                self.monitor.on_leader(node.id, node.raft.term)

        return changed

    def _unexpected_snapshot(self, m: Message) -> None:
        # Nothing compacts the logs here, so the core has no reason to send a snapshot.
        self.unexpected.append(f"node {m.src} sent a snapshot to {m.dst}")

    def _watch_promotions(self, node: RaftNode) -> None:
        """Record each promotion the core accepts, with the learner's progress at that time
        (whoever proposed it: the driver's ``_maybe_promote`` or an operator)."""
        raft = node.raft
        propose = raft.propose_conf_change

        def watched(change: ConfChange) -> int:
            pr = raft.progress.get(change.node_id)
            match = pr.match if pr is not None else None
            index = propose(change)
            if change.op is ConfChangeOp.PROMOTE:
                self.promotions.append(Promotion(node.id, raft.term, index, change.node_id, match))
            return index

        raft.propose_conf_change = watched  # type: ignore[method-assign]

    # -- views ----------------------------------------------------------------------------

    def describe(self) -> str:
        """One word per node: ``1:L3@42`` (role, term, commit), ``4:down`` or ``5:ghost``."""
        parts = []
        for sim in self.nodes.values():
            n = sim.node
            if n is None:
                parts.append(f"{sim.id}:{'ghost' if sim.ghost else 'down'}")
            else:
                parts.append(
                    f"{sim.id}:{n.raft.role.value[0].upper()}{n.raft.term}@{n.raft.log.committed}"
                )
        return " ".join(parts)


def _short(entry: Entry) -> str:
    return f"(term {entry.term}, kind {entry.kind}, {len(entry.data)} bytes)"
