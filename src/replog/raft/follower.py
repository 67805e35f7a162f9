"""The follower's and candidate's rules: accept entries, heartbeats and snapshots; count votes.

Functions take the :class:`~replog.raft.core.Raft` they act on; not a public API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replog.raft.messages import Message, MessageType, SnapshotMeta
from replog.raft.ready import Role

if TYPE_CHECKING:
    from replog.raft.core import Raft


def step_follower(r: Raft, m: Message) -> None:
    """Handle a message of the current term while following."""
    if m.type is MessageType.APP:
        _heard_from_leader(r, m)
        handle_append(r, m)
    elif m.type is MessageType.HEARTBEAT:
        _heard_from_leader(r, m)
        handle_heartbeat(r, m)
    elif m.type is MessageType.SNAPSHOT:
        _heard_from_leader(r, m)
        handle_snapshot(r, m)
    elif m.type is MessageType.TIMEOUT_NOW:
        r.campaign(transfer=True)  # Dissertation §3.10: skip pre-vote and leases.


def step_candidate(r: Raft, m: Message) -> None:
    """Handle a message of the current term while (pre-)campaigning."""
    if m.type in (MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAPSHOT):
        # Raft §5.2: another server won this term; recognise it.
        r.become_follower(m.term, m.src)
        step_follower(r, m)
    elif (m.type is MessageType.VOTE_RESP and r.role is Role.CANDIDATE) or (
        m.type is MessageType.PRE_VOTE_RESP and r.role is Role.PRE_CANDIDATE
    ):
        r.record_vote(m.src, granted=not m.reject)


def _heard_from_leader(r: Raft, m: Message) -> None:
    r.election_elapsed = 0
    r.lead = m.src


def handle_append(r: Raft, m: Message) -> None:
    """AppendEntries receiver (Raft Figure 2, §5.3): check consistency, append, commit."""
    if m.index < r.log.committed:
        _ack(r, m.src, r.log.committed)
        return
    result = r.log.maybe_append(m.index, m.log_term, m.entries)
    if result is None:
        _reject(r, m)
        return
    last_new, appended = result
    r.log_lost = False  # the leader resends from where our logs agree: repaired from here
    if appended:
        r.confs.observe_append(appended)  # Dissertation §4.1: in effect once appended.
    r.commit_to(min(m.commit, last_new))
    _ack(r, m.src, last_new)


def _reject(r: Raft, m: Message) -> None:
    # Tell the leader where our log may agree with its: the last index at or before the probe
    # whose term is <= the leader's term there (dissertation §5.3 fast backtracking).
    hint = r.log.find_conflict_by_term(min(m.index, r.log.last_index()), m.log_term)
    _send_reject(r, m.src, m.index, hint)


def _send_reject(r: Raft, to: int, index: int, hint: int) -> None:
    r.send(
        Message(
            type=MessageType.APP_RESP,
            src=r.id,
            dst=to,
            term=r.term,
            index=index,
            reject=True,
            reject_hint=hint,
            log_term=r.log.term(hint) or 0,
            lost_entries=r.log_lost,
        )
    )


def _ack(r: Raft, to: int, index: int) -> None:
    r.send(Message(type=MessageType.APP_RESP, src=r.id, dst=to, term=r.term, index=index))


def handle_heartbeat(r: Raft, m: Message) -> None:
    """Learn the commit index (capped by what the leader knows we hold) and answer."""
    r.commit_to(min(m.commit, r.log.last_index()))
    r.send(Message(type=MessageType.HEARTBEAT_RESP, src=r.id, dst=m.src, term=r.term))
    if r.log_lost:  # an idle leader sends no append to reject: tell it where our log ends
        _send_reject(r, m.src, r.log.last_index(), r.log.last_index())


def handle_snapshot(r: Raft, m: Message) -> None:
    """InstallSnapshot receiver (Raft §7): adopt the snapshot point unless already covered."""
    assert m.snapshot is not None
    if restore(r, m.snapshot):
        _ack(r, m.src, r.log.last_index())
    else:
        _ack(r, m.src, r.log.committed)


def restore(r: Raft, meta: SnapshotMeta) -> bool:
    """Restart the log after ``meta.index``; return False if our log already covers it."""
    if meta.index <= r.log.committed:
        return False
    if r.log.match_term(meta.index, meta.term):
        r.commit_to(meta.index)  # Our log already holds the prefix: just fast-forward.
        return False
    r.log.restore(meta)
    r.confs.reset(meta.config)
    return True
