"""Membership changes one server at a time (dissertation ch. 4).

A configuration entry takes effect on a node as soon as it is in that node's log, committed or
not; if the log is truncated, the configuration goes back to the previous one. The
:class:`ConfigTracker` keeps the committed configuration plus the uncommitted configuration
entries above it, so both truncation and commit are cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from operator import itemgetter

from replog.raft.errors import ConfChangeError
from replog.raft.messages import Entry, EntryKind, Membership

_kind_of = itemgetter(2)


class ConfChangeOp(Enum):
    """The single-server changes: add a learner, promote it to voter, remove a node."""

    ADD_LEARNER = "add-learner"
    PROMOTE = "promote"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change, stored as the ``data`` of a CONFIG entry."""

    op: ConfChangeOp
    node_id: int

    def encode(self, result: Membership) -> bytes:
        """Return the entry payload: the change and the full configuration it produces,
        e.g. ``b"promote 4 voters=1,2,3,4 learners="``. Carrying the whole configuration
        lets a node that joined late (and never saw the bootstrap one) know every member."""
        voters = ",".join(map(str, sorted(result.voters)))
        learners = ",".join(map(str, sorted(result.learners)))
        return f"{self.op.value} {self.node_id} voters={voters} learners={learners}".encode()

    @staticmethod
    def decode(data: bytes) -> tuple[ConfChange, Membership]:
        """Parse a payload written by :meth:`encode`; raise ValueError if malformed."""
        op, node, voters, learners = data.decode().split(" ")
        return ConfChange(ConfChangeOp(op), int(node)), Membership(
            _ids(voters, "voters="), _ids(learners, "learners=")
        )


def _ids(text: str, prefix: str) -> frozenset[int]:
    if not text.startswith(prefix):
        raise ValueError(f"expected {prefix!r} in {text!r}")
    body = text[len(prefix) :]
    return frozenset(int(part) for part in body.split(",")) if body else frozenset()


def validate(config: Membership, change: ConfChange) -> None:
    """Raise :class:`ConfChangeError` if ``change`` makes no sense for ``config``."""
    node = change.node_id
    if change.op is ConfChangeOp.ADD_LEARNER and node in config.members():
        raise ConfChangeError(f"node {node} is already a member")
    if change.op is ConfChangeOp.PROMOTE and node not in config.learners:
        raise ConfChangeError(f"node {node} is not a learner")
    if change.op is ConfChangeOp.REMOVE:
        if node not in config.members():
            raise ConfChangeError(f"node {node} is not a member")
        if config.voters == {node}:
            raise ConfChangeError("cannot remove the last voter")


def apply_change(config: Membership, change: ConfChange) -> Membership:
    """Return ``config`` with ``change`` applied; raise ConfChangeError if it is invalid."""
    validate(config, change)
    node = change.node_id
    if change.op is ConfChangeOp.ADD_LEARNER:
        return Membership(config.voters, config.learners | {node})
    if change.op is ConfChangeOp.PROMOTE:
        return Membership(config.voters | {node}, config.learners - {node})
    return Membership(config.voters - {node}, config.learners - {node})


def config_of(entry: Entry, current: Membership) -> Membership:
    """Return the configuration a CONFIG entry installs (``current`` if it is malformed)."""
    try:
        return ConfChange.decode(entry.data)[1]
    except ValueError:
        return current


class ConfigTracker:
    """The committed configuration plus the configuration entries above the commit index."""

    __slots__ = ("committed", "pending")

    def __init__(self, committed: Membership) -> None:
        """Start from the configuration in effect at the commit index."""
        self.committed = committed
        self.pending: list[tuple[int, Membership]] = []

    @property
    def latest(self) -> Membership:
        """Return the configuration in effect: the last one in the log."""
        return self.pending[-1][1] if self.pending else self.committed

    def last_pending_index(self) -> int:
        """Return the index of the last uncommitted configuration entry (0 if none)."""
        return self.pending[-1][0] if self.pending else 0

    def observe_append(self, entries: Sequence[Entry]) -> bool:
        """Account for ``entries`` written to the log (replacing anything from their first
        index); return whether the configuration in effect changed."""
        if not entries:
            return False
        before = self.latest
        first = entries[0].index
        while self.pending and self.pending[-1][0] >= first:
            self.pending.pop()
        if EntryKind.CONFIG in map(_kind_of, entries):
            config = self.latest
            for entry in entries:
                if entry.kind == EntryKind.CONFIG:
                    config = config_of(entry, config)
                    self.pending.append((entry.index, config))
        return self.latest != before

    def commit_to(self, index: int) -> None:
        """Fold the configuration entries at or below ``index`` into the committed one."""
        while self.pending and self.pending[0][0] <= index:
            self.committed = self.pending.pop(0)[1]

    def reset(self, committed: Membership) -> None:
        """Forget everything (after installing a snapshot)."""
        self.committed = committed
        self.pending = []
