"""Static configuration of a Raft node and the randomness it is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class RandomSource(Protocol):
    """The only randomness the core uses (``random.Random`` satisfies it)."""

    def randrange(self, start: int, stop: int, /) -> int:
        """Return a random integer in ``[start, stop)``."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    """Static parameters of one node. Durations are in ticks.

    - ``election_ticks``: a follower campaigns after a random timeout in
      ``[election_ticks, 2 * election_ticks)`` without hearing from a leader;
    - ``heartbeat_ticks``: the leader's heartbeat period (must be < ``election_ticks``);
    - ``max_msg_bytes``: payload bytes per AppendEntries (at least one entry is always sent);
    - ``max_inflight_msgs``: unacknowledged AppendEntries per follower while replicating;
    - ``pre_vote`` / ``check_quorum``: dissertation §9.6 and §6.2;
    - ``applied``: the last index the driver applied before a restart (default: the index
      before the first retained entry).
    """

    node_id: int
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    max_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    applied: int | None = None
