"""Handing leadership over: which voter should lead next, and a leader's graceful stop."""

from __future__ import annotations

import asyncio
import functools
import time

from replog.cluster.admin import AdminError
from replog.cluster.events import note_transfer
from replog.cluster.raft_node import RaftNode
from replog.raft.core import Raft
from replog.raft.errors import NotLeaderError

__all__ = ["hand_over", "successors", "transfer_to"]


def successors(node: RaftNode) -> list[int]:
    """The other voters, most promising first: heard from lately, then most caught up."""
    raft = node.raft
    now = time.monotonic()
    horizon = node.options.tick_s * node.options.election_ticks

    def rank(v: int) -> tuple[bool, int, float]:
        contact = node.last_contact.get(v, 0.0)
        pr = raft.progress.get(v)
        return now - contact < horizon, pr.match if pr is not None else 0, contact

    return sorted(raft.config.voters - {node.id}, key=rank, reverse=True)


async def hand_over(node: RaftNode, timeout_s: float) -> None:
    """If ``node`` leads, transfer leadership, trying the most promising voter first (an
    election timeout each), then wait up to ``timeout_s`` in all for its producers' entries
    to commit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    per_try_s = node.options.tick_s * node.options.election_ticks
    for target in successors(node):
        if not node.is_leader:
            break
        note_transfer(node, "handed over: this node is stopping")
        try:
            await node.call(functools.partial(_transfer, to=target))
        except (NotLeaderError, ValueError):
            break
        try_until = min(deadline, loop.time() + per_try_s)
        while loop.time() < try_until and node.is_leader:
            await asyncio.sleep(0.01)
    while loop.time() < deadline and len(node.waiters):
        await asyncio.sleep(0.01)


async def transfer_to(node: RaftNode, target: int | None) -> int:
    """Hand leadership to voter ``target`` (None: the most promising other voter) and wait
    until it leads; its id. AdminError when there is none or the transfer does not finish."""
    if target is None:
        ranked = successors(node)
        if not ranked:
            raise AdminError("FAILED_PRECONDITION", "no other voter")
        target = ranked[0]
    note_transfer(node, "handed over on request (replog cluster transfer-leader)")
    try:
        await node.call(functools.partial(_transfer, to=target))
    except (NotLeaderError, ValueError) as exc:
        raise AdminError("FAILED_PRECONDITION", str(exc)) from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while node.leader != target and loop.time() < deadline:
        await asyncio.sleep(0.02)
    if node.leader != target:
        raise AdminError("DEADLINE_EXCEEDED", "the transfer did not finish")
    return target


def _transfer(raft: Raft, *, to: int) -> None:
    raft.transfer_leadership(to)
