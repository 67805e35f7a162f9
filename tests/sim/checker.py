"""Safety invariants, checked after every simulation step (Raft Figure 3)."""

from __future__ import annotations

from replog.raft import CONTINUES, Entry, EntryKind, Ready, Role
from replog.raft.membership import config_of
from tests.sim.cluster import Cluster, InvariantError, SimNode, entry_at


class Checker:
    """Keeps the global history (leaders per term, committed entries) and checks it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.leaders: dict[int, int] = {}
        self.committed: dict[int, Entry] = {}
        self.max_committed = 0
        self.persisted_commit: dict[int, int] = {}
        self.max_commit_index = 0

    def on_ready(self, node: SimNode, rd: Ready) -> None:
        """Check what a node applies: State Machine Safety and in-order application."""
        if rd.snapshot is not None:
            snap = rd.snapshot
            known = self.committed.get(snap.index)
            if known is not None and known.term != snap.term:
                raise InvariantError(
                    f"node {node.id} installed a snapshot at {snap.index} "
                    f"term {snap.term}, committed term is {known.term}"
                )
            node.applied = max(node.applied, snap.index)
        if rd.hard_state is not None:
            before = self.persisted_commit.get(node.id, 0)
            if rd.hard_state.commit < before:
                raise InvariantError(
                    f"node {node.id} persisted commit {rd.hard_state.commit} < {before}"
                )
            self.persisted_commit[node.id] = rd.hard_state.commit
        for entry in rd.committed_entries:
            if entry.index != node.applied + 1:
                raise InvariantError(f"node {node.id} applied {entry.index} after {node.applied}")
            node.applied = entry.index
            known = self.committed.get(entry.index)
            if known is None:
                self.committed[entry.index] = entry
                self.max_committed = max(self.max_committed, entry.index)
            elif known != entry:
                raise InvariantError(
                    f"State Machine Safety: node {node.id} applied {entry} at "
                    f"{entry.index}, another node applied {known}"
                )

    def after_step(self) -> None:
        """Election Safety and monotonic commit, cheap enough for every step."""
        for node in self.cluster.nodes.values():
            r = node.raft
            if r is None:
                continue
            if r.role is Role.LEADER:
                first = self.leaders.setdefault(r.term, node.id)
                if first != node.id:
                    raise InvariantError(
                        f"Election Safety: nodes {first} and {node.id} both lead term {r.term}"
                    )
            if r.log.committed > self.max_commit_index:
                # Only a leader raises the highest commit index, and only to a proposal's end.
                self.max_commit_index = r.log.committed
                entry = entry_at(node, r.log.committed)
                if entry is not None and entry.kind & CONTINUES:
                    raise InvariantError(
                        f"Batch atomicity: node {node.id} committed up to {entry.index}, "
                        f"inside a proposal ({entry})"
                    )
            if r.log.committed < node.last_commit:
                raise InvariantError(
                    f"node {node.id} commit went back {node.last_commit} -> {r.log.committed}"
                )
            node.last_commit = r.log.committed

    def full_check(self) -> None:
        """Log Matching, Leader Completeness, and no committed entry lost or changed."""
        nodes = list(self.cluster.nodes.values())
        top_term = max(_term(node) for node in nodes)
        for node in nodes:
            self._check_committed_prefix(node, top_term)
            self._check_configuration(node)
            self._check_terms_rise(node)
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                self._check_log_matching(a, b)

    def check_proposals_whole(self) -> None:
        """Batch atomicity, once the run is over: every proposal with a committed entry has
        all its entries committed, at consecutive indices (an index nobody applied, e.g. one
        a snapshot skipped, is unknown and passes)."""
        for index, entry in self.committed.items():
            name, _, rest = entry.data.partition(b":")
            if not name.startswith(b"p") or not rest:
                continue
            position, size = map(int, rest.split(b"/"))
            first = index - position
            for k in range(size):
                other = self.committed.get(first + k)
                if other is not None and other.data != b"%s:%d/%d" % (name, k, size):
                    raise InvariantError(
                        f"Batch atomicity: proposal {name.decode()} has entry {position} "
                        f"committed at {index} but {other} at {first + k}"
                    )

    def _check_terms_rise(self, node: SimNode) -> None:
        """Terms never go down along a log: a leader appends in its own term after entries
        of older ones, and a follower replaces a conflicting suffix whole (Raft §5.3)."""
        lo, hi = _bounds(node)
        previous = 0
        for index in range(max(lo, 1), hi + 1):
            entry = entry_at(node, index)
            if entry is None:
                continue
            if entry.term < previous:
                raise InvariantError(
                    f"Log terms: node {node.id} has term {entry.term} at {index} after "
                    f"term {previous}"
                )
            previous = entry.term

    def _check_configuration(self, node: SimNode) -> None:
        """The membership in effect is the one of the last configuration entry in the log,
        or the committed one if none lies above the commit index (dissertation §4.1)."""
        r = node.raft
        if r is None:
            return
        expected = r.confs.committed
        for index in range(r.log.last_index(), max(r.log.committed, r.log.first_index() - 1), -1):
            entry = entry_at(node, index)
            if entry is not None and entry.kind == EntryKind.CONFIG:
                expected = config_of(entry, expected)
                break
        if r.confs.latest != expected:
            raise InvariantError(
                f"Configuration: node {node.id} acts on {r.confs.latest}, its log says {expected}"
            )

    def _check_committed_prefix(self, node: SimNode, top_term: int) -> None:
        # Leader Completeness (Raft §5.4) binds the leader of the highest term: a deposed
        # leader that has not noticed yet may legitimately miss newer entries.
        r = node.raft
        is_leader = r is not None and r.role is Role.LEADER and r.term == top_term
        commit = r.log.committed if r is not None else node.storage.initial_state().commit
        limit = self.max_committed if is_leader else commit
        first = r.log.first_index() if r is not None else node.storage.first_index()
        for index in range(max(first, 1), limit + 1):
            known = self.committed.get(index)
            if known is None:
                continue
            ours = entry_at(node, index)
            if ours != known:
                what = "Leader Completeness" if is_leader else "committed entry changed"
                raise InvariantError(
                    f"{what}: node {node.id} has {ours} at {index}, committed {known}"
                )

    def _check_log_matching(self, a: SimNode, b: SimNode) -> None:
        la, lb = _bounds(a), _bounds(b)
        lo, hi = max(la[0], lb[0]), min(la[1], lb[1])
        for index in range(hi, lo - 1, -1):
            ea, eb = entry_at(a, index), entry_at(b, index)
            if ea is not None and eb is not None and ea.term == eb.term:
                for j in range(lo, index + 1):
                    if entry_at(a, j) != entry_at(b, j):
                        raise InvariantError(
                            f"Log Matching: nodes {a.id} and {b.id} agree at "
                            f"{index} (term {ea.term}) but differ at {j}"
                        )
                return


def _bounds(node: SimNode) -> tuple[int, int]:
    if node.raft is not None:
        return node.raft.log.first_index(), node.raft.log.last_index()
    return node.storage.first_index(), node.storage.last_index()


def _term(node: SimNode) -> int:
    if node.raft is not None:
        return node.raft.term
    return node.storage.initial_state().term
