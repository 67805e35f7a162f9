"""The event log of the Raft groups one node hosts: elections and leader changes, named.

One line per event at INFO, naming nodes by their names (never the derived integer ids),
with the structured fields in ``extra`` (``--log-format json`` prints them as keys: event,
node, group, topic, partition, term, from, to, reason, ...). Kinds, as this node sees its
role and its leader change (Ready's soft state):

- ``election_won``: this node became the group's leader;
- ``election_lost``: it was a candidate and another node won (or a later term began);
- ``stepped_down``: it led and no longer does (a transfer, a higher term);
- ``leader_changed``: as a follower it learnt of a new leader.

With a thousand partitions one node's failure changes hundreds of leaders at once, so the
partition groups' events are gathered for ``window_s`` (1 s) and logged as one summary line
per kind ("became leader of 388 partitions (orders/0, orders/3, ... +380) in terms 4-5"),
with up to ``SAMPLE`` partitions named; a window with a single partition's event logs that
partition's own line. The controller group's events are logged at once, one line each.
A reason is given when this node knows it: node liveness reported the old leader's node
unreachable, or this node began a leadership transfer (``note_transfer``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from replog.raft.ready import Role

if TYPE_CHECKING:
    from replog.cluster.raft_node import RaftNode

__all__ = ["SAMPLE", "GroupEvents", "group_labels", "note_transfer"]

log = logging.getLogger("replog.cluster.events")

SAMPLE = 8
"""How many partitions a summary line names."""

_transfers: weakref.WeakKeyDictionary[RaftNode, str] = weakref.WeakKeyDictionary()


def note_transfer(node: RaftNode, why: str) -> None:
    """Say why ``node`` (a leader) is about to hand its leadership over: the reason of its
    next ``stepped_down`` line."""
    _transfers[node] = why


def group_labels(group: str) -> tuple[str, str | None, int | None]:
    """(label, topic, partition) of a group id: ``"controller"`` for the controller group
    (""), ``"orders/3"`` with its topic and partition for ``"orders/3@17"``."""
    if not group:
        return "controller", None, None
    ref = group.rsplit("@", 1)[0]
    topic, _, partition = ref.rpartition("/")
    if not topic or not partition.isdigit():
        return ref, None, None
    return ref, topic, int(partition)


@dataclass(frozen=True, slots=True)
class _Change:
    kind: str
    group: str
    term: int
    old: str | None  # the leader before (None: none known)
    new: str | None  # the leader now (None: none known yet)
    reason: str


_SINGLE = {
    "election_won": "{where}: this node won the election in term {term}{old}{why}",
    "election_lost": "{where}: this node lost the election in term {term}{new}{why}",
    "stepped_down": "{where}: this node stepped down as leader in term {term}{new}{why}",
    "leader_changed": "{where}: leader changed{old_from} to {to} in term {term}{why}",
}
_SUMMARY = {
    "election_won": "became leader of {count} partitions ({sample}) in {terms}{why}",
    "election_lost": "lost the election of {count} partitions ({sample}) in {terms}{why}",
    "stepped_down": "stepped down as leader of {count} partitions ({sample}) in {terms}{why}",
    "leader_changed": "{count} partitions have a new leader ({sample}) in {terms}: {to}{why}",
}


class GroupEvents:
    """Logs the elections and leader changes of the groups ``watch``ed (see the module
    docstring); ``name_of`` names a node by its Raft id."""

    def __init__(
        self, name: str, node_id: int, name_of: Callable[[int], str], window_s: float = 1.0
    ) -> None:
        """Events of node ``name`` (Raft id ``node_id``); partition events are gathered for
        ``window_s`` seconds."""
        self.name = name
        self.node_id = node_id
        self.name_of = name_of
        self.window_s = window_s
        self._role: dict[str, Role] = {}
        self._leader: dict[str, int] = {}  # the last leader known of each group
        self._reasons: dict[str, str] = {}
        self.leader_changes: dict[str, int] = {}
        """How often each group's leader became another node, as this node saw it (the
        first leader it learnt after it started counts)."""
        self._pending: list[_Change] = []
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, group: str, node: RaftNode) -> None:
        """Log ``node``'s elections and leader changes as those of ``group``."""
        self._role[group] = node.raft.role
        node.on_leader_change = functools.partial(self._changed, group, node)
        node.on_promote = functools.partial(self.promoting, group)

    def forget(self, group: str) -> None:
        """Stop following ``group`` (no longer hosted here)."""
        self._role.pop(group, None)
        self._leader.pop(group, None)
        self._reasons.pop(group, None)
        self.leader_changes.pop(group, None)

    def reason(self, group: str, why: str) -> None:
        """The reason of ``group``'s next leader change, as far as this node knows it."""
        self._reasons[group] = why

    def promoting(self, group: str, learner: int) -> None:
        """Log that this leader proposes making ``learner`` a voter of ``group``."""
        where, topic, partition = group_labels(group)
        who = self.name_of(learner)
        log.info(
            "%s: promoting %s from learner to voter (it caught up)",
            where,
            who,
            extra=self._fields("node_promoted", where, topic, partition, {"peer": who}),
        )

    def _changed(self, group: str, node: RaftNode, leader: int | None) -> None:
        raft = node.raft
        role, before = raft.role, self._role.get(group, Role.FOLLOWER)
        self._role[group] = role
        last = self._leader.get(group)
        if leader is not None and leader != last:
            self._leader[group] = leader
            self.leader_changes[group] = self.leader_changes.get(group, 0) + 1
        kind = _kind(before, role, last, leader)
        if kind is None:
            return
        why = self._reasons.pop(group, "")
        if kind == "stepped_down":
            why = _transfers.pop(node, why)
        old = self.name_of(last) if last is not None and last != self.node_id else None
        new = self.name_of(leader) if leader is not None else None
        change = _Change(kind, group, raft.term, old, new, why)
        if not group:
            self._log_one(change)
            return
        self._pending.append(change)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.window_s, self.flush)

    def flush(self) -> None:
        """Log the gathered partition events now (one line per kind)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        by_kind: dict[str, list[_Change]] = {}
        for change in pending:
            by_kind.setdefault(change.kind, []).append(change)
        for changes in by_kind.values():
            if len(changes) == 1:
                self._log_one(changes[0])
            else:
                self._log_summary(changes)

    def _fields(
        self,
        event: str,
        where: str,
        topic: str | None,
        partition: int | None,
        more: Mapping[str, object],
    ) -> dict[str, object]:
        out: dict[str, object] = {"event": event, "node": self.name, "group": where}
        if topic is not None:
            out |= {"topic": topic, "partition": partition}
        out.update(more)
        return out

    def _log_one(self, c: _Change) -> None:
        where, topic, partition = group_labels(c.group)
        text = _SINGLE[c.kind].format(
            where="the controller group" if not c.group else where,
            term=c.term,
            old=f" (the leader before: {c.old})" if c.old else "",
            old_from=f" from {c.old}" if c.old else "",
            new=f" (leader: {c.new})" if c.new else "",
            to=c.new,
            why=f"; {c.reason}" if c.reason else "",
        )
        more = {"term": c.term, "from": c.old, "to": c.new, "reason": c.reason or None}
        log.info(text, extra=self._fields(c.kind, where, topic, partition, more))

    def _log_summary(self, changes: list[_Change]) -> None:
        kind = changes[0].kind
        names = [group_labels(c.group)[0] for c in changes]
        shown = ", ".join(names[:SAMPLE]) + (
            f", ... +{len(names) - SAMPLE}" if len(names) > SAMPLE else ""
        )
        terms = sorted({c.term for c in changes})
        span = f"term {terms[0]}" if len(terms) == 1 else f"terms {terms[0]}-{terms[-1]}"
        targets = Counter(c.new for c in changes if c.new is not None)
        olds = {c.old for c in changes}
        reasons = {c.reason for c in changes}
        why = reasons.pop() if len(reasons) == 1 else ""
        text = _SUMMARY[kind].format(
            count=len(changes),
            sample=shown,
            terms=span,
            to=", ".join(f"{n} for {k}" for n, k in targets.most_common()),
            why=f"; {why}" if why else "",
        )
        fields: dict[str, object] = {
            "event": kind,
            "node": self.name,
            "count": len(changes),
            "partitions": names[:SAMPLE],
            "term_min": terms[0],
            "term_max": terms[-1],
            "from": olds.pop() if len(olds) == 1 else None,
            "to": dict(targets),
            "reason": why or None,
        }
        log.info(text, extra=fields)


def _kind(before: Role, role: Role, last: int | None, leader: int | None) -> str | None:
    """The event a soft-state change is, if any (see the module docstring)."""
    if role is Role.LEADER:
        return None if before is Role.LEADER else "election_won"
    if before is Role.LEADER:
        return "stepped_down"
    if before is Role.CANDIDATE and role is Role.FOLLOWER:
        return "election_lost"
    if role is Role.FOLLOWER and leader is not None and leader != last:
        return "leader_changed"
    return None
