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
from replog.errors import InvalidArgumentError
from replog.server.topics import DEFAULT_TOPIC, TopicsBackend
from replog.v1.record_pb2 import Record

__all__ = ["Target", "end_sticky", "keys_of", "produce_target", "read_target", "topic_name"]


class Target(NamedTuple):
    """Where a produce goes: the partition's backend and number, and whether the choice
    was the sticky one for keyless records (the caller then ends the sticky batch)."""

    backend: LogBackend
    partition: int
    sticky: bool


def topic_name(topic: str) -> str:
    """The topic a request addresses: ``default`` for an empty name."""
    return topic or DEFAULT_TOPIC


def read_target(topics: TopicsBackend, topic: str, partition: int) -> LogBackend:
    """The backend of the partition a read names; UnknownTopicError/UnknownPartitionError."""
    return topics.partition(topic_name(topic), partition)


def keys_of(values: Iterable[AppendValue]) -> list[bytes]:
    """The non-empty keys among produce values (a bare value has none)."""
    return [v.key for v in values if isinstance(v, Record) and v.key]


def produce_target(
    topics: TopicsBackend, topic: str, partition: int | None, keys: Iterable[bytes]
) -> Target:
    """The partition a produce of records with these keys goes to.

    ``partition`` given: that one. Else the partition the keys map to (all of them must map
    to one: InvalidArgumentError naming two partitions they map to), or the sticky
    partition when there is no key. Raises UnknownTopicError/UnknownPartitionError.
    """
    name = topic_name(topic)
    if partition is not None:
        return Target(topics.partition(name, partition), partition, False)
    chosen: int | None = None
    for key in set(keys):
        mapped = topics.partition_for(name, key)
        if chosen is None:
            chosen = mapped
        elif mapped != chosen:
            low, high = sorted((chosen, mapped))
            raise InvalidArgumentError(
                f"the keys of this batch map to partitions {low} and {high} of topic "
                f"{name!r}; a batch is appended to one partition: send one batch per "
                "partition, or name the partition"
            )
    if chosen is not None:
        return Target(topics.partition(name, chosen), chosen, False)
    sticky = topics.partition_for(name, None)
    return Target(topics.partition(name, sticky), sticky, True)


def end_sticky(topics: TopicsBackend, topic: str, target: Target) -> None:
    """After a request sent to ``target``: a keyless batch ended, the sticky partition may
    move on."""
    if target.sticky:
        topics.next_batch(topic_name(topic))
