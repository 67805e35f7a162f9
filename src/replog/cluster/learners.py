"""A leader's promotion of a learner that caught up (joins and moves add learners first)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from replog.errors import ReplogError
from replog.raft.core import Raft
from replog.raft.errors import RaftError
from replog.raft.leader import learner_to_promote
from replog.raft.membership import ConfChange, ConfChangeOp

__all__ = ["PROMOTE_MAX_LAG", "promote_caught_up_learner"]

PROMOTE_MAX_LAG = 256
"""A learner this many entries or fewer behind the leader is promoted to voter."""

log = logging.getLogger("replog.cluster.raft_node")


def promote_caught_up_learner(raft: Raft, on_promote: Callable[[int], None]) -> None:
    """Propose promoting a learner within ``PROMOTE_MAX_LAG`` of the leader's log, if any;
    ``on_promote(learner)`` hears of the proposal (it logs the learner by name)."""
    learner = learner_to_promote(raft, PROMOTE_MAX_LAG)
    if learner is None:
        return
    try:
        raft.propose_conf_change(ConfChange(ConfChangeOp.PROMOTE, learner))
        on_promote(learner)
    except (RaftError, ReplogError) as exc:  # e.g. the leader's no-op is not committed
        log.debug("cannot promote %s yet: %s", learner, exc)
