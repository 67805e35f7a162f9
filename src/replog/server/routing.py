"""Which partition a request addresses: the (topic, partition) of a read, and the partition
a produce goes to when its caller names none.

Shared by the API edges. A produce without a partition goes where its records' keys map
(Kafka's murmur2 partitioner, through ``TopicsBackend.partition_for``); a batch is appended
atomically to one partition, so its keyed records must all map to the same one (keyless
records join them). A request of keyless records only takes the topic's sticky partition,
which moves on after each such request (``next_batch``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from replog.api.backend import AppendValue, LogBackend
from replog.broker.group_log import OFFSETS_TOPIC
from replog.broker.partitioner import batch_partition
from replog.errors import InvalidArgumentError
from replog.server.topics import DEFAULT_TOPIC, TopicsBackend

__all__ = [
    "Target",
    "check_writable_topic",
    "end_sticky",
    "produce_target",
    "read_target",
    "topic_name",
]


class Target(NamedTuple):
    """Where a produce goes: the partition's backend and number, and whether the choice
    was the sticky one for keyless records (the caller then ends the sticky batch)."""

    backend: LogBackend
    partition: int
    sticky: bool


def topic_name(topic: str) -> str:
    """The topic a request addresses: ``default`` for an empty name."""
    return topic or DEFAULT_TOPIC


def check_writable_topic(name: str) -> str:
    """``name``, or InvalidArgumentError for the internal topic only the group coordinator
    writes and shapes: a stray record could be taken for a commit, more partitions would
    move groups away from their offsets, a shorter retention would delete live ones."""
    if name == OFFSETS_TOPIC:
        raise InvalidArgumentError(
            f"{OFFSETS_TOPIC} is internal to consumer groups: use the group calls"
        )
    return name


def read_target(topics: TopicsBackend, topic: str, partition: int) -> LogBackend:
    """The backend of the partition a read names; UnknownTopicError/UnknownPartitionError."""
    return topics.partition(topic_name(topic), partition)


def produce_target(
    topics: TopicsBackend, topic: str, partition: int | None, values: Iterable[AppendValue]
) -> Target:
    """The partition a produce of ``values`` goes to.

    ``partition`` given: that one. Else the partition their keys map to (all of them must
    map to one: InvalidArgumentError naming two records that do not), or the sticky
    partition when no record has a key. Raises UnknownTopicError/UnknownPartitionError.
    """
    name = check_writable_topic(topic_name(topic))
    if partition is not None:
        return Target(topics.partition(name, partition), partition, False)
    chosen = batch_partition(values, lambda key: topics.partition_for(name, key))
    if chosen is not None:
        return Target(topics.partition(name, chosen), chosen, False)
    sticky = topics.partition_for(name, None)
    return Target(topics.partition(name, sticky), sticky, True)


def end_sticky(topics: TopicsBackend, topic: str, target: Target) -> None:
    """After a request sent to ``target``: a keyless batch ended, the sticky partition may
    move on."""
    if target.sticky:
        topics.next_batch(topic_name(topic))
