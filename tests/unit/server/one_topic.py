"""A TopicsBackend of one topic, ``default``, with one partition: a real LogBackend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from replog.broker.model import TopicDescription
from replog.errors import UnknownPartitionError, UnknownTopicError
from replog.server.backend import LogBackend


class OneTopic:
    """``default`` of one partition, over ``backend``; topics cannot be administered."""

    def __init__(self, backend: LogBackend) -> None:
        self.backend = backend

    def partition(self, topic: str, partition: int) -> LogBackend:
        if (topic or "default") != "default":
            raise UnknownTopicError(topic)
        if partition != 0:
            raise UnknownPartitionError("default", partition, 1)
        return self.backend

    def partition_for(self, topic: str, key: bytes | None) -> int:
        self.partition(topic, 0)
        return 0

    def next_batch(self, topic: str) -> None:
        pass

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: Mapping[str, str]
    ) -> TopicDescription:
        raise NotImplementedError

    async def delete_topic(self, name: str) -> None:
        raise NotImplementedError

    def list_topics(self) -> list[TopicDescription]:
        raise NotImplementedError

    def describe_topic(self, name: str) -> TopicDescription:
        raise NotImplementedError

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Sequence[str]
    ) -> TopicDescription:
        raise NotImplementedError

    async def create_partitions(self, name: str, count: int) -> TopicDescription:
        raise NotImplementedError
