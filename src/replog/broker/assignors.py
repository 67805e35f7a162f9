"""Which member of a consumer group reads which partition: the group's assignors.

The group coordinator (KIP-848 style, server-side assignment) calls an ``Assignor`` with
the group's members (what each subscribes to and what it holds now) and the partition
count of every existing topic; it gets back every member's *target* assignment. Bringing
the members from what they hold to that target (revoke first, then assign, so a
partition is never held twice) is the coordinator's business, not the assignor's.

Two assignors, chosen by the group by name (``ASSIGNORS``, ``assignor``):

- ``range`` (``RangeAssignor``): Kafka's ``RangeAssignor``. Per topic, the members that
  subscribe to it, sorted by member id, get contiguous ranges of its partitions; the
  first ``n mod m`` get one more. Balanced per topic (counts within 1 among the topic's
  subscribers), not across topics. Ignores what members hold.
- ``cooperative-sticky`` (``CooperativeStickyAssignor``): the target of Kafka's
  ``CooperativeStickyAssignor``: as balanced as possible, and sticky (a member keeps
  what it holds unless balance needs it elsewhere). The exact guarantees are in its
  docstring.

Both: a member subscribed to nothing (or only to topics missing from ``partitions``)
gets nothing; a topic nobody subscribes to, or one of 0 partitions, is not assigned;
every member id of the input is a key of the result. The result depends only on the
input's content, never on its order. Nothing here does I/O, reads the clock or draws
randomness.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Protocol

from replog.errors import InvalidArgumentError

__all__ = [
    "ASSIGNORS",
    "Assignor",
    "CooperativeStickyAssignor",
    "MemberSubscription",
    "RangeAssignor",
    "TopicPartition",
    "assignor",
]


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """One partition of one topic; orders by topic, then partition number."""

    topic: str
    partition: int


#: Sorts TopicPartitions as their order does, without the dataclass's slower comparisons.
_BY_TOPIC_PARTITION = attrgetter("topic", "partition")


@dataclass(frozen=True, slots=True)
class MemberSubscription:
    """One group member as an assignor sees it.

    ``topics`` are the topics it subscribes to; ``owned`` is what it holds now (its
    current assignment; empty for a new member); ``rack`` is unused by these assignors.
    """

    member_id: str
    topics: frozenset[str]
    owned: frozenset[TopicPartition] = frozenset()
    rack: str = ""


class Assignor(Protocol):
    """Computes a group's target assignment; ``name`` is how a group chooses it."""

    name: str

    def assign(
        self, members: Sequence[MemberSubscription], partitions: Mapping[str, int]
    ) -> dict[str, frozenset[TopicPartition]]:
        """Return every member id -> its target assignment.

        ``partitions`` maps each existing topic to its partition count; a subscribed
        topic missing from it is assigned to nobody. Raises InvalidArgumentError on two
        members with one id or a negative partition count.
        """
        ...


@dataclass(frozen=True, slots=True)
class _Group:
    """A validated group: member ids sorted, subscriptions narrowed to assignable topics."""

    members: tuple[str, ...]
    by_id: Mapping[str, MemberSubscription]
    topics: Mapping[str, tuple[str, ...]]  # member -> sorted topics it can be given
    subscribers: Mapping[str, tuple[str, ...]]  # assignable topic -> sorted members


def _group(members: Sequence[MemberSubscription], partitions: Mapping[str, int]) -> _Group:
    """Validate the input and index it in sorted order (O(M log M + subscriptions))."""
    for topic in sorted(partitions):
        if partitions[topic] < 0:
            raise InvalidArgumentError(
                f"topic {topic!r} has {partitions[topic]} partitions; a count is >= 0"
            )
    by_id: dict[str, MemberSubscription] = {}
    for member in members:
        if member.member_id in by_id:
            raise InvalidArgumentError(f"two members of the group have id {member.member_id!r}")
        by_id[member.member_id] = member
    ids = tuple(sorted(by_id))
    topics: dict[str, tuple[str, ...]] = {}
    subscribers: dict[str, list[str]] = {}
    for member_id in ids:
        mine = tuple(sorted(t for t in by_id[member_id].topics if partitions.get(t, 0) > 0))
        topics[member_id] = mine
        for topic in mine:
            subscribers.setdefault(topic, []).append(member_id)
    return _Group(
        ids, by_id, topics, {topic: tuple(subscribers[topic]) for topic in sorted(subscribers)}
    )


