"""Where each partition of a topic is served: the clients' partition metadata cache.

In a cluster every partition is its own Raft group on a few of the nodes (its replicas),
one of which leads it. Any node accepts a produce (a follower forwards it), but sending it
to the partition's leader saves the hop; and only a replica can serve a read. The clients
learn a topic's leaders and replicas from ``DescribeTopic`` (a node reports the leaders of
the partitions it holds, so the answers of several nodes are merged), cache them, and send
each call for a partition there. A failed routed call drops the topic's routes (or, when the
server named a better address, points that partition there); they are fetched again at
most every ``RETRY_S`` and refreshed every ``ttl_s``.

Pure bookkeeping, thread-safe, no I/O: the blocking and asyncio clients do the calls.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from replog.client.admin import TopicDescription

__all__ = [
    "AVOID_S",
    "DEFAULT_TOPIC",
    "RETRY_S",
    "PartitionRoutes",
    "Route",
    "merge_descriptions",
    "merge_routes",
    "needs_more",
]

#: The topic of a request that names none: the cluster's own log, routed as before.
DEFAULT_TOPIC = "default"
#: The least time between two fetches of one topic's routes.
RETRY_S = 0.5
#: How long a partition's calls avoid an address where one failed without a hint.
AVOID_S = 3.0


@dataclass(slots=True)
class Route:
    """One partition: its leader's address ("" unknown) and its replicas' addresses."""

    leader: str
    replicas: tuple[str, ...]
    turn: int = field(default=0)


def merge_routes(
    answers: Sequence[tuple[str, TopicDescription]], addresses: Mapping[str, str]
) -> list[Route]:
    """One Route per partition from the descriptions ``answers`` (answering node id, its
    description of the topic), node ids mapped to addresses by ``addresses``. A node's word
    on a partition it says it leads wins; else any leader a replica reported."""
    if not answers:
        return []
    count = max(d.partition_count for _, d in answers)
    routes = []
    for p in range(count):
        leader, replicas = "", tuple[str, ...]()
        for node, description in answers:
            if p >= description.partition_count:
                continue
            part = description.partitions[p]
            replicas = replicas or part.replicas
            if part.leader and (not leader or part.leader == node):
                leader = part.leader
        known = (addresses.get(node_id, "") for node_id in replicas)
        routes.append(Route(addresses.get(leader, ""), tuple(a for a in known if a)))
    return routes


def merge_descriptions(answers: Sequence[tuple[str, TopicDescription]]) -> TopicDescription:
    """One description of a topic from several nodes' (answering node id, description):
    each partition as the node that leads it describes it, else as a replica does (a node
    without a replica knows neither its leader nor its offsets). ``answers`` is not empty."""
    base = max((d for _, d in answers), key=lambda d: d.partition_count)
    parts = []
    for p, fallback in enumerate(base.partitions):
        chosen, rank = fallback, 3
        for node, description in answers:
            if p >= description.partition_count:
                continue
            part = description.partitions[p]
            score = 0 if part.leader == node else (1 if node in part.replicas else 2)
            if score < rank:
                chosen, rank = part, score
        parts.append(chosen)
    return TopicDescription(base.name, base.config, base.replication_factor, tuple(parts))


def needs_more(routes: Sequence[Route]) -> bool:
    """Whether some partition's leader is still unknown (ask another node)."""
    return any(not r.leader for r in routes)


class PartitionRoutes:
    """The cached routes of the topics a client used; see the module docstring."""

    def __init__(self, *, ttl_s: float = 30.0) -> None:
        """Keep a topic's routes ``ttl_s`` seconds before fetching them again."""
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._routes: dict[str, list[Route]] = {}
        self._fetched: dict[str, float] = {}
        self._tried: dict[str, float] = {}
        self._avoid: dict[tuple[str, int, str], float] = {}

    @staticmethod
    def routed(topic: str) -> bool:
        """Whether calls for ``topic`` are routed per partition (not ``default``)."""
        return topic not in ("", DEFAULT_TOPIC)

    def due(self, topic: str, now: float) -> bool:
        """Whether to fetch ``topic``'s routes now (absent or stale, and not tried lately);
        True marks the attempt."""
        with self._lock:
            fresh = now - self._fetched.get(topic, -1e18) < self.ttl_s
            if fresh or now - self._tried.get(topic, -1e18) < RETRY_S:
                return False
            self._tried[topic] = now
            return True

    def update(self, topic: str, routes: list[Route], now: float, *, hold: bool = False) -> None:
        """Replace ``topic``'s routes with freshly fetched ones (empty: forget them; with
        ``hold``, also do not ask again for ``ttl_s``: e.g. describing is not allowed)."""
        with self._lock:
            if routes:
                self._routes[topic] = routes
                if needs_more(routes):  # a leader unknown (an election): ask again soon
                    self._fetched.pop(topic, None)
                else:
                    self._fetched[topic] = now
                return
            self._routes.pop(topic, None)
            if hold:
                self._fetched[topic] = now
            else:
                self._fetched.pop(topic, None)

    def partitions(self, topic: str) -> int | None:
        """How many partitions ``topic`` has, if known."""
        with self._lock:
            routes = self._routes.get(topic)
            return len(routes) if routes else None

    def leader(self, topic: str, partition: int, now: float = 0.0) -> str | None:
        """The address to send a produce for the partition to, if known (and not avoided
        at ``now`` after a failure there)."""
        with self._lock:
            route = self._route(topic, partition)
            addr = route.leader if route is not None else ""
            return addr if addr and not self._avoided(topic, partition, addr, now) else None

    def replica(self, topic: str, partition: int, now: float = 0.0) -> str | None:
        """An address to read the partition from (its replicas in turn, skipping one
        avoided at ``now``), if known."""
        with self._lock:
            route = self._route(topic, partition)
            if route is None or not route.replicas:
                return None
            for _ in route.replicas:
                route.turn += 1
                addr = route.replicas[route.turn % len(route.replicas)]
                if not self._avoided(topic, partition, addr, now):
                    return addr
            return None

    def _avoided(self, topic: str, partition: int, addr: str, now: float) -> bool:
        until = self._avoid.get((topic, partition, addr))
        return until is not None and now < until

    def _route(self, topic: str, partition: int) -> Route | None:
        routes = self._routes.get(topic)
        if routes is None or not 0 <= partition < len(routes):
            return None
        return routes[partition]

    def failed(
        self, topic: str, partition: int, hint: str = "", *, addr: str = "", now: float = 0.0
    ) -> None:
        """A routed call to ``addr`` failed: with ``hint`` (an address the server named),
        send the partition's calls there; else avoid ``addr`` for that partition for
        ``AVOID_S`` (a leader cut off from its group still says it leads, and its calls
        time out: the others forward to the new one) and fetch the routes again soon."""
        with self._lock:
            if addr and not hint:
                self._avoid = {k: t for k, t in self._avoid.items() if t > now}
                self._avoid[(topic, partition, addr)] = now + AVOID_S
            route = self._route(topic, partition)
            if hint and route is not None:
                route.leader = hint
                route.replicas = (hint, *(a for a in route.replicas if a != hint))
                route.turn = -1
                return
            self._routes.pop(topic, None)
            self._fetched.pop(topic, None)
