"""Power cuts under Raft's store: ``ReplogLogStore`` on a FaultyFileSystem, a model of what it
must hold, and the check run after every reopen.

What a Raft node relies on (dissertation §3.8: "the log and the hard state are on stable
storage before any message that depends on them is sent"):
- ``append(entries)`` returned -> those entries, and every entry before them, are durable;
  the suffix it replaced (a conflicting tail) is gone for good and never reappears.
- ``save_hard_state(s)`` returned after a change of term, vote or configuration -> ``s`` is
  durable (a commit-only change may be written later: the commit index is volatile).
- an operation cut short by the power may or may not have happened (but not half of a
  hard state: the state file is replaced atomically).

The model (:class:`StoreModel`) tracks, per index, every entry that may be there after a cut
(``allowed``) and those that must be (``required``), plus every hard state handed to the store
since the last durable one. :func:`check_reopened` compares a reopened store with it.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field, replace

from replog.cluster.log_store import ReplogLogStore
from replog.errors import ReplogError
from replog.raft.messages import Entry, HardState, Membership
from replog.storage import LogConfig
from replog.storage.config import SyncPolicy
from replog.storage.faultfs import FaultyFileSystem
from replog.v1.record_pb2 import Record

DIRECTORY = "/node"
# commit_flush_s: every hard state written at once, or commit-only changes never (until close)
FLUSH_CHOICES = (0.0, 3600.0)


def open_store(fs: FaultyFileSystem, sync: SyncPolicy, commit_flush_s: float) -> ReplogLogStore:
    """The store as a cluster node opens it, with small segments so that rolls happen."""
    config = LogConfig(max_store_bytes=512, max_index_bytes=120, max_record_bytes=200, sync=sync)
    return ReplogLogStore(DIRECTORY, config, commit_flush_s=commit_flush_s, fs=fs)


def abandon(store: ReplogLogStore) -> None:
    """Forget a store whose process "died" at a power cut (its handles are dead)."""
    with contextlib.suppress(ReplogError, OSError, ValueError):
        store.log.close()


def make_entry(rng: random.Random, tag: int, index: int, term: int) -> Entry:
    """A user-data entry (a Record the leader built: offset = index, with its term) most of
    the time, else a no-op, configuration or address-book entry."""
    body = b"%08x-%d-" % (tag, index) + rng.randbytes(rng.randrange(0, 40))
    kind = 0 if rng.random() < 0.8 else rng.choice((1, 2, 3))
    if kind == 0:
        record = Record(value=body, offset=index, term=term, timestamp_ms=1 + index)
        return Entry(term, index, 0, record.SerializeToString())
    return Entry(term, index, kind, body)


@dataclass
class StoreModel:
    """What the store may and must hold (see the module docstring)."""

    current: dict[int, Entry] = field(default_factory=dict)
    allowed: dict[int, set[Entry]] = field(default_factory=dict)
    required: dict[int, Entry] = field(default_factory=dict)
    saves: list[HardState] = field(default_factory=lambda: [HardState()])
    durable_save: int = 0
    """Index in ``saves`` of the newest hard state known durable."""
    compacted_to: int = 0
    """Entries up to this may be gone (a compaction was asked up to it; a crash in one may
    leave its last dropped index as the snapshot point)."""

    @property
    def last(self) -> int:
        return max(self.current, default=0)

    @property
    def state(self) -> HardState:
        return self.saves[-1]

    def before_append(self, entries: list[Entry]) -> None:
        for e in entries:
            self.allowed.setdefault(e.index, set()).add(e)
        # The entries it replaces are no longer owed, whether or not it completes.
        first = entries[0].index
        self.required = {i: e for i, e in self.required.items() if i < first}

    def appended(self, entries: list[Entry]) -> None:
        first = entries[0].index
        self.current = {i: e for i, e in self.current.items() if i < first}
        self.current.update((e.index, e) for e in entries)
        # Durable now (sync="always"): exactly these, and nothing that was cut may come back.
        self.allowed = {i: {e} for i, e in self.current.items()}
        self.required = dict(self.current)

    def before_save(self, state: HardState) -> None:
        self.saves.append(state)

    def saved(self, *, written: bool) -> None:
        if written:
            self.durable_save = len(self.saves) - 1

    def reopened(self, entries: dict[int, Entry], state: HardState) -> None:
        """After a successful check: what the reopened store holds is the new baseline."""
        self.current = dict(entries)
        self.allowed = {i: {e} for i, e in entries.items()}
        self.required = dict(entries)
        self.saves = [state]
        self.durable_save = 0


def check_reopened(store: ReplogLogStore, model: StoreModel, context: str) -> dict[int, Entry]:
    """Assert the reopened store agrees with the model; return the entries it holds."""
    first, last = store.first_index(), store.last_index()
    assert first <= last + 1, f"{context}: first index {first} > last index {last} + 1"
    held = {e.index: e for e in store.entries(first, last + 1, 1 << 30)} if last >= first else {}
    assert sorted(held) == list(range(first, last + 1)), f"{context}: entries are not dense"
    for index, entry in held.items():
        assert store.term(index) == entry.term, f"{context}: term({index}) != its entry's term"
        allowed = model.allowed.get(index, set())
        assert entry in allowed, (
            f"{context}: index {index} holds {entry!r}, which was never appended there or was "
            f"replaced by a completed append (allowed: {sorted(allowed)!r})"
        )
    kept = {i: e for i, e in model.required.items() if i > model.compacted_to}
    lost = {i: e for i, e in kept.items() if held.get(i) != e}
    assert not lost, f"{context}: entries appended durably were lost or changed: {lost}"
    point = first - 1
    if point in model.allowed:
        terms = {e.term for e in model.allowed[point]}
        assert store.term(point) in terms, f"{context}: the snapshot point {point} has a wrong term"
    state = store.initial_state()
    candidates = model.saves[model.durable_save :]
    assert state in candidates, (
        f"{context}: the hard state read back, {state}, is not one saved since the last "
        f"durable one ({model.saves[model.durable_save]}); saved since: {candidates[1:]}"
    )
    return held


def _next_state(rng: random.Random, state: HardState, last: int) -> HardState:
    choice = rng.random()
    if choice < 0.35:  # a new term, with or without a vote
        return replace(state, term=state.term + 1, vote=rng.choice((None, 1, 2, 3)))
    if choice < 0.5 and state.vote is None:
        return replace(state, vote=rng.choice((1, 2, 3)))
    if choice < 0.6:
        voters = frozenset(rng.sample((1, 2, 3, 4, 5), rng.randint(1, 3)))
        return replace(state, config=Membership(voters))
    return replace(state, commit=rng.randint(state.commit, max(state.commit, last)))


def run_workload(
    store: ReplogLogStore, model: StoreModel, rng: random.Random, steps: int, flush_s: float
) -> int:
    """Random appends (some replacing a tail above the commit index), hard-state saves and
    compactions; stops at the first storage error. Returns how many operations completed."""
    tag = rng.getrandbits(32)
    for step in range(steps):
        choice = rng.random() if step else 0.0  # the first operation appends at the end
        try:
            if choice < 0.6:
                state = model.state
                lo = max(state.commit, store.first_index() - 1, model.compacted_to) + 1
                first = rng.randint(lo, model.last + 1) if rng.random() < 0.3 else model.last + 1
                first = max(first, lo)
                term = max(state.term, 1)
                entries = [make_entry(rng, tag, first + i, term) for i in range(rng.randint(1, 6))]
                model.before_append(entries)
                store.append(entries)
                model.appended(entries)
            elif choice < 0.95:
                old = model.state
                new = _next_state(rng, old, model.last)
                if new == old:
                    continue
                written = model.saves[model.durable_save]
                changed = (new.term, new.vote, new.config) != (
                    written.term,
                    written.vote,
                    written.config,
                )
                model.before_save(new)
                store.save_hard_state(new)
                model.saved(written=changed or flush_s == 0.0)
            elif model.state.commit > store.first_index():
                index = rng.randint(store.first_index() + 1, model.state.commit)
                model.compacted_to = max(model.compacted_to, index)
                before = store.first_index()
                store.compact(index)
                model.saved(written=store.first_index() != before)  # it wrote the state
        except (ReplogError, OSError):
            return step
    return steps
