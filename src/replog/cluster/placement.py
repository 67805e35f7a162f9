"""Where each partition's replicas live, and which replica should lead it.

Pure functions of node ids and counts: no I/O, no clock, no randomness of their own (the
caller passes its rotation ``start``). A replica set is a tuple of node ids whose FIRST entry
is the partition's preferred leader, as in Kafka.

``assign_replicas`` places new partitions the way Kafka's rack-unaware assignment does
(``AdminUtils.assignReplicasToBrokers``): whole rounds of one partition per node, each led
by the next node in turn, with the followers at a shift that changes every round so that
one node's partitions are not all copied to the same few nodes. Unlike Kafka it also keeps a
last, partial round balanced (every node gets the floor or the ceiling of its share of
replicas and leaderships) and it gives the extra ones to the least loaded nodes.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence, Set

from replog.errors import InvalidArgumentError

__all__ = ["assign_replicas", "leader_moves", "reassign_without"]


def assign_replicas(
    nodes: Sequence[str],
    partitions: int,
    replication_factor: int,
    *,
    first_partition: int = 0,
    load: Mapping[str, int] | None = None,
    leader_load: Mapping[str, int] | None = None,
    start: int = 0,
) -> list[tuple[str, ...]]:
    """Return the replica sets of partitions ``first_partition`` .. ``+ partitions - 1``.

    Entry ``i`` of the list is partition ``first_partition + i``; its first node is that
    partition's preferred leader. The sets of one call obey:

    - no node holds two replicas of one partition;
    - every node holds the floor or the ceiling of ``partitions * replication_factor /
      len(nodes)`` of the call's replicas;
    - every node is preferred leader of the floor or the ceiling of ``partitions /
      len(nodes)`` of them.

    ``load`` says how many replicas each node already holds across the cluster, and
    ``leader_load`` how many partitions it is preferred leader of (a missing node counts 0;
    ``leader_load`` defaults to ``load``). The extra replicas of a last, partial round go
    to the nodes with the least ``load``, and its leaders are the nodes with the least
    ``leader_load`` among those that hold one of its replicas, so that many small topics
    spread too: with ``load`` kept as the replica counts (from an even start), no node ever
    holds two replicas more than another, however many topics of whatever size come.

    Ties are broken by rotation: node ``nodes[(start + first_partition) % len(nodes)]``
    comes first, then the ones after it, so callers that vary ``start`` (randomly or
    seeded) do not start every topic on the same node, and partitions added to a topic with
    its original ``start`` continue its rotation.

    Raises ``InvalidArgumentError`` for duplicate node ids, fewer than one partition, a
    negative first partition, or a replication factor below 1 or above the node count.
    """
    _check_assignment(nodes, partitions, replication_factor, first_partition)
    rotation = start + first_partition
    replicas_held = load or {}
    leaderships = leader_load if leader_load is not None else replicas_held
    order = _preference_order(nodes, replicas_held, rotation)
    leader_order = _preference_order(nodes, leaderships, rotation)
    count = len(order)
    rounds, rest = divmod(partitions, count)
    sets: list[tuple[str, ...]] = []
    for round_index in range(rounds):
        # Kafka's "nextReplicaShift": follower j of the partition led by order[k] sits at
        # order[k + 1 + (shift + j) % (count - 1)]; each round shifts by one more.
        shift = start + first_partition // count + round_index
        for k in range(count):
            followers = (
                order[(k + 1 + (shift + j) % (count - 1)) % count]
                for j in range(replication_factor - 1)
            )
            sets.append((order[k], *followers))
    sets.extend(_partial_round(order, leader_order, rest, replication_factor))
    return sets


def _check_assignment(
    nodes: Sequence[str], partitions: int, replication_factor: int, first_partition: int
) -> None:
    _check_unique(nodes)
    if partitions < 1:
        raise InvalidArgumentError(f"a topic has at least 1 partition, not {partitions}")
    if first_partition < 0:
        raise InvalidArgumentError(f"partitions are numbered from 0, not {first_partition}")
    if replication_factor < 1:
        raise InvalidArgumentError(
            f"replication factor must be at least 1, not {replication_factor}"
        )
    if not nodes:
        raise InvalidArgumentError("the cluster has no nodes to place replicas on")
    if replication_factor > len(nodes):
        plural = "node" if len(nodes) == 1 else "nodes"
        raise InvalidArgumentError(
            f"replication factor {replication_factor} is larger than the {len(nodes)} "
            f"{plural} of the cluster"
        )


def _check_unique(nodes: Sequence[str]) -> None:
    repeated = sorted(node for node, seen in Counter(nodes).items() if seen > 1)
    if repeated:
        listed = ", ".join(repeated)
        raise InvalidArgumentError(f"node ids must be unique; listed more than once: {listed}")


def _preference_order(nodes: Sequence[str], load: Mapping[str, int], rotation: int) -> list[str]:
    """The nodes, least loaded first; equally loaded ones in rotation order from ``rotation``."""
    count = len(nodes)
    ranked = sorted(range(count), key=lambda i: (load.get(nodes[i], 0), (i - rotation) % count))
    return [nodes[i] for i in ranked]


def _partial_round(
    order: list[str], leader_order: list[str], partitions: int, replication_factor: int
) -> list[tuple[str, ...]]:
    """Replica sets for fewer partitions than nodes: the extra replicas go to the head of
    ``order``, the leaderships to the head of ``leader_order``.

    The slots are positions ``0 .. partitions * replication_factor - 1`` of the cycle
    ``order, order, ...``, so each node gets the floor or the ceiling of its share and the
    ones with the ceiling come first in ``order``. The leaders are the first ``partitions``
    nodes of ``leader_order`` that hold a slot.
    """
    count = len(order)
    share, extra = divmod(partitions * replication_factor, count)
    slots = {node: share + (1 if i < extra else 0) for i, node in enumerate(order)}
    rank = {node: position for position, node in enumerate(leader_order)}
    leaders = sorted((node for node in order if slots[node]), key=rank.__getitem__)
    sets = _fill_followers(leaders[:partitions], slots, replication_factor, order)
    if sets is not None:
        return sets
    # Never needed so far (every leader subset up to 9 nodes, samples up to 11, and the
    # tests sample up to 8), but this one is proven to work: consecutive positions of the
    # cycle, and the best leaders those sets allow.
    flat = [
        [order[(k * replication_factor + j) % count] for j in range(replication_factor)]
        for k in range(partitions)
    ]
    matched = zip(_match_leaders(flat, leader_order), flat, strict=True)
    return [
        (leader, *(node for node in members if node != leader))
        for leader, members in sorted(matched, key=lambda pair: rank[pair[0]])
    ]


def _fill_followers(
    leaders: list[str], slots: Mapping[str, int], replication_factor: int, order: list[str]
) -> list[tuple[str, ...]] | None:
    """Set ``k`` led by ``leaders[k]``, followers filling every node's ``slots``; or None.

    Each set takes the followers with the least slack (rows left where they may go, less
    slots left to fill), so a node that must appear in every remaining set is never left
    out; None if a set cannot be filled with distinct nodes.
    """
    left = dict(slots)
    for leader in leaders:
        left[leader] -= 1
    leads_row = {leader: k for k, leader in enumerate(leaders)}
    position = {node: i for i, node in enumerate(order)}
    sets: list[tuple[str, ...]] = []
    for k, leader in enumerate(leaders):
        rows_left = len(leaders) - k

        def urgency(node: str, k: int = k, rows_left: int = rows_left) -> tuple[int, int, int]:
            allowed = rows_left - (1 if leads_row.get(node, -1) >= k else 0)
            return (allowed - left[node], -left[node], position[node])

        candidates = sorted((n for n in order if n != leader and left[n] > 0), key=urgency)
        if len(candidates) < replication_factor - 1:
            return None
        chosen = candidates[: replication_factor - 1]
        for node in chosen:
            left[node] -= 1
        sets.append((leader, *chosen))
    return sets


def _match_leaders(sets: list[list[str]], order: list[str]) -> list[str]:
    """One leader per set, each a member of it and no node leading two; nodes early in
    ``order`` are preferred.

    Kuhn's augmenting paths, trying nodes in preference order: the matched nodes are then
    the best set of leaders the sets allow. A match of every set exists (Hall's condition:
    any ``s`` sets hold ``s * replication_factor`` slots, and no node has more than the
    ceiling of ``partitions * replication_factor / count`` of them, so they span at least
    ``s`` nodes), so every set gets a leader.
    """
    sets_of: dict[str, list[int]] = {node: [] for node in order}
    for index, members in enumerate(sets):
        for node in members:
            sets_of[node].append(index)
    leader: list[str | None] = [None] * len(sets)
    led_by: dict[str, int] = {}
    for node in order:
        if len(led_by) == len(sets):
            break
        _augment(node, sets_of, leader, led_by)
    assert None not in leader, "Hall's condition guarantees a leader for every set"
    return [node for node in leader if node is not None]


def _augment(
    first: str, sets_of: dict[str, list[int]], leader: list[str | None], led_by: dict[str, int]
) -> None:
    """Give ``first`` a set to lead if an alternating path to a leaderless set exists."""
    came_from: dict[int, str] = {}
    queue = deque([first])
    while queue:
        node = queue.popleft()
        for index in sets_of[node]:
            if index in came_from:
                continue
            came_from[index] = node
            holder = leader[index]
            if holder is not None:
                queue.append(holder)
                continue
            _flip(index, came_from, leader, led_by)
            return


def _flip(
    index: int,
    came_from: dict[int, str],
    leader: list[str | None],
    led_by: dict[str, int],
) -> None:
    """Walk the path from leaderless set ``index`` back to the node that started it (the
    only one on it leading nothing yet): each node on it moves to the set it reached."""
    while True:
        taker = came_from[index]
        previous = led_by.get(taker)
        leader[index] = taker
        led_by[taker] = index
        if previous is None:
            return
        index = previous


def reassign_without(
    assignments: Mapping[int, tuple[str, ...]], node: str, nodes: Sequence[str]
) -> dict[int, tuple[str, ...]]:
    """Return every partition's replica set with ``node`` replaced, for decommissioning it.

    In each set holding ``node``, its place (the same position, so a preferred leader is
    replaced by a preferred leader) goes to the node of ``nodes`` other than ``node`` that
    is not already in the set and holds the fewest replicas (then leads the fewest sets;
    then comes first in ``nodes``), counting as it goes. The other replicas and their order
    are kept; sets without ``node`` are returned as they are.

    Raises ``InvalidArgumentError``, changing nothing, when a set would need more nodes than
    remain, or ``nodes`` lists an id twice.
    """
    _check_unique(nodes)
    remaining = [candidate for candidate in nodes if candidate != node]
    for partition in sorted(assignments):
        replicas = assignments[partition]
        if node in replicas and all(candidate in replicas for candidate in remaining):
            raise InvalidArgumentError(
                f"cannot move partition {partition} off node {node}: its {len(replicas)} "
                f"replicas need {len(replicas)} nodes and only {len(remaining)} would remain"
            )
    held = Counter(replica for replicas in assignments.values() for replica in replicas)
    led = Counter(replicas[0] for replicas in assignments.values() if replicas)
    rank = {candidate: position for position, candidate in enumerate(remaining)}
    result: dict[int, tuple[str, ...]] = {}
    for partition in sorted(assignments):
        replicas = assignments[partition]
        if node not in replicas:
            result[partition] = replicas
            continue
        chosen = min(
            (candidate for candidate in remaining if candidate not in replicas),
            key=lambda candidate: (held[candidate], led[candidate], rank[candidate]),
        )
        held[chosen] += 1
        if replicas[0] == node:
            led[chosen] += 1
        result[partition] = tuple(chosen if replica == node else replica for replica in replicas)
    return result


def leader_moves(
    assignments: Mapping[int, tuple[str, ...]], leaders: Mapping[int, str], live: Set[str]
) -> list[tuple[int, str]]:
    """Return ``(partition, preferred_leader)`` for each partition whose leader should move
    back to its preferred leader, in partition order (Kafka's ``auto.leader.rebalance``).

    That is each partition whose current leader (``leaders``) is not its preferred leader
    (the first of its replicas) while the preferred leader is ``live``. A partition with no
    leader just now (absent from ``leaders``, or ``""``) is left out: there is no leader to
    hand over from, and the election under way picks one.
    """
    moves: list[tuple[int, str]] = []
    for partition in sorted(assignments):
        replicas = assignments[partition]
        current = leaders.get(partition, "")
        if not replicas or not current:
            continue
        preferred = replicas[0]
        if current != preferred and preferred in live:
            moves.append((partition, preferred))
    return moves
