"""The leader's view of each follower (etcd's tracker.Progress and Inflights).

A follower is in one of three states:

- ``PROBE``: the leader does not know where the logs agree; it sends one AppendEntries at a time
  and waits for the answer (or a heartbeat response) before sending the next;
- ``REPLICATE``: the logs agree up to ``match``; the leader streams entries optimistically,
  advancing ``next`` as it sends, with at most ``max_inflight_msgs`` unacknowledged messages;
- ``SNAPSHOT``: the follower needs entries the leader no longer retains; a snapshot is on its
  way and nothing else is sent until it is acknowledged or reported failed.
"""

from __future__ import annotations

from collections import deque
from enum import Enum


class ProgressState(Enum):
    """How the leader replicates to one follower."""

    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """A bounded FIFO of the last index of each AppendEntries sent but not yet acknowledged."""

    __slots__ = ("_last_indexes", "capacity")

    def __init__(self, capacity: int) -> None:
        """Allow at most ``capacity`` messages in flight."""
        self.capacity = capacity
        self._last_indexes: deque[int] = deque()

    def __len__(self) -> int:
        """Return how many messages are in flight."""
        return len(self._last_indexes)

    def full(self) -> bool:
        """Return whether no further message may be sent."""
        return len(self._last_indexes) >= self.capacity

    def add(self, last_index: int) -> None:
        """Record a message whose last entry is ``last_index``."""
        assert not self.full(), "inflights overflow"
        self._last_indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose last entry is at or below ``index`` (acknowledged)."""
        queue = self._last_indexes
        while queue and queue[0] <= index:
            queue.popleft()

    def free_first_one(self) -> None:
        """Forget the oldest message (lets a stalled pipeline send again)."""
        if self._last_indexes:
            self._last_indexes.popleft()

    def reset(self) -> None:
        """Forget every message."""
        self._last_indexes.clear()


class Progress:
    """Replication progress of one peer, as tracked by the leader."""

    __slots__ = (
        "inflights",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "snapshot_heartbeats",
        "state",
    )

    def __init__(self, next_index: int, max_inflight_msgs: int) -> None:
        """Start probing at ``next_index`` with nothing known to match."""
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_heartbeats = 0
        self.recent_active = False
        self.inflights = Inflights(max_inflight_msgs)

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_heartbeats = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Go back to probing, resuming right after what is known to match (or the snapshot)."""
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        """Stream entries optimistically from ``match + 1``."""
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """Wait for the follower to install a snapshot at ``snapshot_index``."""
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """Record an acknowledgement of ``index``; return whether ``match`` advanced."""
        updated = False
        if index > self.match:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Handle a rejection of the AppendEntries whose previous index was ``rejected``.

        Return ``False`` if the rejection is stale (out of order); otherwise move ``next`` back
        to just after ``match_hint`` (the follower's guess of where the logs agree).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        """Return whether the leader must not send another AppendEntries right now."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def sent_entries(self, last_index: int, count: int) -> None:
        """Record that an AppendEntries ending at ``last_index`` with ``count`` entries left."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True
