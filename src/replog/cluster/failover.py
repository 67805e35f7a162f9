"""What a follower does when node liveness reports its leader's node down (pure).

Without this, a follower learns of a dead leader only through its election timer: after a
liveness report it waits a whole randomized election timeout (1-2 s by default) before its
pre-vote, and the other replicas, which heard the same report at about the same moment,
campaign at about the same time too, so split votes cost more rounds (with a thousand
groups electing at once on one loop, round after round). Here the report ends the dead
leader's lease at once (``become_follower(term, None)``: a replica that knows no leader
grants pre-votes), and exactly one of the live voters, the same one on every replica of the
group (chosen by the group's ``salt`` and term, so the groups of one dead node spread over
the survivors), campaigns ``EAGER_TICKS`` ticks later; the others keep their whole
randomized timeout as the fallback. The delay leaves the other replicas time to hear the
report too: one that still holds the leader live ignores a pre-vote (its lease), and the
eager candidate would then wait a timeout more.

Timing only: the core decides every vote as before, so safety never depends on this. A
report that is wrong (the leader is only cut off from this node) costs an election at most,
like a pre-vote after an election timeout would.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from replog.raft.core import Raft
from replog.raft.ready import Role

if TYPE_CHECKING:
    from replog.cluster.raft_node import RaftNode

__all__ = ["EAGER_TICKS", "campaign_soon", "eager_voter", "leader_down"]

EAGER_TICKS = 3
"""Ticks from the report to the chosen replica's pre-vote (300 ms by default: more than
the liveness check interval, 250 ms, by which the other replicas' reports may lag)."""


def eager_voter(voters: list[int], salt: int, term: int) -> int | None:
    """The voter (of the sorted live ``voters``) that campaigns first; None if none."""
    if not voters:
        return None
    return voters[(salt + term) % len(voters)]


def campaign_soon(
    r: Raft, leader: int, live: Callable[[int], bool], salt: int = 0, eager_ticks: int = EAGER_TICKS
) -> bool:
    """Act on ``leader``'s node being reported down (``live``: node liveness): end its lease
    here and, on the chosen replica, campaign ``eager_ticks`` ticks from now. Returns
    whether this replica is the chosen one. Nothing changes unless this node follows
    ``leader`` and may campaign."""
    if r.role is not Role.FOLLOWER or r.lead != leader or not r.promotable():
        return False
    term = r.term
    r.become_follower(term, None)
    voters = sorted(v for v in r.config.voters if v != leader and (v == r.id or live(v)))
    if eager_voter(voters, salt, term) != r.id:
        return False
    r.election_elapsed = max(0, r.randomized_timeout - eager_ticks)
    return True


def leader_down(node: RaftNode, leader: int, salt: int = 0) -> None:
    """The host's answer to node liveness reporting ``leader``'s node down, for one group:
    wake it (a quiet group wakes for any queued call) and run ``campaign_soon`` on its loop."""
    step = functools.partial(campaign_soon, leader=leader, live=node.leader_live, salt=salt)
    node.call(step).add_done_callback(_ignore)


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a stopping node's refusal: nothing to do
