"""Node liveness: when this node last heard each peer node, and the up/down transitions.

A peer is *live* while something of it (a Raft batch of this cluster, a transport ping)
arrived within the timeout. Every group shares the one verdict per node, so a quiesced group
(no heartbeats, see docs/multiraft.md) still learns that its leader's node died. A peer
never heard is not live, and is not reported down: its first batch reports it up. A check
that runs more than ``stall_s`` (default: half the timeout) after the previous one reports
nobody: this node's own loop stalled, and what its peers sent meanwhile is not read yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Liveness", "PeerHook"]

log = logging.getLogger("replog.cluster.liveness")

PeerHook = Callable[[int], None]
"""Called with the Raft id of a peer whose liveness changed."""


class Liveness:
    """Per-peer last-heard times with a ``timeout_s`` verdict and transition hooks."""

    def __init__(
        self,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        stall_s: float | None = None,
    ) -> None:
        """``clock``: monotonic seconds (a test may fake it); ``stall_s``: a longer gap
        between two checks means this node stalled (see the module docstring)."""
        self.timeout_s = timeout_s
        self.stall_s = timeout_s / 2 if stall_s is None else stall_s
        self.clock = clock
        self._heard: dict[int, float] = {}
        self._live: set[int] = set()
        self._on_down: list[PeerHook] = []
        self._on_up: list[PeerHook] = []
        self._checked_at: float | None = None

    def on_peer_down(self, callback: PeerHook) -> None:
        """Call ``callback(peer)`` once each time a live peer is found silent for too long."""
        self._on_down.append(callback)

    def on_peer_up(self, callback: PeerHook) -> None:
        """Call ``callback(peer)`` once each time a peer not live (or never heard) is heard."""
        self._on_up.append(callback)

    def heard(self, peer: int) -> None:
        """Something of ``peer`` arrived now (cheap: called for every received batch)."""
        self._heard[peer] = self.clock()
        if peer not in self._live:
            self._live.add(peer)
            self._fire(self._on_up, peer)

    def live(self, peer: int) -> bool:
        """Whether ``peer`` was heard within the timeout."""
        at = self._heard.get(peer)
        return at is not None and self.clock() - at <= self.timeout_s

    def check(self) -> None:
        """Report every live peer silent for longer than the timeout as down (once)."""
        now = self.clock()
        checked_at, self._checked_at = self._checked_at, now
        if checked_at is not None and now - checked_at > self.stall_s:
            return  # this node stalled: its peers' batches wait unread (see the docstring)
        if not self._live:
            return
        silent = [p for p in self._live if now - self._heard[p] > self.timeout_s]
        for peer in silent:
            self._live.discard(peer)
            self._fire(self._on_down, peer)

    def forget(self, peer: int) -> None:
        """Stop tracking ``peer`` (it left the cluster): no transition is reported."""
        self._heard.pop(peer, None)
        self._live.discard(peer)

    def _fire(self, hooks: list[PeerHook], peer: int) -> None:
        for hook in hooks:
            try:
                hook(peer)
            except Exception:  # a hook's bug must not stop liveness for every other peer
                log.exception("a liveness hook failed for peer %s", peer)