class RangeAssignor:
    """Kafka's ``RangeAssignor``: contiguous ranges of each topic's partitions.

    For each topic, its subscribers sorted by member id; with ``n`` partitions and ``m``
    subscribers, each gets ``n // m`` consecutive partitions and the first ``n % m`` one
    more (3 members, 7 partitions: 0-2, 3-4, 5-6). Guarantee: per topic, subscribers'
    counts differ by at most 1; across topics the first members may get up to one more
    per topic (Kafka's known skew). Owned partitions are ignored. O(M log M + P).
    """

    name = "range"

    def assign(
        self, members: Sequence[MemberSubscription], partitions: Mapping[str, int]
    ) -> dict[str, frozenset[TopicPartition]]:
        """Return every member id -> its contiguous ranges (see the class)."""
        group = _group(members, partitions)
        result: dict[str, list[TopicPartition]] = {m: [] for m in group.members}
        for topic, subscribers in group.subscribers.items():
            each, extra = divmod(partitions[topic], len(subscribers))
            start = 0
            for i, member_id in enumerate(subscribers):
                size = each + (1 if i < extra else 0)
                result[member_id].extend(
                    TopicPartition(topic, p) for p in range(start, start + size)
                )
                start += size
        return {m: frozenset(tps) for m, tps in result.items()}


class _Holding:
    """The partitions of one topic one member holds: those it owned, and fresh ones."""

    __slots__ = ("fresh", "kept")

    def __init__(self) -> None:
        self.kept: list[int] = []  # sorted; the member owned them in the input
        self.fresh: list[int] = []  # sorted; given to it in this assignment

    def __len__(self) -> int:
        return len(self.kept) + len(self.fresh)


class _Placement:
    """The assignment being built, with per-topic heaps of member loads.

    ``_low[t]`` is a min-heap of (load, member) over t's subscribers; ``_lightest`` and
    ``_heaviest`` are a min-heap and a max-heap (-load, member) over every member that
    subscribes to something. Every load change pushes fresh entries for the member;
    entries whose load is no longer the member's are stale and dropped when they
    surface, so each heap's top is always exact.
    """

    def __init__(self, group: _Group) -> None:
        self.group = group
        self.load = dict.fromkeys(group.members, 0)
        self.owner: dict[TopicPartition, str] = {}
        self._original: dict[TopicPartition, str] = {}
        self._held: dict[str, dict[str, _Holding]] = {m: {} for m in group.members}
        self.holders: dict[str, set[str]] = {t: set() for t in group.subscribers}
        self._low: dict[str, list[tuple[int, str]]] = {}
        self._lightest: list[tuple[int, str]] = []
        self._heaviest: list[tuple[int, str]] = []

    def keep_owned(self, partitions: Mapping[str, int]) -> None:
        """Start from what members own: each valid claim, the lowest member id winning a
        contested one; then build the heaps. O(owned log owned + M T)."""
        for member_id in self.group.members:
            member = self.group.by_id[member_id]
            for tp in sorted(member.owned, key=_BY_TOPIC_PARTITION):
                valid = tp.topic in member.topics and 0 <= tp.partition < partitions.get(
                    tp.topic, 0
                )
                if valid and tp not in self.owner:
                    self._original[tp] = member_id
                    self._add(tp, member_id)
        for topic, subscribers in self.group.subscribers.items():
            self._low[topic] = [(self.load[m], m) for m in subscribers]
            heapq.heapify(self._low[topic])
        subscribing = [m for m in self.group.members if self.group.topics[m]]
        self._lightest = [(self.load[m], m) for m in subscribing]
        self._heaviest = [(-self.load[m], m) for m in subscribing]
        heapq.heapify(self._lightest)
        heapq.heapify(self._heaviest)

    def _add(self, tp: TopicPartition, member_id: str) -> None:
        holding = self._held[member_id].setdefault(tp.topic, _Holding())
        kept = self._original.get(tp) == member_id
        insort(holding.kept if kept else holding.fresh, tp.partition)
        self.owner[tp] = member_id
        self.load[member_id] += 1
        self.holders[tp.topic].add(member_id)

    def _touch(self, member_id: str) -> None:
        """Push the member's new load into every heap it is in."""
        load = self.load[member_id]
        for topic in self.group.topics[member_id]:
            heapq.heappush(self._low[topic], (load, member_id))
        heapq.heappush(self._lightest, (load, member_id))
        heapq.heappush(self._heaviest, (-load, member_id))

    def least(self, topic: str) -> str:
        """The least loaded subscriber of ``topic`` (lowest id among equals)."""
        heap = self._low[topic]
        while heap[0][0] != self.load[heap[0][1]]:
            heapq.heappop(heap)
        return heap[0][1]

    def direct_move(self, fresh_only: bool) -> tuple[str, str, str] | None:
        """The single move (topic, from, to) off the most loaded member that can give one
        to a subscriber of its topic loaded 2 or more below it, to the least loaded such;
        None when no member can. ``fresh_only``: only moves of partitions the member did
        not own. Lowest ids and topic names win ties."""
        heap = self._heaviest
        lightest = self._lightest
        if not lightest:
            return None
        while lightest[0][0] != self.load[lightest[0][1]]:
            heapq.heappop(lightest)
        floor = lightest[0][0]
        looked: list[tuple[int, str]] = []
        found = None
        while heap and found is None:
            entry = heapq.heappop(heap)
            load, member_id = -entry[0], entry[1]
            if load != self.load[member_id]:
                continue  # stale
            looked.append(entry)
            if load - floor < 2:
                break  # nobody loaded this or less can give
            held = self._held[member_id]
            topics = [t for t in held if held[t].fresh or not fresh_only]
            lowest = min(((self.load[self.least(t)], t) for t in topics), default=(load, ""))
            if load - lowest[0] >= 2:
                found = (lowest[1], member_id, self.least(lowest[1]))
        for entry in looked:
            heapq.heappush(heap, entry)
        return found

    def give(self, tp: TopicPartition, member_id: str) -> None:
        """Assign the unowned ``tp`` to ``member_id``."""
        self._add(tp, member_id)
        self._touch(member_id)

    def gives_fresh(self, member_id: str, topic: str) -> bool:
        """Whether ``member_id`` holds a partition of ``topic`` it did not own."""
        holding = self._held[member_id].get(topic)
        return holding is not None and bool(holding.fresh)

    def move(self, topic: str, source: str, target: str) -> None:
        """Move one of ``source``'s partitions of ``topic`` to ``target``: a fresh one if it
        has one (no revocation then), else its highest owned one."""
        holding = self._held[source][topic]
        partition = holding.fresh.pop() if holding.fresh else holding.kept.pop()
        if not holding:
            del self._held[source][topic]
            self.holders[topic].discard(source)
        self.load[source] -= 1
        self._add(TopicPartition(topic, partition), target)
        self._touch(source)
        self._touch(target)

    def result(self) -> dict[str, frozenset[TopicPartition]]:
        """Every member id -> the partitions it holds now."""
        out: dict[str, list[TopicPartition]] = {m: [] for m in self.group.members}
        for tp, member_id in self.owner.items():
            out[member_id].append(tp)
        return {m: frozenset(tps) for m, tps in out.items()}


