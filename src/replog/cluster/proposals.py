"""Produce requests turned into one Raft proposal on the leader (see ``raft_node``).

User records are built right before ``propose``: offset = the index the entry gets, term =
the current term, type 0, a timestamp; every record but the last of a batch is marked
``batch_continues``, as the core marks the entries, so a restarted node knows the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from replog.cluster.node_options import NodeOptions, NotLeaderNodeError
from replog.errors import ReplogError
from replog.raft.core import Raft
from replog.raft.errors import NotLeaderError
from replog.raft.ready import Role
from replog.raft.waiters import Waiter
from replog.storage.codec import encode_records
from replog.v1.record_pb2 import Record

__all__ = ["Proposal", "propose_group"]

Proposal = tuple[Sequence[bytes | Record], asyncio.Future[int]]
"""A produce request waiting to be proposed: its values and the future of its first offset."""
_BATCH_CONTINUES = b"\x40\x01"
"""Record field 8 (``batch_continues``) = true, appended to a serialized Record."""


def propose_group(raft: Raft, group: list[Proposal], options: NodeOptions) -> list[Waiter]:
    """Build the records of ``group`` (produce requests proposed together) on the leader
    and propose them as one atomic batch; return the waiters of the requests proposed. A
    request that cannot be built, or a group the core refuses, fails its futures."""
    if raft.role is not Role.LEADER or raft.lead_transferee is not None:
        for _, future in group:
            _fail(future, NotLeaderNodeError(raft.lead_transferee or raft.lead))
        return []
    term, next_index = raft.term, raft.log.last_index() + 1
    timestamp_ms = max(1, options.wall_clock_ns() // 1_000_000)
    limit = options.max_record_bytes - len(_BATCH_CONTINUES)
    payloads: list[bytes] = []
    waiters: list[Waiter] = []
    for values, future in group:
        try:
            built = encode_records(
                values, next_index + len(payloads), timestamp_ms, limit, term=term
            )
        except ReplogError as exc:
            _fail(future, exc)
            continue
        first = next_index + len(payloads)
        payloads.extend(built)
        waiters.append(Waiter(first, first + len(built) - 1, term, future))
    if not payloads:
        return []
    # One proposal, one atomic batch: the core marks every entry but the last CONTINUES,
    # and so does each stored record (``batch_continues``), so a restarted node knows too.
    last = len(payloads) - 1
    payloads[:last] = [p + _BATCH_CONTINUES for p in payloads[:last]]
    try:
        first, _ = raft.propose(payloads)
    except NotLeaderError as exc:
        for _, future in group:
            _fail(future, NotLeaderNodeError(exc.leader_hint))
        return []
    assert first == next_index, (first, next_index)
    return waiters


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
