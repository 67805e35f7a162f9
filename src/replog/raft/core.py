"""The Raft state machine, sans I/O (Raft paper §5, Ongaro's dissertation ch. 3, 4, 6, 9).

Theory of operation: a :class:`Raft` object is fed inputs (``tick``, ``step``, ``propose``,
``propose_conf_change``, ``transfer_leadership``) and accumulates outputs: messages to send,
entries and hard state to persist, committed entries to apply. The driver collects them with
``ready()`` and acknowledges them with ``advance()``; see :class:`Ready` for the order. Time is a
count of ticks and randomness comes from an injected source, so a run is a pure function of its
inputs. Role-specific rules live in :mod:`replog.raft.leader` and :mod:`replog.raft.follower`;
this module holds the role transitions, elections and the Ready handoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from replog.raft import follower, leader
from replog.raft.config import RaftConfig, RandomSource
from replog.raft.errors import ConfChangeError, NotLeaderError
from replog.raft.membership import ConfChange, ConfigTracker, apply_change
from replog.raft.messages import (
    CONTINUES,
    Entry,
    EntryKind,
    HardState,
    Membership,
    Message,
    MessageType,
    proposal_entries,
)
from replog.raft.progress import Progress
from replog.raft.quorum import VoteResult, vote_result
from replog.raft.ready import Ready, Role, SoftState
from replog.raft.state.log import RaftLog
from replog.raft.storage import RaftStorage


class Raft:
    """One Raft node's protocol state. Not thread-safe; a single driver task owns it."""

    def __init__(self, config: RaftConfig, storage: RaftStorage, rng: RandomSource) -> None:
        """Load the durable state from ``storage`` and start as a follower."""
        assert 0 < config.heartbeat_ticks < config.election_ticks
        self.id = config.node_id
        self.cfg = config
        self.rng = rng
        state = storage.initial_state()
        applied = config.applied if config.applied is not None else storage.first_index() - 1
        self.log = RaftLog(storage, state.commit, min(applied, state.commit))
        self.term = state.term
        self.vote = state.vote
        self.confs = ConfigTracker(state.config)
        lo = max(state.commit + 1, storage.first_index())
        if lo <= storage.last_index():
            self.confs.observe_append(self.log.entries(lo, storage.last_index() + 1))
        self.role = Role.FOLLOWER
        self.lead: int | None = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_ticks
        self.votes: dict[int, bool] = {}
        self.progress: dict[int, Progress] = {}
        self.proposal_ends: list[int] = []
        """While leading: the last index of each proposal of this term above the commit."""
        self.lead_transferee: int | None = None
        self.msgs: list[Message] = []
        self._prev_hard_state = state
        self._prev_soft_state = SoftState(None, Role.FOLLOWER)
        self._outstanding = False
        self.voting = True
        """False while this node must neither vote nor campaign: it lost its durable state
        (wiped disk) and may still be a voter under its old incarnation (set by the driver)."""
        self.log_lost = False
        """True while the log misses entries this node had acknowledged (recovery cut them):
        its rejections say so, until an append is accepted again (set by the driver)."""
        self.become_follower(self.term, None)

    # -- inputs ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick (elections, heartbeats, check-quorum)."""
        if self.role is Role.LEADER:
            leader.tick_heartbeat(self)
            return
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_timeout:
            self.election_elapsed = 0
            self.campaign()

    def campaign(self, *, transfer: bool = False) -> None:
        """Start an election now: a pre-vote round first unless ``transfer`` (§9.6, §3.10).

        Does nothing on a leader or on a node that is not a voter.
        """
        if self.role is Role.LEADER or not self.promotable():
            return
        self._start_election(pre_vote=self.cfg.pre_vote and not transfer, transfer=transfer)

    def _start_election(self, *, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            kind, term = MessageType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            kind, term = MessageType.VOTE, self.term
        if self._poll(self.id, granted=True) is VoteResult.WON:
            self._on_election_won()
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for voter in sorted(self.confs.latest.voters - {self.id}):
            self.send(
                Message(
                    type=kind,
                    src=self.id,
                    dst=voter,
                    term=term,
                    index=last_index,
                    log_term=last_term,
                    transfer=transfer,
                )
            )

    def step(self, m: Message) -> None:
        """Handle a message from a peer (Raft Figure 2 "Rules for all servers" first)."""
        if m.term > self.term:
            if m.type in (MessageType.VOTE, MessageType.PRE_VOTE) and self._in_lease(m):
                return  # §6.2 / §9.6: a live leader is known; ignore a disruptive candidate.
            if m.type is MessageType.PRE_VOTE:
                pass  # A pre-vote never changes our term.
            elif m.type is MessageType.PRE_VOTE_RESP and not m.reject:
                pass  # A granted pre-vote carries the future term; it is counted below.
            elif m.type in (MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAPSHOT):
                self.become_follower(m.term, m.src)
            else:
                self.become_follower(m.term, None)
        elif m.term < self.term:
            self._answer_stale(m)
            return
        if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            leader.step_leader(self, m)
        elif self.role is Role.FOLLOWER:
            follower.step_follower(self, m)
        else:
            follower.step_candidate(self, m)

    def propose(self, payloads: Sequence[bytes], kind: int = EntryKind.DATA) -> tuple[int, int]:
        """Append ``payloads`` as one atomic batch of entries of ``kind``; return (first, last)
        index. The batch is committed whole or not at all (see ``CONTINUES``).

        ``kind`` is DATA or an application's own kind (3 to 63), opaque to the core like
        DATA. Raise :class:`NotLeaderError` if this node is not the leader or is transferring
        leadership; raise ValueError for an empty batch or a kind the core reserves.
        """
        if not payloads:
            raise ValueError("empty proposal")
        if kind in (EntryKind.NOOP, EntryKind.CONFIG) or not 0 <= kind < CONTINUES:
            raise ValueError(f"entry kind {kind} is reserved for the core")
        self._check_accepting()
        first = self.log.last_index() + 1
        count = len(payloads)
        entries = proposal_entries(self.term, first, kind, payloads)
        leader.append_entries(self, entries)
        return first, first + count - 1

    def propose_conf_change(self, change: ConfChange) -> int:
        """Append a membership change; return its index (dissertation §4.1).

        It takes effect on each node when appended. Raise :class:`ConfChangeError` if another
        change is still uncommitted, if the leader has not yet committed an entry of its term
        (§4.1 bug fix), or if the change is invalid; :class:`NotLeaderError` if not leader.
        """
        self._check_accepting()
        if self.confs.last_pending_index() > self.log.committed:
            raise ConfChangeError("a membership change is still uncommitted")
        if self.log.term(self.log.committed) != self.term:
            raise ConfChangeError("the leader has not committed an entry of its term yet")
        result = apply_change(self.confs.latest, change)
        index = self.log.last_index() + 1
        payload = change.encode(result)
        leader.append_entries(self, [Entry(self.term, index, EntryKind.CONFIG, payload)])
        return index

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to voter ``to`` (dissertation §3.10): stop accepting proposals,
        bring ``to`` up to date, then tell it to campaign at once (TimeoutNow). The transfer
        is abandoned after an election timeout. Raise NotLeaderError / ValueError."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if to == self.id or to not in self.confs.latest.voters:
            raise ValueError(f"node {to} is not another voter")
        leader.start_transfer(self, to)

    def report_snapshot(self, to: int, *, ok: bool) -> None:
        """Tell the leader whether streaming a snapshot to ``to`` finished or failed."""
        if self.role is Role.LEADER and to in self.progress:
            leader.snapshot_reported(self, to, ok=ok)

    # -- the Ready handoff ----------------------------------------------------------------

    def has_ready(self) -> bool:
        """Return whether ``ready()`` has work (always False while a Ready is outstanding)."""
        if self._outstanding:
            return False
        u = self.log.unstable
        return bool(
            self.msgs
            or u.entries
            or u.snapshot is not None
            or self.log.has_committed_to_apply()
            or self.hard_state() != self._prev_hard_state
            or self.soft_state() != self._prev_soft_state
        )

    def ready(self) -> Ready:
        """Collect the pending work; the driver must perform it then call ``advance``."""
        assert not self._outstanding, "advance() the previous Ready first"
        hard, soft = self.hard_state(), self.soft_state()
        u = self.log.unstable
        rd = Ready(
            hard_state=hard if hard != self._prev_hard_state else None,
            entries=list(u.entries),
            snapshot=u.snapshot,
            messages=self.msgs,
            committed_entries=self.log.take_committed(),
            soft_state=soft if soft != self._prev_soft_state else None,
        )
        self.msgs = []
        self._prev_hard_state, self._prev_soft_state = hard, soft
        self._outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """Acknowledge that ``rd`` was performed (persisted, sent, applied)."""
        if rd.snapshot is not None:
            self.log.stable_snapshot(rd.snapshot)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
        self._outstanding = False

    # -- state queries --------------------------------------------------------------------

    def hard_state(self) -> HardState:
        """Return the state that must be durable: term, vote, commit, committed config."""
        return HardState(self.term, self.vote, self.log.committed, self.confs.committed)

    def soft_state(self) -> SoftState:
        """Return who leads and this node's role."""
        return SoftState(self.lead, self.role)

    @property
    def config(self) -> Membership:
        """Return the membership in effect (the last configuration entry in the log)."""
        return self.confs.latest

    def promotable(self) -> bool:
        """Return whether this node may campaign: it is a voter in its latest configuration,
        or in the committed one while its removal is still uncommitted (dissertation §4.2.2:
        it may still be needed to commit that very removal)."""
        if not self.voting:
            return False
        return self.id in self.confs.latest.voters or self.id in self.confs.committed.voters

    # -- role transitions -----------------------------------------------------------------

    def become_follower(self, term: int, lead: int | None) -> None:
        """Follow ``lead`` (or nobody yet) in ``term``."""
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead

    def _become_pre_candidate(self) -> None:
        # §9.6: no term change and no vote; only ask whether an election could be won.
        self.role = Role.PRE_CANDIDATE
        self.votes = {}
        self.lead = None
        self.lead_transferee = None

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        """Take over as leader and append this term's no-op entry (Raft §5.4.2, §8), after
        dropping an incomplete proposal at the end of the log."""
        assert self.role is not Role.FOLLOWER, "only a candidate can become leader"
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        # A proposal of an older term whose last entry this log lacks was never committed
        # (commits stop at proposals' ends, and a leader holds every committed entry): drop
        # it, so no part of it can commit along with this term's no-op.
        index = max(self.log.continued_run_start(self.log.last_index()), self.log.committed + 1)
        leader.init_progress(self, index - 1)
        leader.append_entries(self, [Entry(self.term, index, EntryKind.NOOP, b"")])

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.lead = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self.rng.randrange(
            self.cfg.election_ticks, 2 * self.cfg.election_ticks
        )
        self.votes = {}
        self.progress = {}
        self.lead_transferee = None

    # -- elections ------------------------------------------------------------------------

    def _in_lease(self, m: Message) -> bool:
        """Return whether a (pre-)vote must be ignored because a leader was heard from
        within the election timeout (leader stickiness, dissertation §4.2.3 / §9.6)."""
        return (
            self.cfg.check_quorum
            and not m.transfer
            and self.lead is not None
            and self.election_elapsed < self.cfg.election_ticks
        )

    def _answer_stale(self, m: Message) -> None:
        # A message from an older term. Answer a stale leader so it learns the newer term and
        # steps down (needed with check-quorum / pre-vote, where terms do not always rise).
        if m.type in (MessageType.APP, MessageType.HEARTBEAT):
            if self.cfg.check_quorum or self.cfg.pre_vote:
                self.send(Message(type=MessageType.APP_RESP, src=self.id, dst=m.src, term=0))
        elif m.type is MessageType.PRE_VOTE:
            self.send(
                Message(
                    type=MessageType.PRE_VOTE_RESP,
                    src=self.id,
                    dst=m.src,
                    term=0,
                    reject=True,
                )
            )

    def _handle_vote_request(self, m: Message) -> None:
        """Grant or refuse a (pre-)vote (Raft §5.2, §5.4.1; Figure 2 RequestVote rules)."""
        can_vote = (
            self.vote == m.src
            or (self.vote is None and self.lead is None)
            or (m.type is MessageType.PRE_VOTE and m.term > self.term)
        )
        log_ok = _UNSAFE_VOTE_WITHOUT_LOG_CHECK or self.log.is_up_to_date(m.index, m.log_term)
        resp = MessageType.VOTE_RESP if m.type is MessageType.VOTE else MessageType.PRE_VOTE_RESP
        if can_vote and log_ok and self.voting:
            self.send(Message(type=resp, src=self.id, dst=m.src, term=m.term))
            if m.type is MessageType.VOTE:
                self.election_elapsed = 0
                self.vote = m.src
        else:
            self.send(Message(type=resp, src=self.id, dst=m.src, term=self.term, reject=True))

    def _poll(self, voter: int, *, granted: bool) -> VoteResult:
        self.votes.setdefault(voter, granted)
        return vote_result(self.confs.latest.voters, self.votes)

    def record_vote(self, voter: int, *, granted: bool) -> None:
        """Count a (pre-)vote response and act on the outcome."""
        result = self._poll(voter, granted=granted)
        if result is VoteResult.WON:
            self._on_election_won()
        elif result is VoteResult.LOST:
            self.become_follower(self.term, None)

    def _on_election_won(self) -> None:
        if self.role is Role.PRE_CANDIDATE:
            self._start_election(pre_vote=False, transfer=False)  # Pre-vote passed: for real.
        else:
            self.become_leader()

    # -- helpers used by the role modules -------------------------------------------------

    def send(self, m: Message) -> None:
        """Queue ``m`` for the next Ready; a zero ``term`` means the current term."""
        self.msgs.append(replace(m, term=self.term) if m.term == 0 else m)

    def commit_to(self, index: int) -> bool:
        """Raise the commit index (and the committed configuration); return whether it moved."""
        if self.log.commit_to(index):
            self.confs.commit_to(self.log.committed)
            return True
        return False

    def _check_accepting(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if self.lead_transferee is not None:
            raise NotLeaderError(self.lead_transferee, "leadership transfer in progress")


# Deliberately broken rules, switched on only by mutation tests to prove the simulator
# catches them. Never change these in production code.
_UNSAFE_VOTE_WITHOUT_LOG_CHECK = False