def _fill(placement: _Placement, partitions: Mapping[str, int]) -> None:
    """Give every unowned partition to its topic's least loaded subscriber, the topics
    with the fewest subscribers first (they have the fewest choices). O(P T log(P + M))."""
    subscribers = placement.group.subscribers
    for topic in sorted(subscribers, key=lambda t: (len(subscribers[t]), t)):
        for partition in range(partitions[topic]):
            tp = TopicPartition(topic, partition)
            if tp not in placement.owner:
                placement.give(tp, placement.least(topic))


def _balance_directly(placement: _Placement, fresh_only: bool) -> None:
    """Move single partitions off the most loaded member that can give one, to the least
    loaded subscriber of its topic, while their loads differ by 2 or more. Each move
    lowers the sum of squared loads, so this ends; O(moves T log(P + M)) when members
    share subscriptions (the most loaded member can then always give)."""
    while (move := placement.direct_move(fresh_only)) is not None:
        placement.move(*move)


def _chain_into(
    placement: _Placement, level: int, fresh_only: bool
) -> list[tuple[str, str, str]] | None:
    """A chain of moves (topic, from, to) that takes one partition off a member loaded
    ``level + 2`` or more and puts one on a member loaded ``level`` or less, every member
    in between keeping its load; None if there is none. Breadth first, backwards from
    the lightly loaded members: O(M + sum of holders) per call."""
    load = placement.load
    sinks = [m for m in placement.group.members if load[m] <= level]
    toward: dict[str, tuple[str, str]] = {}  # member -> (topic, the member it gives to)
    seen = set(sinks)
    expanded: set[str] = set()
    queue = deque(sinks)
    while queue:
        receiver = queue.popleft()
        for topic in placement.group.topics[receiver]:
            if topic in expanded:
                continue
            expanded.add(topic)
            for giver in sorted(placement.holders[topic] - seen):
                if fresh_only and not placement.gives_fresh(giver, topic):
                    continue
                seen.add(giver)
                toward[giver] = (topic, receiver)
                if load[giver] >= level + 2:
                    return _chain_from(giver, toward)
                queue.append(giver)
    return None


