"""A seeded network between the simulated nodes: delay, loss, duplication, partitions.

What one ``send`` call carries to one peer travels together, after a random delay (so batches
overtake each other); a batch that arrives across a partition, or at a node that is down, is
lost. Timers run on the loop's
virtual time, so delivery order is a function of the seed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence

from replog.cluster.raft_node import RaftNode
from replog.raft.messages import Message

Route = Callable[[int], RaftNode | None]


class Network:
    """Carries messages between nodes; ``route`` finds the live node behind an id."""

    def __init__(
        self,
        rng: random.Random,
        route: Route,
        *,
        drop: float,
        duplicate: float,
        delay_s: tuple[float, float],
    ) -> None:
        self.rng = rng
        self.route = route
        self.drop = drop
        self.duplicate = duplicate
        self.delay_s = delay_s
        self.blocked: set[tuple[int, int]] = set()
        self.sent = 0

    def send(self, messages: Sequence[Message]) -> None:
        """Put ``messages`` on the wire (the ``RaftNode.send`` callback). As with the real
        transport, what one call sends to one peer travels together; each message may be
        lost or duplicated on its own."""
        loop = asyncio.get_running_loop()
        rng = self.rng
        lo, hi = self.delay_s
        by_peer: dict[int, list[Message]] = {}
        for m in messages:
            self.sent += 1
            if self.drop and rng.random() < self.drop:
                continue
            copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
            by_peer.setdefault(m.dst, []).extend([m] * copies)
        for batch in by_peer.values():
            loop.call_later(rng.uniform(lo, hi), self._arrive, batch)

    def _arrive(self, batch: list[Message]) -> None:
        m = batch[0]
        if (m.src, m.dst) in self.blocked:
            return
        node = self.route(m.dst)
        if node is not None:
            node.deliver(batch)

    def partition(self, sides: dict[int, bool]) -> set[tuple[int, int]]:
        """Cut every link between the two sides (``True`` / ``False``) of ``sides``, instead of
        any earlier cut; return the links cut."""
        self.blocked = {(a, b) for a in sides for b in sides if sides[a] != sides[b]}
        return set(self.blocked)

    def isolate(self, node: int, others: Iterable[int]) -> set[tuple[int, int]]:
        """Cut ``node`` off from every other node (on top of any partition); return the links."""
        links = {
            pair for other in others if other != node for pair in ((node, other), (other, node))
        }
        self.blocked |= links
        return links

    def restore(self, links: set[tuple[int, int]]) -> None:
        """Reconnect ``links`` (a cut that was meant to last a while)."""
        self.blocked -= links

    def heal(self) -> None:
        """Reconnect everything."""
        self.blocked = set()

    def calm(self) -> None:
        """No more loss or duplication and short delays (the liveness phase)."""
        self.drop = self.duplicate = 0.0
        self.delay_s = (min(self.delay_s[0], 0.001), min(self.delay_s[1], 0.005))
