"""What the asyncio driver (``replog.cluster.raft_node``) is configured with, and its
not-leader error."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from replog.errors import UnavailableError

__all__ = ["NodeOptions", "NotLeaderNodeError"]


class NotLeaderNodeError(UnavailableError):
    """This node does not lead; ``leader`` is the Raft id of the one it knows (or None)."""

    def __init__(self, leader: int | None, message: str = "this node is not the leader") -> None:
        super().__init__(message, certainly_not_applied=True)
        self.leader = leader


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Timing, limits, clocks: ``tick_s`` x ``election_ticks`` is the election timeout; the
    transport pings each peer node every ``liveness_interval_ms`` and reports one silent for
    ``liveness_timeout_ms`` as down."""

    tick_s: float = 0.1
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    max_record_bytes: int = 1 << 20
    max_proposal_bytes: int = 8 << 20
    max_batch_records: int = 32768
    liveness_interval_ms: int = 250
    liveness_timeout_ms: int = 1000
    wall_clock_ns: Callable[[], int] = time.time_ns  # record timestamps (a simulation fakes it)
    monotonic: Callable[[], float] = time.monotonic  # last_contact
    quiesce: bool = False  # idle groups stop ticking (cluster/quiescence.py); needs liveness
    # Small writes (and their fsync) run on the event loop: quicker for one group. Off for
    # the many groups of one loop, whose fsyncs would queue behind each other on the loop.
    persist_inline: bool = True
    key_index: bool = False  # keep the partition's key index (its topic's key_index)
    tlog: bool = False  # keep each log's verifiable-log tree (tiles) as it is appended