def _chain_from(giver: str, toward: Mapping[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    """The moves (topic, from, to) that follow ``toward`` from ``giver`` to a sink."""
    chain = []
    member = giver
    while member in toward:
        topic, receiver = toward[member]
        chain.append((topic, member, receiver))
        member = receiver
    return chain


def _balance_by_chains(placement: _Placement, fresh_only: bool) -> None:
    """Apply chains of moves until none exists: the assignment is then an optimal
    semi-matching (see ``CooperativeStickyAssignor``). A no-op after ``_balance_directly``
    when all loads are within 1, which is always so when members share subscriptions."""
    while True:
        group = placement.group
        loads = sorted({placement.load[m] for m in group.members if group.topics[m]})
        if not loads or loads[-1] - loads[0] < 2:
            return
        chain = None
        for level in loads:
            if level > loads[-1] - 2:
                break
            chain = _chain_into(placement, level, fresh_only)
            if chain is not None:
                break
        if chain is None:
            return
        for topic, source, target in chain:
            placement.move(topic, source, target)


class CooperativeStickyAssignor:
    """The target of Kafka's ``CooperativeStickyAssignor``: balanced, then sticky.

    Guarantees, for any input:

    1. **Complete and exclusive.** Every partition of every subscribed existing topic goes
       to exactly one member that subscribes to its topic; nothing else is assigned.
    2. **As balanced as possible.** The result is an *optimal semi-matching* of partitions
       to subscribing members: no chain of moves (member A gives a partition to B, who
       subscribes to its topic, B gives one to C, ...) takes a partition off a member
       loaded ``k`` and onto one loaded ``k - 2`` or less. By Harvey, Ladner, Lovász and
       Tamir ("Semi-matchings for bipartite graphs and load balancing", 2006) that means
       the largest load is the smallest possible, and so is the sum of squared loads,
       among every valid assignment. In particular two members with the same
       subscriptions differ by at most 1, and when all members subscribe to the same
       topics every load is ``P // M`` or ``P // M + 1``.
    3. **Sticky.** Owned partitions (the valid claims, see 4) move only when balance
       needs it. An input whose owned sets already are an assignment satisfying 1 and 2
       comes back unchanged. Unowned partitions (new ones, a leaver's) are placed first,
       and an owned one moves only when no assignment satisfying 2 keeps every owned
       partition where it is: after a member leaves, the others keep all they hold
       whenever balance allows (with shared subscriptions, always). When all members
       share their subscriptions, the number of owned partitions taken away is the
       minimum any balanced assignment needs (the ``P mod M`` larger shares stay with
       the members owning the most). With differing subscriptions the owned partitions
       taken away are those single moves and chains pick: few, not proven minimal.
    4. **Conflicts.** An owned partition claimed by two members (one of them stale) stays
       with the lowest member id; claims on a topic the member no longer subscribes to,
       a missing topic, or a partition number outside the topic are dropped.
    5. **Deterministic.** Same content in, same assignment out, in any input order;
       ties go to the lowest member id (and topic name); a moved partition is the
       giver's highest-numbered one of the topic it did not own, else its highest.

    How: keep the valid owned partitions; give each unowned one to the least loaded
    subscriber of its topic (topics with the fewest subscribers first); then balance,
    first moving only partitions no member owned, then any: single moves off the most
    loaded member that can give one, to the least loaded subscriber of the topic, while
    that narrows a gap of 2 or more, then chains of moves, which only differing
    subscriptions need. Complexity, P partitions, M members, T topics per member: with
    shared subscriptions O(P log P + M log M + (P + moves) T log(P + M)); with differing
    ones a single move may look at O(M) members, and each chain costs O(L (M + H)), L the
    number of distinct loads and H the (member, topic) holdings.
    """

    name = "cooperative-sticky"

    def assign(
        self, members: Sequence[MemberSubscription], partitions: Mapping[str, int]
    ) -> dict[str, frozenset[TopicPartition]]:
        """Return every member id -> its balanced, sticky target (see the class)."""
        placement = _Placement(_group(members, partitions))
        placement.keep_owned(partitions)
        _fill(placement, partitions)
        for fresh_only in (True, False):
            _balance_directly(placement, fresh_only)
            _balance_by_chains(placement, fresh_only)
        return placement.result()


#: The assignors a group can choose, by name.
ASSIGNORS: Mapping[str, Assignor] = MappingProxyType(
    {a.name: a for a in (RangeAssignor(), CooperativeStickyAssignor())}
)


def assignor(name: str) -> Assignor:
    """Return the assignor called ``name``; InvalidArgumentError names the known ones."""
    try:
        return ASSIGNORS[name]
    except KeyError:
        known = ", ".join(sorted(ASSIGNORS))
        raise InvalidArgumentError(
            f"no assignor is called {name!r}; the known ones are {known}"
        ) from None
