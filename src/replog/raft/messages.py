"""The values that flow in and out of the Raft core: entries, messages, hard state.

Theory of operation: everything here is an immutable value. An :class:`Entry` is a
``NamedTuple`` rather than a dataclass because the leader builds one per proposed payload and a
tuple is the cheapest immutable record Python offers; entries travel between nodes as lists and
slices of these tuples, never copied one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import chain, repeat
from typing import NamedTuple


class EntryKind(IntEnum):
    """What an entry's ``data`` means: user bytes, the leader's no-op, or a membership change.

    Kinds from 3 up (below 64) are the application's own: the core treats them like DATA.
    The flag bit ``CONTINUES`` may be added to any kind.
    """

    DATA = 0
    NOOP = 1
    CONFIG = 2


CONTINUES = 0x40
"""Flag bit of ``Entry.kind``: the entry's proposal goes on at the next index. ``propose`` sets
it on every entry of a multi-entry proposal but the last, so a proposal is one atomic batch:
the leader only commits up to a proposal's last entry, and a new leader drops a proposal whose
last entry it lacks (see ``leader.maybe_commit`` and ``Raft.become_leader``)."""


def base_kind(kind: int) -> int:
    """Return ``kind`` without the CONTINUES flag: what the entry's data means."""
    return kind & ~CONTINUES


_new_tuple = tuple.__new__


class Entry(NamedTuple):
    """One log entry. ``index`` is the record offset in replog's log (the first index is 1)."""

    term: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    kind: int
    data: bytes


def proposal_entries(term: int, first: int, kind: int, payloads: Sequence[bytes]) -> list[Entry]:
    """Return the entries of one proposal from index ``first``: every one but the last is
    flagged CONTINUES, so the proposal commits whole or not at all."""
    count = len(payloads)
    kinds = chain(repeat(kind | CONTINUES, count - 1), (kind,))
    # tuple.__new__ over zipped fields builds Entry tuples without a Python-level call.
    fields = zip(repeat(term, count), range(first, first + count), kinds, payloads, strict=False)
    return list(map(_new_tuple, repeat(Entry, count), fields))


class MessageType(IntEnum):
    """Every message kind exchanged between peers (Raft §5, dissertation §3.10, §4.2.3, §9.6)."""

    VOTE = 1
    VOTE_RESP = 2
    PRE_VOTE = 3
    PRE_VOTE_RESP = 4
    APP = 5
    APP_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    TIMEOUT_NOW = 10


@dataclass(frozen=True, slots=True)
class Membership:
    """A cluster configuration: the voters (counted in quorums) and the learners (not counted)."""

    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()

    def members(self) -> frozenset[int]:
        """Return every node that receives replication: voters and learners."""
        return self.voters | self.learners


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent.

    ``config`` is the membership in effect at ``commit`` (the last committed configuration
    entry at or below it); configuration entries above ``commit`` are re-read from the log on
    restart, so the log and this record together give the latest configuration.
    """

    term: int = 0
    vote: int | None = None
    commit: int = 0
    config: Membership = field(default_factory=Membership)


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """The description of a log prefix a follower adopts without receiving its entries.

    The follower's log restarts right after ``index``; ``term`` is the term of the entry at
    ``index`` and ``config`` the membership in effect there. In replog the driver streams the raw
    log segments up to ``index`` alongside this metadata.
    """

    index: int
    term: int
    config: Membership


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A message between two peers. Unused fields keep their zero defaults.

    - ``index``/``log_term``: the entry preceding ``entries`` (APP), the candidate's last entry
      (VOTE, PRE_VOTE), the acknowledged or rejected index (APP_RESP);
    - ``reject_hint``: on a rejected APP_RESP, the follower's guess of the last index that may
      match, with ``log_term`` set to the follower's term at that index (fast backtracking);
    - ``transfer``: a vote requested because of a leadership transfer, which bypasses leases;
    - ``lost_entries``: on a rejected APP_RESP, the follower's log lost entries it had
      acknowledged (recovery cut them after media damage): the leader resends from the hint;
    - ``quiesce``: on a HEARTBEAT, the leader has nothing in flight and stops ticking (a hint
      for the driver, see ``replog.raft.quiesce``; the core handles the heartbeat as any other).
    """

    type: MessageType
    src: int
    dst: int
    term: int
    log_term: int = 0
    index: int = 0
    entries: Sequence[Entry] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: SnapshotMeta | None = None
    transfer: bool = False
    lost_entries: bool = False
    quiesce: bool = False
