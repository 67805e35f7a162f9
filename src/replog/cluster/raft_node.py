"""The asyncio driver of one Raft node: clock, persistence before send, apply, producer waiters.

Theory of operation: one task (``_run``) owns the :class:`Raft` core. Other tasks only queue
inputs (peer messages, proposals, admin operations) and wake it. Each turn it steps the
queued messages, ticks from the monotonic clock, turns every queued produce request into one
``propose`` (so one Log write and one fsync serve them all), then performs a ``Ready`` in the
documented order: persist (log appends per the sync policy, hard state; on the loop when
small, else in a worker thread), *then* send, then apply (advance the high watermark = commit
index + 1, resolve producers whose entry committed with the term it was proposed in), then
``advance``. Two safe departures: a leader sends its appends before its own write (thesis
10.2.1), and committed entries already stored by an earlier Ready are applied before this
Ready's write. A turn steps at most 8 MiB of received entries.

User records are built on the leader right before ``propose`` (``proposals``, checking
producers' sequences and conditions: ``idempotence``); the payload is the entry's data, so
it is stored byte-identically everywhere. With ``NodeOptions.quiesce`` an idle group stops
ticking until something wakes it (``quiescence``).
Member entries (kind 3, stored as records of type 3) carry the replicated address book:
``{"id": name, "addr": address}``.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import attrgetter, itemgetter
from typing import Any

from replog.api.backend import NO_CONDITIONS, Conditions
from replog.cluster.idempotence import GroupProducers
from replog.cluster.learners import promote_caught_up_learner
from replog.cluster.log_store import MEMBER_RECORD_TYPE, METADATA_RECORD_TYPE, ReplogLogStore
from replog.cluster.node_options import NodeOptions, NotLeaderNodeError
from replog.cluster.proposals import Ask, Proposal, propose_group
from replog.cluster.quiescence import Quiescence
from replog.errors import BatchTooLargeError, ReplogError, UnavailableError
from replog.raft.config import RaftConfig, RandomSource
from replog.raft.core import Raft
from replog.raft.errors import NotLeaderError
from replog.raft.membership import ConfChange
from replog.raft.messages import Entry, Message, MessageType, SnapshotMeta
from replog.raft.ready import Ready, Role
from replog.raft.records import messages_within, proposal_groups, turn_share
from replog.raft.storage import data_bytes
from replog.raft.waiters import IndexWaiters, ProduceWaiters, VoteGate
from replog.v1.record_pb2 import Record

__all__ = ["MEMBER_RECORD_TYPE", "NodeOptions", "NotLeaderNodeError", "RaftNode"]

log = logging.getLogger("replog.cluster.raft_node")

_LEADER_APPENDS = frozenset({MessageType.APP, MessageType.HEARTBEAT})
_INLINE_PERSIST_BYTES = 64 * 1024
_TURN_MAX_BYTES = 8 << 20
_TURN_MAX_RECORDS = 32768


Sender = Callable[[Sequence[Message]], None]
SnapshotSender = Callable[[Message], None]


class RaftNode:
    """One Raft node over a :class:`ReplogLogStore`; see the module docstring."""

    def __init__(
        self,
        store: ReplogLogStore,
        raft_id: int,
        rng: RandomSource,
        options: NodeOptions | None = None,
        *,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        """Create the core from the store's durable state (call ``start`` to run it).
        ``executor`` runs the big writes (shared by the groups of one process; each group
        awaits its own write, so its writes stay in order); by default one of its own."""
        self.options = o = options or NodeOptions()
        self.store = store
        self.id = raft_id
        state = store.initial_state()
        config = RaftConfig(
            node_id=raft_id,
            election_ticks=o.election_ticks,
            heartbeat_ticks=o.heartbeat_ticks,
            applied=state.commit,
            # 64 MiB in flight per follower: with the core's default of 256 x 1 MiB a lagging
            # follower was sent 256 MiB at once, re-serialized on retransmits (2 MB/s).
            max_msg_bytes=1 << 20,
            max_inflight_msgs=64,
        )
        self.raft = Raft(config, store, rng)
        self.votes = VoteGate(functools.partial(setattr, self.raft, "voting"))
        """Why this node may not vote now (see VoteGate); the cluster adds a fresh join's."""
        # A recovery that cut the log's tail may have cut acknowledged entries: say so to the
        # leader (it resends them); if it cut committed ones, do not vote until they are back.
        # Both are kept in the state file until repaired, across any number of restarts.
        self.raft.log_lost = store.log_lost
        if store.lost_commit:
            self.votes.block("lost-commit")
            log.warning(_LOST_COMMIT, store.directory, store.lost_commit)
        self.high_watermark = min(state.commit, store.last_index()) + 1
        self.send: Sender = lambda messages: None
        self.send_snapshot: SnapshotSender = lambda message: None
        self.on_member: Callable[[str, str, int], None] = lambda name, addr, epoch: None
        self.on_metadata: Callable[[int, bytes], None] = lambda index, data: None
        """Called with each committed metadata entry (kind ``METADATA_RECORD_TYPE``)."""
        self.on_snapshot: Callable[[SnapshotMeta], None] = lambda meta: None
        """Called once a leader's snapshot is installed, before any later entry applies."""
        self.on_commit: Callable[[], None] = lambda: None
        self.on_leader_change: Callable[[int | None], None] = lambda leader: None
        self.on_promote: Callable[[int], None] = lambda learner: None
        self.on_fatal: Callable[[BaseException], None] = lambda exc: None
        self.leader_live: Callable[[int], bool] = lambda leader: True
        """Whether node liveness holds the leader's node live (a follower quiesces only then)."""
        self.quiescence = Quiescence(o.quiesce)
        self.failure: BaseException | None = None
        """Why the loop stopped on its own (storage failed): the node is fail-stopped."""
        self.last_contact: dict[int, float] = {}
        self._inbox: list[Message] = []
        self._proposals: list[Proposal] = []
        self._ops: list[Callable[[], object]] = []
        self._calls: set[asyncio.Future[Any]] = set()
        self.waiters = ProduceWaiters()
        """The produce requests waiting for their entries (to commit, or to persist)."""
        self._index_waiters = IndexWaiters()
        self._wakeup = asyncio.Event()
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="raft-persist")
        self.producers = GroupProducers(store, self._executor, key_index=o.key_index)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = False
        self._durable_term_vote = (state.term, state.vote)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop task (call from the event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="raft-node")

    async def stop(self) -> None:
        """Stop the loop, fail every waiting producer, close the store (once)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        self.waiters.fail_all(UnavailableError("the node stopped before the record committed"))
        loop = asyncio.get_running_loop()
        try:
            if self.failure is None:
                await self.producers.checkpoint(self.high_watermark)
            await loop.run_in_executor(self._executor, self.store.close)
        except (ReplogError, OSError) as exc:
            if self.failure is None:
                raise
            log.warning("closing the failed store: %s", exc)  # already fail-stopped
        if self._own_executor:
            self._executor.shutdown(wait=True)

    # -- queries --------------------------------------------------------------------------

    @property
    def leader(self) -> int | None:
        """The Raft id of the leader this node knows, if any (None once fail-stopped)."""
        return None if self.failure is not None else self.raft.lead

    @property
    def is_leader(self) -> bool:
        """Whether this node leads now (never once fail-stopped)."""
        return self.failure is None and self.raft.role is Role.LEADER

    # -- inputs ---------------------------------------------------------------------------

    def deliver(self, messages: Sequence[Message]) -> None:
        """Queue messages received from peers."""
        self._inbox.extend(messages)
        now = self.options.monotonic()
        for m in messages:
            self.last_contact[m.src] = now
        self._wakeup.set()

    def submit(
        self, values: Sequence[bytes | Record], conditions: Conditions = NO_CONDITIONS
    ) -> asyncio.Future[int]:
        """Queue records for proposal; the future gives the first offset once committed
        (``conditions``: see ``LogBackend.submit``).

        Fails with :class:`NotLeaderNodeError` on a follower, RecordTooLargeError,
        BatchTooLargeError (over ``max_batch_records``: one request is one atomic batch,
        built and proposed in one turn of the loop, so its size bounds that turn),
        UnavailableError.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if len(values) > self.options.max_batch_records:
            future.set_exception(BatchTooLargeError(len(values), self.options.max_batch_records))
        elif self._stopping:
            future.set_exception(
                UnavailableError("the node is stopping", certainly_not_applied=True)
            )
        elif not self.is_leader or self.raft.lead_transferee is not None:
            future.set_exception(NotLeaderNodeError(self.raft.lead_transferee or self.raft.lead))
        else:
            self._proposals.append((values, Ask(future, conditions)))
            self._wakeup.set()
        return future

    def call(self, fn: Callable[[Raft], Any]) -> asyncio.Future[Any]:
        """Run ``fn(core)`` on the loop task (membership, transfer); the future gives its result."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._stopping:
            future.set_exception(UnavailableError("the node is stopping"))
            return future

        def op() -> None:
            self._calls.discard(future)
            try:
                future.set_result(fn(self.raft))
            except Exception as exc:
                future.set_exception(exc)

        self._calls.add(future)
        self._ops.append(op)
        self._wakeup.set()
        return future

    async def wait_applied(self, index: int, timeout_s: float) -> bool:
        """Wait until this node applied ``index`` (the high watermark passed it)."""
        if self.high_watermark > index:
            return True
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._index_waiters.add(index, future)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return False
        return True

    async def propose_change(self, change: ConfChange, timeout_s: float = 10.0) -> int:
        """Propose a membership change and wait until it is committed; return its index.

        Raises UnavailableError: ``certainly_not_applied`` when another leader's entry took
        its place, else (not committed in time, or compacted before it could be checked)
        the outcome is unknown.
        """
        index, term = await self.call(lambda r: (r.propose_conf_change(change), r.term))
        await self._wait_own_entry(index, term, f"membership change {change}", timeout_s)
        return int(index)

    async def _wait_own_entry(self, index: int, term: int, what: str, timeout_s: float) -> None:
        """Wait until the entry this node proposed at ``index`` in ``term`` is applied here;
        an entry of another term there means it was replaced (Log Matching: same index and
        term is the same entry)."""
        if not await self.wait_applied(index, timeout_s):
            raise UnavailableError(f"{what} did not commit in time; its outcome is unknown")
        stored = self.store.term(index) if index >= self.store.first_index() else None
        if stored is None:
            raise UnavailableError(f"{what} was compacted before its outcome was known")
        if stored != term:
            raise UnavailableError(
                f"{what} was lost to a leader change", certainly_not_applied=True
            )

    async def add_member_record(
        self, name: str, addr: str, epoch: int = 0, timeout_s: float = 10.0
    ) -> None:
        """Replicate ``name -> addr`` (of the node's start ``epoch``) in the address book and
        wait until it is applied."""
        value = json.dumps({"id": name, "addr": addr, "epoch": epoch}).encode()
        await self.propose_control(MEMBER_RECORD_TYPE, value, f"the address of {name}", timeout_s)

    async def propose_control(
        self, kind: int, value: bytes, what: str, timeout_s: float = 10.0
    ) -> int:
        """Replicate one entry of application ``kind`` (member, metadata) and wait until it
        is applied here; its index. Raises NotLeaderNodeError (certainly not applied) or
        UnavailableError (see ``propose_change``)."""
        if not self.is_leader:
            raise NotLeaderNodeError(self.raft.lead)
        try:
            index, term = await self.call(lambda r: (r.propose([value], kind)[0], r.term))
        except NotLeaderError as exc:
            raise NotLeaderNodeError(exc.leader_hint) from None
        await self._wait_own_entry(index, term, what, timeout_s)
        return int(index)

    def unquiesce(self) -> None:
        """Make a quiesced group tick again (a follower campaigns after its timeout)."""
        self.quiescence.request_wake()
        self._wakeup.set()

    def report_snapshot(self, to: int, *, ok: bool) -> None:
        """Tell the core a snapshot transfer to ``to`` finished (or failed)."""
        self._ops.append(lambda: self.raft.report_snapshot(to, ok=ok))
        self._wakeup.set()

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.producers.start(self.high_watermark)
        tick_s = self.options.tick_s
        next_tick = loop.time() + tick_s
        while not self._stopping:
            timeout = next_tick - loop.time()
            if self.quiescence.quiet:
                await self._wakeup.wait()  # quiesced: no tick until something wakes the group
            elif timeout > 0 and not self._wakeup.is_set():
                # A timer that sets the event, not wait_for: wait_for makes a task per turn
                # and cancels it, which cost a process of 1,000 awake groups a core.
                timer = loop.call_at(next_tick, self._wakeup.set)
                await self._wakeup.wait()
                timer.cancel()
            self._wakeup.clear()
            try:
                if await self._turn(loop, next_tick):
                    next_tick = loop.time() + tick_s  # woken from quiescence: ticks restart
            except Exception as exc:
                self._fail_stop(exc)
                return
            now = loop.time()
            if now >= next_tick:
                next_tick = max(next_tick + tick_s, now + tick_s / 2)

    async def _turn(self, loop: asyncio.AbstractEventLoop, next_tick: float) -> bool:
        """One turn (see the module docstring); return whether it woke a quiesced group."""
        inbox = self._take_inbox()
        q = self.quiescence
        woke = q.before_step(self.raft, inbox, bool(self._proposals or self._ops))
        for m in inbox:
            self.raft.step(m)
        if not (q.quiet or woke) and loop.time() >= next_tick:
            self.raft.tick()
            promote_caught_up_learner(self.raft, self.on_promote)
        ops, self._ops = self._ops, []
        for op in ops:
            op()
        self._propose_queued()
        if self.raft.has_ready():
            await self._perform(loop, self.raft.ready())
        if beats := q.settle(self.raft, idle=self._idle(), leader_live=self.leader_live):
            self.send(beats)
        return woke

    def _idle(self) -> bool:
        """Nothing queued, to persist or to apply, and (on a leader) no producer waiting."""
        busy = self._inbox or self._proposals or self._ops or self._calls or self.raft.has_ready()
        waiting = self.waiters and self.raft.role is Role.LEADER
        return not (busy or waiting) and self.high_watermark > self.raft.log.committed

    def _take_inbox(self) -> list[Message]:
        """The queued messages up to ``_TURN_MAX_BYTES`` of entries (at least one); the rest
        wait for the next turn, so a catching-up follower writes and answers in steps while
        the leader's next appends are on the way, rather than all at once."""
        inbox = self._inbox
        n = messages_within(inbox, _TURN_MAX_BYTES)
        self._inbox = inbox[n:]
        if self._inbox:
            self._wakeup.set()
        return inbox[:n]

    async def _perform(self, loop: asyncio.AbstractEventLoop, rd: Ready) -> None:
        messages = rd.messages
        committed = rd.committed_entries
        self.quiescence.sent(self.raft, messages)
        if rd.snapshot is not None or rd.entries or rd.hard_state is not None:
            if committed and rd.snapshot is None:
                # Entries this node already stored and that a majority holds may be applied
                # before this Ready's write: their producers need not wait for it.
                stored = self.store.last_index()
                if rd.entries:
                    stored = min(stored, rd.entries[0].index - 1)
                early = bisect.bisect_right(committed, stored, key=_index_of)
                if early:
                    self._apply(committed[:early])
                    committed = committed[early:]
            if messages and self._may_send_before_persist(rd):
                # The leader's appends depend on nothing this Ready persists, so they go out
                # while its own fsync runs (Raft thesis 10.2.1): the followers' writes overlap
                # the leader's. The leader's own vote in the quorum is only counted on a later
                # turn, i.e. after this persist finished, since this loop awaits it.
                self.send([m for m in messages if m.type in _LEADER_APPENDS])
                messages = [m for m in messages if m.type not in _LEADER_APPENDS]
            small = rd.snapshot is None and data_bytes(rd.entries) <= _INLINE_PERSIST_BYTES
            if small and self.options.persist_inline:
                # A small write and its fsync take less time than handing them to the worker
                # thread and back (which waits on the GIL), so they run on the loop; the sends
                # queued above leave first.
                await asyncio.sleep(0)
                self._persist(rd)
            else:
                await loop.run_in_executor(self._executor, self._persist, rd)
            if rd.hard_state is not None:
                self._durable_term_vote = (rd.hard_state.term, rd.hard_state.vote)
            if rd.entries and self.raft.role is Role.LEADER:  # acks=leader: durable here
                self.waiters.persisted(rd.entries[-1].index, self.raft.term)
        regular = [m for m in messages if m.type is not MessageType.SNAPSHOT]
        if regular:
            self.send(regular)
        for m in messages:
            if m.type is MessageType.SNAPSHOT:
                self.send_snapshot(m)
        if rd.snapshot is not None:
            self.on_snapshot(rd.snapshot)
            self._advance_watermark(rd.snapshot.index + 1)
        if committed:
            self._apply(committed)
        if rd.soft_state is not None:
            self.on_leader_change(rd.soft_state.leader)
        self.raft.advance(rd)
        if self.store.log_lost and not self.raft.log_lost:  # an append was accepted again
            self.store.clear_log_lost()

    def _fail_stop(self, exc: Exception) -> None:
        """Stop at once after a failed write (Raft assumes crash-stop): no more ticks, sends,
        votes or acknowledgements; fail every producer; tell the owner (which exits).

        A proposed entry may already be on the followers (the leader sends before its own
        fsync) and may still commit under the next leader, so its producer learns "unknown";
        a request still queued was never proposed: certainly not applied.
        """
        self.failure = exc
        self._stopping = True
        if isinstance(exc, ReplogError | OSError):
            log.critical("%s: storage failed, fail-stop: %s", self.store.directory, exc)
        else:
            log.critical("%s: unexpected error, fail-stop", self.store.directory, exc_info=exc)
        why = f"the node's storage failed ({exc}); the record may or may not be committed"
        self.waiters.fail_all(UnavailableError(why))
        queued, self._proposals = self._proposals, []
        for _, ask in queued:
            _fail(ask.future, UnavailableError("the node failed", certainly_not_applied=True))
        for future in self._calls:
            _fail(future, UnavailableError("the node failed"))
        self._calls.clear()
        self._index_waiters.fail_all(UnavailableError("the node failed"))
        self.on_fatal(exc)

    def _may_send_before_persist(self, rd: Ready) -> bool:
        """A leader whose term and vote are already durable may send its appends early."""
        if self.raft.role is not Role.LEADER or rd.snapshot is not None:
            return False
        hs = rd.hard_state
        return hs is None or (hs.term, hs.vote) == self._durable_term_vote

    def _persist(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.store.apply_snapshot(rd.snapshot)
            self.producers.rebuild(rd.snapshot.index + 1, replaced=True)
        if rd.entries:
            self.store.append(rd.entries)
        if rd.hard_state is not None:
            self.store.save_hard_state(rd.hard_state)

    # -- proposals ------------------------------------------------------------------------

    def _propose_queued(self) -> None:
        """Propose the queued produce requests, at most ``_TURN_MAX_RECORDS`` records of them
        per turn (the rest wait for the next turn): building and proposing entries costs
        Python work per record, and a turn that ran for seconds would miss heartbeats."""
        queued = self._proposals
        n = turn_share(queued, _TURN_MAX_RECORDS)
        taken, self._proposals = queued[:n], queued[n:]
        if self._proposals:
            self._wakeup.set()
        o = self.options
        for group in proposal_groups(taken, o.max_proposal_bytes, _TURN_MAX_RECORDS):
            self.waiters.add(
                propose_group(self.raft, group, o, self.producers, self.high_watermark)
            )

    # -- apply ----------------------------------------------------------------------------

    def _apply(self, entries: Sequence[Entry]) -> None:
        if any(map(_kind_of, entries)):
            for e in entries:
                if e.kind == MEMBER_RECORD_TYPE:
                    doc = json.loads(e.data)
                    self.on_member(str(doc["id"]), str(doc["addr"]), int(doc.get("epoch", 0)))
                elif e.kind == METADATA_RECORD_TYPE:
                    self.on_metadata(e.index, e.data)
        self.producers.applied(entries)
        self.waiters.resolve(entries, self._stored_term, self._not_written)
        self._advance_watermark(entries[-1].index + 1)
        self.producers.maybe_checkpoint(self.high_watermark)

    def _not_written(self) -> NotLeaderNodeError:
        return NotLeaderNodeError(self.raft.lead, "leadership changed; not written")

    def _stored_term(self, index: int) -> int | None:
        """The term of an applied entry no longer in hand (None once compacted away)."""
        return self.store.term(index) if index >= self.store.first_index() else None

    def _advance_watermark(self, watermark: int) -> None:
        if watermark <= self.high_watermark:
            return
        self.high_watermark = watermark
        if watermark > self.store.lost_commit > 0:  # the lost entries are back
            self.store.clear_lost_commit()
            self.votes.lift("lost-commit")
            log.info("%s: lost entries replicated again; voting", self.store.directory)
        self._index_waiters.release(watermark)
        self.on_commit()


_kind_of = itemgetter(2)
_index_of = attrgetter("index")
_LOST_COMMIT = "%s: recovery cut committed entries up to %d; not voting until back"


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
