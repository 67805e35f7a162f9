"""The leader's rules: replication, commitment, heartbeats, check-quorum, transfer.

Functions take the :class:`~replog.raft.core.Raft` they act on; they are split from ``core`` by
concern only and are not a public API.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING

from replog.raft.errors import CompactedError
from replog.raft.messages import Entry, Message, MessageType, SnapshotMeta
from replog.raft.progress import Progress, ProgressState
from replog.raft.quorum import committed_index, has_quorum
from replog.raft.ready import Role

if TYPE_CHECKING:
    from replog.raft.core import Raft

# A deliberately broken rule for mutation tests only (Raft §5.4.2 / Figure 8 violated when on).
_UNSAFE_COMMIT_OLD_TERMS = False
# Another, for the batch rule: commit the index a majority holds even inside a proposal.
_UNSAFE_COMMIT_PART_OF_PROPOSAL = False


def init_progress(r: Raft, last: int) -> None:
    """Start tracking every member: probe from ``last + 1``, the end of our log once its
    incomplete tail proposal is dropped (Raft §5.3 nextIndex)."""
    r.progress = {}
    r.proposal_ends = []
    for node in r.confs.latest.members() | {r.id}:
        r.progress[node] = Progress(last + 1, r.cfg.max_inflight_msgs)
    own = r.progress[r.id]
    own.match = last
    own.become_replicate()
    own.recent_active = True


def sync_progress(r: Raft) -> None:
    """Follow a configuration change: track new members, forget removed ones."""
    members = r.confs.latest.members() | {r.id}
    last = r.log.last_index()
    for node in members - r.progress.keys():
        pr = Progress(last, r.cfg.max_inflight_msgs)
        pr.recent_active = True
        r.progress[node] = pr
    for node in r.progress.keys() - members:
        del r.progress[node]
    if r.lead_transferee is not None and r.lead_transferee not in r.confs.latest.voters:
        r.lead_transferee = None


def append_entries(r: Raft, entries: Sequence[Entry]) -> None:
    """Append already-numbered entries of the current term (one proposal) and replicate them."""
    r.log.append(entries)
    r.proposal_ends.append(entries[-1].index)
    if r.confs.observe_append(entries):
        sync_progress(r)
    r.progress[r.id].maybe_update(entries[-1].index)
    maybe_commit(r)
    bcast_append(r)


def maybe_commit(r: Raft) -> bool:
    """Advance the commit index to the end of the last proposal of this term replicated on a
    majority of voters (Raft §5.4.2; a proposal commits whole, so the index a majority holds
    is rounded down to a proposal's end). Return whether it moved."""
    match = {node: pr.match for node, pr in r.progress.items()}
    index = committed_index(r.confs.latest.voters, match)
    if index <= r.log.committed:
        return False
    if r.log.term(index) != r.term and not _UNSAFE_COMMIT_OLD_TERMS:
        return False
    ends = r.proposal_ends
    if r.log.term(index) == r.term and not _UNSAFE_COMMIT_PART_OF_PROPOSAL:
        index = ends[bisect.bisect_right(ends, index) - 1] if ends and ends[0] <= index else 0
        if index <= r.log.committed:
            return False
    del ends[: bisect.bisect_right(ends, index)]
    r.commit_to(index)
    if r.id not in r.confs.committed.voters:
        # Dissertation §4.2.2: a removed leader steps down once the removal commits; tell the
        # others the new commit index first.
        bcast_append(r)
        r.become_follower(r.term, None)
    return True


def bcast_append(r: Raft) -> None:
    """Send new entries (or just the commit index) to every peer that is not paused."""
    for node in r.progress:
        if node != r.id:
            send_append(r, node)


def send_append(r: Raft, to: int, *, send_if_empty: bool = True) -> bool:
    """Send ``to`` the entries from its ``next`` index (Raft §5.3), or a snapshot if those
    entries were compacted away (§7). Return whether a message was sent."""
    pr = r.progress[to]
    if pr.is_paused():
        return False
    prev = pr.next - 1
    prev_term = r.log.term(prev)
    if prev_term is None:
        return _send_snapshot(r, to, pr)
    try:
        entries = r.log.entries(pr.next, r.log.last_index() + 1, r.cfg.max_msg_bytes)
    except CompactedError:
        return _send_snapshot(r, to, pr)
    if not entries and not send_if_empty:
        return False
    r.send(
        Message(
            type=MessageType.APP,
            src=r.id,
            dst=to,
            term=r.term,
            index=prev,
            log_term=prev_term,
            entries=entries,
            commit=r.log.committed,
        )
    )
    pr.sent_entries(prev + len(entries), len(entries))
    return True


def _send_snapshot(r: Raft, to: int, pr: Progress) -> bool:
    """Send the snapshot point ``(commit, term, committed config)``; the driver streams the
    log prefix behind it."""
    index = r.log.committed
    term = r.log.term(index)
    assert term is not None, "the commit index is never compacted away"
    meta = SnapshotMeta(index, term, r.confs.committed)
    r.send(Message(type=MessageType.SNAPSHOT, src=r.id, dst=to, term=r.term, snapshot=meta))
    pr.become_snapshot(index)
    return True


def bcast_heartbeat(r: Raft) -> None:
    """Send a heartbeat to every peer, carrying a commit index it can safely apply."""
    for node, pr in r.progress.items():
        if node != r.id:
            commit = min(pr.match, r.log.committed)
            r.send(
                Message(type=MessageType.HEARTBEAT, src=r.id, dst=node, term=r.term, commit=commit)
            )


def tick_heartbeat(r: Raft) -> None:
    """The leader's clock: check-quorum and transfer timeouts, then heartbeats."""
    r.heartbeat_elapsed += 1
    r.election_elapsed += 1
    if r.election_elapsed >= r.cfg.election_ticks:
        r.election_elapsed = 0
        if r.cfg.check_quorum and not _quorum_active(r):
            r.become_follower(r.term, None)  # Dissertation §6.2: we may be partitioned away.
            return
        r.lead_transferee = None  # §3.10: abort a transfer that did not finish in time.
    if r.heartbeat_elapsed >= r.cfg.heartbeat_ticks:
        r.heartbeat_elapsed = 0
        bcast_heartbeat(r)


def _quorum_active(r: Raft) -> bool:
    active = {node for node, pr in r.progress.items() if pr.recent_active or node == r.id}
    for node, pr in r.progress.items():
        if node != r.id:
            pr.recent_active = False
    return has_quorum(r.confs.latest.voters, active)


def step_leader(r: Raft, m: Message) -> None:
    """Handle a message of the current term while leading."""
    pr = r.progress.get(m.src)
    if pr is None:
        return
    if m.type is MessageType.APP_RESP:
        pr.recent_active = True
        if m.reject:
            _handle_reject(r, m, pr)
        else:
            _handle_ack(r, m, pr)
    elif m.type is MessageType.HEARTBEAT_RESP:
        _handle_heartbeat_resp(r, m, pr)


def _handle_reject(r: Raft, m: Message, pr: Progress) -> None:
    if m.lost_entries and m.reject_hint < pr.match:
        # The follower lost entries it had acknowledged (media damage): what we knew it
        # matched is gone, so match moves back and the lost entries are sent again. Without
        # this, a rejection at or below match reads as stale and the leader probes past the
        # follower's end forever.
        pr.match = m.reject_hint
        pr.become_probe()
        send_append(r, m.src)
        return
    # Fast backtracking: skip every entry of the follower's conflicting term at once.
    next_probe = m.reject_hint
    if m.log_term > 0:
        next_probe = r.log.find_conflict_by_term(m.reject_hint, m.log_term)
    if pr.maybe_decr_to(m.index, next_probe):
        if pr.state is ProgressState.REPLICATE:
            pr.become_probe()
        send_append(r, m.src)


def _handle_ack(r: Raft, m: Message, pr: Progress) -> None:
    was_paused = pr.is_paused()
    if pr.maybe_update(m.index):
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if maybe_commit(r):
            if r.role is not Role.LEADER:
                return
            bcast_append(r)  # Tell every follower the new commit index.
        elif was_paused:
            send_append(r, m.src)
        while send_append(r, m.src, send_if_empty=False):
            pass
    if m.src == r.lead_transferee and pr.match == r.log.last_index():
        send_timeout_now(r, m.src)


def _handle_heartbeat_resp(r: Raft, m: Message, pr: Progress) -> None:
    pr.recent_active = True
    pr.probe_sent = False
    if pr.state is ProgressState.REPLICATE and pr.inflights.full():
        pr.inflights.free_first_one()
    if pr.state is ProgressState.SNAPSHOT:
        # The snapshot may have been lost: retry after an election timeout's worth of beats.
        pr.snapshot_heartbeats += 1
        if pr.snapshot_heartbeats * r.cfg.heartbeat_ticks >= r.cfg.election_ticks:
            pr.become_probe()
    if pr.match < r.log.last_index() or pr.state is ProgressState.PROBE:
        send_append(r, m.src)


def learner_to_promote(r: Raft, max_lag: int) -> int | None:
    """Return a learner that is caught up (within ``max_lag`` entries of the commit index)
    and may be promoted now, if this node leads and no membership change is in flight.

    A learner that never acknowledged an append (match 0: it may never have started) is
    never one: a voter that holds nothing would only make the quorum harder to reach.
    """
    if r.role is not Role.LEADER or r.confs.last_pending_index() > r.log.committed:
        return None
    for learner in sorted(r.config.learners):
        pr = r.progress.get(learner)
        if pr is not None and pr.match and r.log.committed - pr.match <= max_lag:
            return learner
    return None


def start_transfer(r: Raft, to: int) -> None:
    """Begin a leadership transfer to ``to`` (dissertation §3.10)."""
    if r.lead_transferee == to:
        return
    r.lead_transferee = to
    r.election_elapsed = 0
    if r.progress[to].match == r.log.last_index():
        send_timeout_now(r, to)
    else:
        send_append(r, to)


def send_timeout_now(r: Raft, to: int) -> None:
    """Tell an up-to-date ``to`` to start an election immediately."""
    r.send(Message(type=MessageType.TIMEOUT_NOW, src=r.id, dst=to, term=r.term))


def snapshot_reported(r: Raft, to: int, *, ok: bool) -> None:
    """Resume probing ``to`` after the driver finished (or failed) streaming a snapshot."""
    pr = r.progress[to]
    if pr.state is not ProgressState.SNAPSHOT:
        return
    if not ok:
        pr.pending_snapshot = 0
    pr.become_probe()
    pr.probe_sent = True  # Wait for the next heartbeat response before probing.
