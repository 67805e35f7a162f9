"""The Raft log as the core sees it: an unstable tail over stable storage (etcd's raftLog).

Theory of operation: entries the core appended but the driver has not yet persisted live in
``Unstable``; everything else is read from :class:`RaftStorage`. A pending snapshot (received
from the leader, not yet installed) hides the whole stable log. ``committed`` is the highest
index known committed; ``applying`` is the highest index already handed to the driver to apply.
"""

from __future__ import annotations

from collections.abc import Sequence

from replog.raft.errors import CompactedError
from replog.raft.messages import CONTINUES, Entry, SnapshotMeta
from replog.raft.storage import RaftStorage, limit_by_bytes

NO_LIMIT = 1 << 62


class Unstable:
    """Entries (and possibly a snapshot) not yet handed to stable storage."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        """Start empty; the next entry will be ``offset``."""
        self.offset = offset
        self.entries: list[Entry] = []
        self.snapshot: SnapshotMeta | None = None

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries``, dropping any unstable entry at or after ``entries[0].index``."""
        first = entries[0].index
        end = self.offset + len(self.entries)
        if first == end:
            self.entries.extend(entries)
        elif first <= self.offset:
            # Replaces part of the stable log too; storage.append drops that suffix.
            self.offset = first
            self.entries = list(entries)
        else:
            del self.entries[first - self.offset :]
            self.entries.extend(entries)


class RaftLog:
    """The log of one node: reads, appends with the consistency check, commit tracking."""

    def __init__(self, storage: RaftStorage, committed: int, applied: int) -> None:
        """Wrap ``storage``; ``committed`` is from the hard state, ``applied`` from the driver."""
        self.storage = storage
        self.unstable = Unstable(storage.last_index() + 1)
        # Never more than the log holds: a recovery that cut committed entries must not have
        # this node acknowledge what it lost.
        self.committed = min(committed, storage.last_index())
        self.applying = applied

    def first_index(self) -> int:
        """Return the first index whose entry is available."""
        snap = self.unstable.snapshot
        return snap.index + 1 if snap is not None else self.storage.first_index()

    def last_index(self) -> int:
        """Return the index of the last entry (stable or not)."""
        u = self.unstable
        if u.entries:
            return u.offset + len(u.entries) - 1
        if u.snapshot is not None:
            return u.snapshot.index
        return self.storage.last_index()

    def term(self, index: int) -> int | None:
        """Return the term at ``index``; ``None`` if it was compacted or does not exist."""
        u = self.unstable
        if index >= u.offset and u.entries:
            pos = index - u.offset
            return u.entries[pos].term if pos < len(u.entries) else None
        if u.snapshot is not None:
            return u.snapshot.term if index == u.snapshot.index else None
        return self.storage.term(index)

    def last_term(self) -> int:
        """Return the term of the last entry (0 for an empty log)."""
        term = self.term(self.last_index())
        assert term is not None, "the last index always has a known term"
        return term

    def continued_run_start(self, index: int) -> int:
        """Return the first index of the run of CONTINUES entries that ends at ``index`` (an
        incomplete proposal, if ``index`` is the last), or ``index + 1`` if the entry at
        ``index`` does not continue. Never below the first available index."""
        u = self.unstable
        if u.entries and index >= u.offset:
            pos = index - u.offset
            while pos >= 0 and u.entries[pos].kind & CONTINUES:
                pos -= 1
            if pos >= 0 or u.snapshot is not None:
                return u.offset + pos + 1
            index = u.offset - 1  # the whole unstable tail continues: so may the stable log
        elif u.snapshot is not None:
            return index + 1
        return max(self.storage.continued_run_start(index), self.storage.first_index())

    def match_term(self, index: int, term: int) -> bool:
        """Return whether the entry at ``index`` has ``term``."""
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Return whether a log ending at (``last_index``, ``last_term``) is at least as
        up-to-date as ours (Raft §5.4.1)."""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def entries(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        """Return entries ``[lo, hi)`` within ``max_bytes``; raise CompactedError below first."""
        if lo < self.first_index():
            raise CompactedError(f"index {lo} is compacted")
        hi = min(hi, self.last_index() + 1)
        if lo >= hi:
            return []
        u = self.unstable
        if lo >= u.offset:
            return limit_by_bytes(u.entries[lo - u.offset : hi - u.offset], max_bytes)
        stable = self.storage.entries(lo, min(hi, u.offset), max_bytes)
        if hi <= u.offset or len(stable) < min(hi, u.offset) - lo:
            return stable
        return limit_by_bytes(stable + u.entries[: hi - u.offset], max_bytes)

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries`` (already numbered), replacing any conflicting suffix."""
        if entries:
            assert entries[0].index > self.committed, "never overwrite a committed entry"
            self.unstable.truncate_and_append(entries)

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Return the index of the first entry not already in the log with the same term,
        or 0 if every entry is present."""
        if not entries or entries[0].index > self.last_index():
            return entries[0].index if entries else 0
        for entry in entries:
            if self.term(entry.index) != entry.term:
                return entry.index
        return 0

    def maybe_append(
        self, prev_index: int, prev_term: int, entries: Sequence[Entry]
    ) -> tuple[int, Sequence[Entry]] | None:
        """Apply the log part of an AppendEntries request (Raft §5.3, Figure 2 receiver
        rules 2-4).

        Return ``None`` if the log has no entry at ``prev_index`` with ``prev_term``; otherwise
        append the part of ``entries`` not already present (dropping any conflicting suffix) and
        return (index of the last new entry, entries actually appended). The caller advances
        the commit index (rule 5).
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if not conflict:
            return last_new, ()
        appended = entries[conflict - prev_index - 1 :]
        self.append(appended)
        return last_new, appended

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Return the largest index ``<= index`` whose term is ``<= term`` (or the first
        index - 1 if none is available): a guess of where two logs may agree."""
        first = self.first_index()
        while index >= first:
            ours = self.term(index)
            if ours is None or ours <= term:
                break
            index -= 1
        return index

    def commit_to(self, index: int) -> bool:
        """Raise the commit index to ``index`` if higher; return whether it moved."""
        if index > self.committed:
            assert index <= self.last_index(), "commit beyond the log"
            self.committed = index
            return True
        return False

    def has_committed_to_apply(self) -> bool:
        """Return whether committed entries wait to be handed to the driver."""
        return self.committed > self.applying and self.applying < self.last_index()

    def take_committed(self) -> list[Entry]:
        """Return the committed entries not yet handed out and mark them as being applied."""
        lo = max(self.applying + 1, self.first_index())
        hi = min(self.committed, self.last_index()) + 1
        if lo >= hi:
            return []
        entries = self.entries(lo, hi)
        self.applying = entries[-1].index
        return entries

    def stable_to(self, index: int, term: int) -> None:
        """Forget unstable entries up to ``index`` once the driver persisted them."""
        u = self.unstable
        if index < u.offset or self.term(index) != term:
            return
        del u.entries[: index + 1 - u.offset]
        u.offset = index + 1

    def stable_snapshot(self, meta: SnapshotMeta) -> None:
        """Forget the pending snapshot once the driver installed it."""
        if self.unstable.snapshot == meta:
            self.unstable.snapshot = None

    def restore(self, meta: SnapshotMeta) -> None:
        """Replace the whole log by a snapshot point (Raft §7, InstallSnapshot rule 6-8)."""
        self.unstable.snapshot = meta
        self.unstable.entries = []
        self.unstable.offset = meta.index + 1
        self.committed = meta.index
        self.applying = max(self.applying, meta.index)
