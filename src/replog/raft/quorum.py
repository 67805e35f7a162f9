"""Majority arithmetic: the commit index of a configuration and the outcome of an election."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum


class VoteResult(Enum):
    """The outcome of counting votes."""

    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """Return the highest index stored on a majority of ``voters`` (0 without voters).

    ``match`` maps a voter to the highest index known to be on it (missing means 0).
    """
    if not voters:
        return 0
    indexes = sorted((match.get(voter, 0) for voter in voters), reverse=True)
    return indexes[len(indexes) // 2]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """Return WON once a majority of ``voters`` granted, LOST once a majority cannot."""
    if not voters:
        return VoteResult.WON
    granted = sum(1 for voter in voters if votes.get(voter) is True)
    missing = sum(1 for voter in voters if voter not in votes)
    majority = len(voters) // 2 + 1
    if granted >= majority:
        return VoteResult.WON
    if granted + missing >= majority:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Collection[int], active: Collection[int]) -> bool:
    """Return whether ``active`` contains a majority of ``voters``."""
    return sum(1 for voter in voters if voter in active) >= len(voters) // 2 + 1
