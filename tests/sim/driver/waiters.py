"""An online check of the driver's producer waiters: applied means answered.

When a leader appends its own proposal, the watch learns which indices each attempt got (from
the records' keys). Whenever a node applies (its ``on_commit`` callback), every attempt it
serves whose records it has now applied, still in the term they were proposed in, must have
its future done by the end of that turn: a correct driver resolves a producer in the apply
that covers its entries. A future still pending then waits for an unrelated later entry (or
forever). The check runs on the next loop iteration, so a driver may resolve anywhere in
the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from replog.cluster.raft_node import RaftNode
from replog.raft.messages import Entry, EntryKind
from replog.v1.record_pb2 import Record
from tests.sim.driver.history import Attempt

__all__ = ["WaiterWatch"]


class WaiterWatch:
    """Pending attempts per serving node, with the index range each one was given."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self._pending: dict[int, dict[bytes, tuple[Attempt, RaftNode, asyncio.Future[int]]]] = {}
        self._ranges: dict[bytes, tuple[int, int, int]] = {}  # tag -> (first, last, term)

    def watch(self, a: Attempt, node: RaftNode, future: asyncio.Future[int]) -> None:
        """Follow ``a``'s future on ``node`` until it is done."""
        if future.done():
            return
        pending = self._pending.setdefault(node.id, {})
        pending[a.tag] = (a, node, future)
        future.add_done_callback(lambda _: pending.pop(a.tag, None))

    def on_append(self, node: RaftNode | None, entries: Sequence[Entry]) -> None:
        """``node`` stored ``entries``: note the indices of its own proposals' records."""
        pending = self._pending.get(node.id) if node is not None else None
        if not pending or node is None or not node.is_leader:
            return
        term = node.raft.term
        for e in entries:
            if e.term != term or e.kind != EntryKind.DATA:
                continue
            tag = Record.FromString(e.data).key
            if tag in pending:
                first = self._ranges.get(tag, (e.index, 0, 0))[0]
                self._ranges[tag] = (min(first, e.index), e.index, term)

    def on_commit(self, node: RaftNode) -> None:
        """``node`` applied more entries: check its attempts after this turn."""
        if self._pending.get(node.id):
            asyncio.get_running_loop().call_soon(self._check, node)

    def _check(self, node: RaftNode) -> None:
        applied = node.high_watermark - 1
        for tag, (a, owner, future) in list(self._pending.get(node.id, {}).items()):
            span = self._ranges.get(tag)
            if owner is not node or span is None or future.done() or span[1] > applied:
                continue
            first, last, term = span
            store = node.store
            if store.term(first) == term and store.term(last) == term:
                self.violations.append(
                    f"applied but unanswered: node {node.id} applied {a.describe()} at "
                    f"{first}..{last} (term {term}, its own), but its future was still pending "
                    f"after that turn (the producer waits for an unrelated later entry)"
                )
                self._pending[node.id].pop(tag)  # one report per attempt
