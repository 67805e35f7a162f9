"""What the APIs and the node's reconcile step read from a controller state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from replog.broker.config import TopicConfig
from replog.broker.model import PartitionDescription, TopicDescription
from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.controller_state import ControllerState
from replog.errors import UnknownTopicError

__all__ = ["PartitionRef", "describe", "diff_for_node", "http_address_of", "partitions_of"]


@dataclass(frozen=True, slots=True, order=True)
class PartitionRef:
    """One partition of one incarnation of a topic (``topic_id`` tells a re-created topic
    from the one deleted before it)."""

    topic: str
    partition: int
    topic_id: int


def describe(
    state: ControllerState,
    topic: str,
    leaders: Mapping[tuple[str, int], str],
    *,
    defaults: TopicConfig | None = None,
) -> TopicDescription:
    """``topic`` as the topic APIs show it: every config key (``defaults`` under the
    overrides), and per partition its replicas and its leader from ``leaders`` ("" when it
    has none). Offsets and sizes are not metadata: they are 0 here, for the host to fill
    in; ``in_sync`` lists the current replicas. Raises UnknownTopicError."""
    info = state.topics.get(topic)
    if info is None:
        raise UnknownTopicError(topic)
    config = (defaults or TopicConfig()).with_values(info.config).as_strings()
    partitions = tuple(
        PartitionDescription(
            partition=p,
            leader=leaders.get((topic, p), ""),
            replicas=part.replicas,
            in_sync=part.replicas,
            lowest_offset=0,
            next_offset=0,
            size_bytes=0,
        )
        for p, part in enumerate(info.partitions)
    )
    rf = len(info.partitions[0].replicas) if topic == DEFAULT_TOPIC else info.replication_factor
    return TopicDescription(name=topic, config=config, replication_factor=rf, partitions=partitions)


def partitions_of(state: ControllerState, node_id: str) -> list[PartitionRef]:
    """The partitions ``node_id`` hosts or is to host (a replica now, or in the target of
    a move in progress), sorted; ``default`` partition 0 (the controller group) included."""
    return sorted(
        PartitionRef(name, p, topic.topic_id)
        for name, topic in state.topics.items()
        for p, part in enumerate(topic.partitions)
        if node_id in part.hosts
    )


def diff_for_node(
    old: ControllerState, new: ControllerState, node_id: str
) -> tuple[list[PartitionRef], list[PartitionRef]]:
    """``(create, remove)``: the partition groups ``node_id`` must open and those it must
    drop to go from ``old`` to ``new``, each sorted.

    A node hosts a partition while it is a replica or in the target of a move, so a group
    is created as soon as a move names the node and removed only once the move that took
    it off completed. A topic deleted and re-created between the states shows as the old
    incarnation's partitions removed and the new one's created. ``default`` partition 0
    is left out: it is the controller group, which the node always runs.
    """
    before = set(partitions_of(old, node_id))
    after = set(partitions_of(new, node_id))
    controller = {PartitionRef(DEFAULT_TOPIC, 0, 0)}
    return sorted(after - before - controller), sorted(before - after - controller)


def http_address_of(state: ControllerState, address: str) -> str:
    """The HTTP address of the node reached (over gRPC) at ``address``: "" when no
    registered node has that address, more than one has (a stale registration), or that
    node has not said where its HTTP API is."""
    found = {info.http_address for info in state.nodes.values() if info.address == address}
    return found.pop() if address and len(found) == 1 else ""
