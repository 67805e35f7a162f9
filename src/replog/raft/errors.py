"""Errors the Raft core raises to its caller (the driver maps them at the edge)."""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every error raised by :mod:`replog.raft`."""


class NotLeaderError(RaftError):
    """This node cannot accept the request; ``leader_hint`` is the leader it knows, if any."""

    def __init__(self, leader_hint: int | None, reason: str = "not the leader") -> None:
        super().__init__(f"{reason} (leader hint: {leader_hint})")
        self.leader_hint = leader_hint


class ConfChangeError(RaftError):
    """A membership change was refused (one is pending, or it is invalid for the config)."""


class CompactedError(RaftError):
    """The requested entries were removed from the front of the log."""
