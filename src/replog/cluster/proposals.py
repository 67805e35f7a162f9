"""Produce requests turned into one Raft proposal on the leader (see ``raft_node``).

User records are built right before ``propose``: offset = the index the entry gets, term =
the current term, type 0, a timestamp; every record but the last of a batch is marked
``batch_continues``, as the core marks the entries, so a restarted node knows the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NamedTuple

from replog.api.backend import NO_CONDITIONS, Conditions, DuplicateOffset
from replog.broker.admission import KeyLatest, admit, keys_of
from replog.broker.producer_state import BatchMeta, Overlay
from replog.cluster.idempotence import GroupProducers
from replog.cluster.node_options import NodeOptions, NotLeaderNodeError
from replog.errors import ReplogError
from replog.raft.core import Raft
from replog.raft.errors import NotLeaderError
from replog.raft.ready import Role
from replog.raft.waiters import Waiter
from replog.storage.codec import encode_records
from replog.v1.record_pb2 import Record

__all__ = ["Ask", "Proposal", "propose_group"]


class Ask(NamedTuple):
    """What a produce request waits with: the future of its first offset, its conditions."""

    future: asyncio.Future[int]
    conditions: Conditions = NO_CONDITIONS


Proposal = tuple[Sequence[bytes | Record], Ask]
"""A produce request waiting to be proposed: its values and what it waits with."""
_BATCH_CONTINUES = b"\x40\x01"
"""Record field 8 (``batch_continues``) = true, appended to a serialized Record."""


def propose_group(
    raft: Raft,
    group: list[Proposal],
    options: NodeOptions,
    producers: GroupProducers,
    applied_end: int,
) -> list[Waiter]:
    """Build the records of ``group`` (produce requests proposed together) on the leader
    and propose them as one atomic batch; return the waiters of the requests proposed (and
    of producers' retries of batches not yet applied). A request whose conditions do not
    hold (checked against the leader's producer view), that cannot be built,
    or a group the core refuses, fails its future."""
    if raft.role is not Role.LEADER or raft.lead_transferee is not None:
        for _, ask in group:
            _fail(ask.future, NotLeaderNodeError(raft.lead_transferee or raft.lead))
        return []
    term, next_index = raft.term, raft.log.last_index() + 1
    timestamp_ms = max(1, options.wall_clock_ns() // 1_000_000)
    limit = options.max_record_bytes - len(_BATCH_CONTINUES)
    payloads: list[bytes] = []
    waiters: list[Waiter] = []
    noted = False

    def overlay() -> Overlay:
        return producers.overlay(term, applied_end)

    for requested, (future, conditions) in group:
        first = next_index + len(payloads)
        values = requested
        try:
            if conditions is not NO_CONDITIONS:
                latest = _key_latest(producers, conditions, term, applied_end)
                decided = _admit(
                    values, conditions, overlay(), first, applied_end, key_latest=latest
                )
                if isinstance(decided, Waiter | DuplicateOffset):
                    _answer_duplicate(future, decided, waiters)
                    continue
                values = decided
            built = encode_records(values, first, timestamp_ms, limit, term=term)
        except ReplogError as exc:
            _fail(future, exc)
            continue
        if conditions.producer_id:
            batch = BatchMeta(conditions.base_sequence, len(built), first, term)
            overlay().record(conditions.producer_id, conditions.producer_epoch, batch, timestamp_ms)
            noted = True
        if producers.keys is not None:
            producers.keys.note_pending(term, applied_end, first, keys_of(values))
            noted = True
        payloads.extend(built)
        waiters.append(Waiter(first, first + len(built) - 1, term, future, conditions.acks_leader))
    if not payloads:
        return waiters
    # One proposal, one atomic batch: the core marks every entry but the last CONTINUES,
    # and so does each stored record (``batch_continues``), so a restarted node knows too.
    last = len(payloads) - 1
    payloads[:last] = [p + _BATCH_CONTINUES for p in payloads[:last]]
    try:
        first, _ = raft.propose(payloads)
    except NotLeaderError as exc:
        for _, ask in group:
            _fail(ask.future, NotLeaderNodeError(exc.leader_hint))
        if noted:  # the overlay holds batches that are not in the log
            producers.drop_overlay()
        return []
    assert first == next_index, (first, next_index)
    return waiters


def _admit(
    values: Sequence[bytes | Record],
    c: Conditions,
    overlay: Overlay,
    next_offset: int,
    applied_end: int,
    *,
    key_latest: KeyLatest | None,
) -> Sequence[bytes | Record] | Waiter | DuplicateOffset:
    """The values to propose, or how to answer a retry of a batch already in the log."""
    decided = admit(values, c, overlay=overlay, next_offset=next_offset, key_latest=key_latest)
    if not isinstance(decided, BatchMeta):
        return decided
    if decided.last_offset < applied_end:
        return DuplicateOffset(decided.base_offset)
    waiting: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    return Waiter(decided.base_offset, decided.last_offset, decided.term, waiting)


def _key_latest(
    producers: GroupProducers, c: Conditions, term: int, applied_end: int
) -> KeyLatest | None:
    """The leader's view of keys' latest offsets, when a per-key condition needs it."""
    if c.expected_key_offset is None or producers.keys is None:
        return None  # admit refuses a per-key condition without one
    return producers.keys.latest(term, applied_end)


def _answer_duplicate(
    future: asyncio.Future[int], decided: Waiter | DuplicateOffset, waiters: list[Waiter]
) -> None:
    """Answer a retry with its earlier batch's offsets: now when applied, else once that
    batch commits (or fail as it would)."""
    if isinstance(decided, DuplicateOffset):
        future.set_result(decided)
        return
    waiters.append(decided)

    def relay(done: asyncio.Future[int]) -> None:
        if future.done():
            return
        if done.cancelled():
            future.cancel()
        elif done.exception() is not None:
            future.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            future.set_result(DuplicateOffset(done.result()))

    waiting = decided.future
    assert isinstance(waiting, asyncio.Future)
    waiting.add_done_callback(relay)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
