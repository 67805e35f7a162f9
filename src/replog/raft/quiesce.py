"""Quiescence questions a driver asks the core (CockroachDB's quiescence; docs/multiraft.md).

Pure functions of a :class:`~replog.raft.core.Raft`'s state: they read it and build messages,
never change it. A driver that stops ticking an idle group asks :func:`leader_may_quiesce`
before its leader does, sends :func:`quiesce_heartbeats` as the last round, and lets a
follower stop its election timer when :func:`follower_may_quiesce` says the heartbeat it just
stepped allows it. The core itself treats a ``quiesce`` heartbeat like any other heartbeat:
quiescence changes only when ticks happen, never what a message means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from replog.raft.messages import Message, MessageType
from replog.raft.ready import Role

if TYPE_CHECKING:
    from replog.raft.core import Raft

__all__ = ["follower_may_quiesce", "leader_may_quiesce", "quiesce_heartbeats"]


def _always(peer: int) -> bool:
    return True


def leader_may_quiesce(r: Raft, live: Callable[[int], bool] = _always) -> bool:
    """Whether ``r`` leads a group with nothing in flight: every member (voters and
    learners) that ``live`` holds live holds the whole log, the whole log is committed, and
    no membership change or leadership transfer is pending. A member the driver's node
    liveness holds down is not waited for (CockroachDB quiesces past dead replicas too): it
    campaigns when it comes back, which wakes the group, and is caught up then."""
    if r.role is not Role.LEADER or r.lead_transferee is not None:
        return False
    last = r.log.last_index()
    if r.log.committed != last or r.confs.last_pending_index() > r.log.committed:
        return False
    members = r.confs.latest.members() | {r.id}
    if members != r.progress.keys():
        return False
    return all(pr.match == last for p, pr in r.progress.items() if p == r.id or live(p))


def quiesce_heartbeats(r: Raft) -> list[Message]:
    """The leader's last heartbeat round before it stops ticking: one heartbeat per peer,
    marked ``quiesce``, carrying the commit index (what ``bcast_heartbeat`` would send)."""
    return [
        Message(
            type=MessageType.HEARTBEAT,
            src=r.id,
            dst=node,
            term=r.term,
            commit=min(pr.match, r.log.committed),
            quiesce=True,
        )
        for node, pr in sorted(r.progress.items())
        if node != r.id
    ]


def follower_may_quiesce(r: Raft, m: Message) -> bool:
    """Whether ``r``, having just stepped ``m``, may stop its election timer: ``m`` is a
    ``quiesce`` heartbeat from the leader of ``r``'s current term, and ``r``'s log ends at
    that heartbeat's commit index, which ``r`` has committed."""
    return (
        m.type is MessageType.HEARTBEAT
        and m.quiesce
        and r.role is Role.FOLLOWER
        and m.term == r.term
        and r.lead == m.src
        and r.log.last_index() == m.commit == r.log.committed
    )
