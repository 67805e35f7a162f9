"""A deterministic in-memory cluster for unit and interaction tests (etcd's rafttest env).

Nodes exchange messages only when told to (``deliver``), so a test controls every
interleaving; ``stabilize`` runs Readies and deliveries until the cluster is quiet.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from replog.raft import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    MemoryRaftStorage,
    Message,
    Raft,
    RaftConfig,
    Ready,
)
from replog.raft.describe import describe_message, describe_ready


class Env:
    """Nodes, their storages, per-node inboxes, and a partition filter."""

    def __init__(self) -> None:
        self.nodes: dict[int, Raft] = {}
        self.stores: dict[int, MemoryRaftStorage] = {}
        self.configs: dict[int, RaftConfig] = {}
        self.inbox: dict[int, list[Message]] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.blocked: set[tuple[int, int]] = set()
        self.dropped_types: set[str] = set()
        self.out: list[str] = []

    # -- setup ----------------------------------------------------------------------------

    def add_nodes(
        self,
        ids: Iterable[int],
        voters: Iterable[int] | None = None,
        learners: Iterable[int] = (),
        **options: int | bool,
    ) -> None:
        """Create nodes bootstrapped with ``voters``/``learners`` (default: the new ids)."""
        ids = list(ids)
        config = Membership(frozenset(ids if voters is None else voters), frozenset(learners))
        for node_id in ids:
            cfg = RaftConfig(node_id=node_id, **options)  # type: ignore[arg-type]
            self.configs[node_id] = cfg
            self.stores[node_id] = MemoryRaftStorage(config)
            self.inbox[node_id] = []
            self.applied[node_id] = []
            self.restart(node_id)

    def set_log(self, node_id: int, terms: list[int], term: int | None = None) -> None:
        """Give ``node_id`` a persisted log with entries of ``terms`` (index 1 upwards)."""
        store = self.stores[node_id]
        entries = [Entry(t, i, EntryKind.DATA, b"") for i, t in enumerate(terms, 1)]
        store.append(entries)
        state = store.initial_state()
        top = max(terms, default=0)
        store.save_hard_state(HardState(term if term is not None else top, None, 0, state.config))
        self.restart(node_id)

    def restart(self, node_id: int) -> None:
        """(Re)create the node from its storage: unpersisted state is lost."""
        rng = random.Random(node_id)
        self.nodes[node_id] = Raft(self.configs[node_id], self.stores[node_id], rng)

    # -- driving --------------------------------------------------------------------------

    def process_ready(self, node_id: int) -> Ready | None:
        """Perform one Ready of ``node_id`` (persist, send, apply, advance)."""
        r = self.nodes[node_id]
        if not r.has_ready():
            return None
        rd = r.ready()
        store = self.stores[node_id]
        if rd.snapshot is not None:
            store.apply_snapshot(rd.snapshot)
        if rd.entries:
            store.append(rd.entries)
        if rd.hard_state is not None:
            store.save_hard_state(rd.hard_state)
        for m in rd.messages:
            self.inbox.setdefault(m.dst, []).append(m)
        self.applied[node_id].extend(rd.committed_entries)
        r.advance(rd)
        self.out.append(f"> {node_id} handling Ready")
        self.out.extend("  " + line for line in describe_ready(rd))
        return rd

    def deliver(self, node_id: int, *, drop: bool = False) -> int:
        """Step every message waiting for ``node_id``; return how many were delivered."""
        msgs, self.inbox[node_id] = self.inbox.get(node_id, []), []
        if not msgs:
            return 0
        self.out.append(f"> {node_id} receiving messages")
        delivered = 0
        for m in msgs:
            lost = (
                drop
                or (m.src, m.dst) in self.blocked
                or m.type.name in self.dropped_types
                or m.dst not in self.nodes
            )
            self.out.append(f"  {describe_message(m)}" + ("  DROPPED" if lost else ""))
            if not lost:
                self.nodes[node_id].step(m)
                delivered += 1
        return delivered

    def stabilize(self, ids: Iterable[int] | None = None) -> None:
        """Process Readies and deliver messages until nothing changes."""
        chosen = sorted(ids) if ids is not None else None
        busy = True
        while busy:
            busy = False
            for node_id in chosen or sorted(self.nodes):
                if self.process_ready(node_id) is not None:
                    busy = True
            for node_id in chosen or sorted(self.nodes):
                if self.inbox.get(node_id):
                    self.deliver(node_id)
                    busy = True

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between different ``groups`` (both directions)."""
        sets = [set(g) for g in groups]
        self.blocked = {
            (a, b)
            for i, ga in enumerate(sets)
            for j, gb in enumerate(sets)
            if i != j
            for a in ga
            for b in gb
        }

    def isolate(self, node_id: int) -> None:
        """Cut ``node_id`` off from every other node."""
        others = set(self.nodes) - {node_id}
        self.partition({node_id}, others)

    def heal(self) -> None:
        """Restore every link."""
        self.blocked = set()

    def tick(self, node_id: int, count: int = 1) -> None:
        """Tick ``node_id`` ``count`` times."""
        for _ in range(count):
            self.nodes[node_id].tick()

    def elect(self, node_id: int) -> None:
        """Make ``node_id`` campaign and let the cluster settle."""
        self.nodes[node_id].campaign()
        self.stabilize()

    def take_output(self) -> list[str]:
        """Return and clear the accumulated trace lines."""
        out, self.out = self.out, []
        return out


def settled_three() -> Env:
    """Nodes 1-2-3, node 1 elected, one entry proposed and replicated to every node."""
    env = Env()
    env.add_nodes([1, 2, 3])
    env.elect(1)
    env.nodes[1].propose([b"x"])
    env.stabilize()
    return env
