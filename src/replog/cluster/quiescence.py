"""Whether a RaftNode's group ticks: quiescence of idle groups (docs/multiraft.md), opt-in.

Theory of operation: the node consults one :class:`Quiescence` each turn of its loop. At the
start of a turn (``before_step``) a quiet group wakes if anything but quiet traffic came in
(a quiet leader ignores heartbeat answers of its term; a quiet follower ignores repeated
``quiesce`` heartbeats of its leader) or an input is queued (proposal, ``call``, snapshot
report) or the host asked (``unquiesce``); a woken follower restarts its election timer from
zero. At the end of a turn (``settle``) an idle leader whose peers all answered a message
carrying the current commit index sends one last ``quiesce`` heartbeat round and goes quiet;
a follower whose last message of the turn was such a heartbeat, from a leader the host says
is live, goes quiet too. A quiet node does not tick: its task sleeps until woken.

Failover while quiet is the host's job: it calls ``RaftNode.unquiesce`` when node liveness
reports the leader's node down, and ``leader_live`` keeps a follower from quiescing on a
heartbeat that was in flight when its leader's node went down. Quiescence never changes what
the core does with a message, only when it ticks, so safety does not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from replog.raft.core import Raft
from replog.raft.messages import Message, MessageType
from replog.raft.quiesce import follower_may_quiesce, leader_may_quiesce, quiesce_heartbeats
from replog.raft.ready import Role

__all__ = ["Quiescence"]

_ACKS = frozenset({MessageType.HEARTBEAT_RESP, MessageType.APP_RESP})
_CARRY_COMMIT = frozenset({MessageType.HEARTBEAT, MessageType.APP})


class Quiescence:
    """The quiescence state of one node's group; inert unless ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        """Start awake."""
        self.enabled = enabled
        self.quiet = False
        """Whether the group is quiesced (no ticks)."""
        self.turns = 0
        """How many turns the node's loop ran (every wakeup is one turn)."""
        self.quiesced = 0
        """How many times the group went quiet."""
        self._wake_requested = False
        self._term = -1
        self._sent: dict[int, int] = {}  # peer -> highest commit index sent to it
        self._told: dict[int, int] = {}  # peer -> commit index it answered a message with
        self._offer: Message | None = None

    def request_wake(self) -> None:
        """Wake at the next turn (the host's ``unquiesce``)."""
        self._wake_requested = True

    def before_step(self, r: Raft, inbox: Sequence[Message], queued: bool) -> bool:
        """Note the messages about to be stepped; return whether a quiet group woke now
        (``queued``: a proposal, call or other input waits)."""
        self.turns += 1
        if not self.enabled:
            return False
        self._follow_term(r)
        for m in inbox:
            if m.type in _ACKS and m.term == r.term and not m.reject:
                self._told[m.src] = max(self._told.get(m.src, 0), self._sent.get(m.src, 0))
        last = inbox[-1] if inbox else None
        self._offer = last if last is not None and last.quiesce else None
        wake = self._wake_requested or queued or not all(_quiet(r, m) for m in inbox)
        self._wake_requested = False
        if not (self.quiet and wake):
            return False
        self.quiet = False
        if r.role is not Role.LEADER:
            r.election_elapsed = 0  # a woken follower waits a whole election timeout
        return True

    def sent(self, r: Raft, messages: Sequence[Message]) -> None:
        """Note the commit index each leader message tells its peer."""
        if not self.enabled:
            return
        self._follow_term(r)
        for m in messages:
            if m.type in _CARRY_COMMIT and m.src == r.id:
                self._sent[m.dst] = max(self._sent.get(m.dst, 0), m.commit)

    def settle(self, r: Raft, *, idle: bool, leader_live: Callable[[int], bool]) -> list[Message]:
        """At the end of a turn (``idle``: nothing queued, nothing to persist or apply, no
        producer waiting): maybe go quiet; return the leader's last heartbeats to send.
        ``leader_live`` is node liveness: a leader does not wait for peers it holds down."""
        if not self.enabled or self.quiet or not idle or self._wake_requested:
            return []
        if r.role is Role.LEADER:
            commit = r.log.committed
            told = all(
                self._told.get(p, 0) >= commit for p in r.progress if p != r.id and leader_live(p)
            )
            if not (told and leader_may_quiesce(r, leader_live)):
                return []
            self._go_quiet()
            return quiesce_heartbeats(r)
        offer = self._offer
        if offer is not None and follower_may_quiesce(r, offer) and leader_live(offer.src):
            self._go_quiet()
        return []

    def _go_quiet(self) -> None:
        self.quiet = True
        self.quiesced += 1
        self._offer = None

    def _follow_term(self, r: Raft) -> None:
        """Forget what peers were told when the term (and so the leadership) changes."""
        if r.term != self._term or r.role is not Role.LEADER:
            self._term = r.term if r.role is Role.LEADER else -1
            self._sent.clear()
            self._told.clear()


def _quiet(r: Raft, m: Message) -> bool:
    """Whether ``m`` leaves a quiet group quiet: an answer to the leader's heartbeats, or a
    repeated ``quiesce`` heartbeat from the follower's leader."""
    if m.term != r.term:
        return False
    if r.role is Role.LEADER:
        return m.type is MessageType.HEARTBEAT_RESP
    return m.type is MessageType.HEARTBEAT and m.quiesce and m.src == r.lead
