"""The seam between the APIs and the topics: ``TopicsBackend``.

The gRPC, HTTP (and later Kafka) edges resolve a request's (topic, partition) to one
partition's ``LogBackend`` through a ``TopicsBackend`` and administer topics through it.
A single node implements it over an embedded ``Broker``; a cluster node over its
controller and partition groups. An empty topic name means ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from replog.api.backend import LogBackend
from replog.broker.model import TopicDescription

__all__ = ["DEFAULT_TOPIC", "TopicsBackend"]

#: The topic a request without one addresses; created with one partition on first start.
DEFAULT_TOPIC = "default"


class TopicsBackend(Protocol):
    """What the APIs need to find a partition and to administer topics."""

    def partition(self, topic: str, partition: int) -> LogBackend:
        """The backend of one partition ("" is ``default``).

        Raises UnknownTopicError or UnknownPartitionError (nothing changes).
        """
        ...

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partition a record with this key goes to when the caller names none:
        Kafka's murmur2 partitioner for a key, a sticky choice for records without one.

        Raises UnknownTopicError.
        """
        ...

    def next_batch(self, topic: str) -> None:
        """A batch of keyless records ended: the sticky partition may move on."""
        ...

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        config: Mapping[str, str],
    ) -> TopicDescription:
        """Create a topic; raises InvalidArgumentError (name, counts), ConfigError (a key or
        value, named) or AlreadyExistsError, and then nothing was created."""
        ...

    async def delete_topic(self, name: str) -> None:
        """Delete a topic and its data; raises UnknownTopicError."""
        ...

    def list_topics(self) -> list[TopicDescription]:
        """Every topic, by name."""
        ...

    def describe_topic(self, name: str) -> TopicDescription:
        """One topic with its partitions' state; raises UnknownTopicError."""
        ...

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Sequence[str]
    ) -> TopicDescription:
        """Set keys and reset others to the server default; raises UnknownTopicError or
        ConfigError (nothing changes)."""
        ...

    async def create_partitions(self, name: str, count: int) -> TopicDescription:
        """Grow a topic to ``count`` partitions (never shrinks); raises UnknownTopicError or
        InvalidArgumentError."""
        ...
