"""Topic administration from the clients: the ``replog.v1.Admin`` calls and their results.

``Client`` and ``AsyncClient`` get these methods from ``AdminMethods`` and
``AsyncAdminMethods``. Results are the client's own ``TopicDescription`` and
``PartitionDescription`` (same fields as ``replog.broker.model``'s, which the client does not
import: it depends only on the wire contract). Administration goes to the leader; creating,
deleting and altering are retried only when certainly not applied, listing and describing
like reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from replog.client.core import DEFAULT_TIMEOUT
from replog.errors import InvalidArgumentError
from replog.v1 import admin_pb2

__all__ = [
    "ADMIN_METHODS",
    "AdminMethods",
    "AsyncAdminMethods",
    "PartitionDescription",
    "TopicDescription",
    "topic_from",
]

#: Creating, deleting or changing a topic opens or closes every partition's files: a
#: minute by default (Kafka's admin client waits as long), not the 10 s of a produce.
ADMIN_TIMEOUT = 60.0

_PREFIX = "/replog.v1.Admin/"
CREATE, DELETE, LIST, DESCRIBE, ALTER, GROW = (
    _PREFIX + name
    for name in (
        "CreateTopic",
        "DeleteTopic",
        "ListTopics",
        "DescribeTopic",
        "AlterTopicConfig",
        "CreatePartitions",
    )
)


def _method(request: Any, response: Any) -> tuple[str, Callable[[Any], bytes], Any]:
    return ("uu", request.SerializeToString, response.FromString)


#: path -> (kind, request serializer, response deserializer), as ``client._METHODS``.
ADMIN_METHODS: dict[str, tuple[str, Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    CREATE: _method(admin_pb2.CreateTopicRequest, admin_pb2.CreateTopicResponse),
    DELETE: _method(admin_pb2.DeleteTopicRequest, admin_pb2.DeleteTopicResponse),
    LIST: _method(admin_pb2.ListTopicsRequest, admin_pb2.ListTopicsResponse),
    DESCRIBE: _method(admin_pb2.DescribeTopicRequest, admin_pb2.DescribeTopicResponse),
    ALTER: _method(admin_pb2.AlterTopicConfigRequest, admin_pb2.AlterTopicConfigResponse),
    GROW: _method(admin_pb2.CreatePartitionsRequest, admin_pb2.CreatePartitionsResponse),
}


@dataclass(frozen=True, slots=True)
class PartitionDescription:
    """One partition: its leader's node id ("" while it has none), its replicas (preferred
    leader first), the in-sync ones, its offsets and its size on disk."""

    partition: int
    leader: str
    replicas: tuple[str, ...]
    in_sync: tuple[str, ...]
    lowest_offset: int
    next_offset: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A topic: its name, effective configuration (every key), replication factor and
    partitions in partition order."""

    name: str
    config: Mapping[str, str]
    replication_factor: int
    partitions: tuple[PartitionDescription, ...] = field(default=())

    @property
    def partition_count(self) -> int:
        """How many partitions the topic has."""
        return len(self.partitions)


def topic_from(info: admin_pb2.TopicInfo) -> TopicDescription:
    """The TopicDescription a TopicInfo message holds."""
    partitions = tuple(
        PartitionDescription(
            int(p.partition),
            p.leader,
            tuple(p.replicas),
            tuple(p.in_sync),
            int(p.lowest_offset),
            int(p.next_offset),
            int(p.size_bytes),
        )
        for p in info.partitions
    )
    config = dict(sorted(info.config.items()))
    return TopicDescription(info.name, config, int(info.replication_factor), partitions)


def _u32(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise InvalidArgumentError(f"{name} must be an unsigned 32-bit integer, got {value!r}")
    return value


def _name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a topic name must be a str, got {type(name).__name__}")
    return name


def _config(config: Mapping[str, str] | None, what: str) -> dict[str, str]:
    items = dict(config or {})
    for key, value in items.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgumentError(
                f"{what} keys and values must be str, got {key!r}: {value!r}"
            )
    return items


def create_request(
    name: str, partitions: int, replication_factor: int, config: Mapping[str, str] | None
) -> admin_pb2.CreateTopicRequest:
    """A checked CreateTopicRequest (the wire's 0 means 1, so 0 is refused here: a caller
    who asks for no partitions made a mistake)."""
    if _u32("partitions", partitions) == 0:
        raise InvalidArgumentError("a topic has 1..4096 partitions, got 0")
    return admin_pb2.CreateTopicRequest(
        name=_name(name),
        partitions=partitions,
        replication_factor=_u32("replication_factor", replication_factor),
        config=_config(config, "config"),
    )


def alter_request(
    name: str, set: Mapping[str, str] | None, delete: Sequence[str]
) -> admin_pb2.AlterTopicConfigRequest:
    """A checked AlterTopicConfigRequest."""
    if isinstance(delete, str) or not all(isinstance(k, str) for k in delete):
        raise InvalidArgumentError("delete must be a sequence of config keys (str)")
    return admin_pb2.AlterTopicConfigRequest(
        name=_name(name), set=_config(set, "set"), delete=list(delete)
    )


class AdminMethods:
    """The topic administration calls of ``Client`` (blocking)."""

    def _call(
        self, method: str, request: Any, *, idempotent: bool, timeout: Any, route: str = "consume"
    ) -> Any:
        raise NotImplementedError  # the client's own

    def _admin(self, method: str, request: Any, idempotent: bool, timeout: Any) -> Any:
        return self._call(method, request, idempotent=idempotent, timeout=timeout, route="produce")

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 0,
        config: Mapping[str, str] | None = None,
        *,
        timeout: float | None = ADMIN_TIMEOUT,
    ) -> TopicDescription:
        """Create a topic of ``partitions`` partitions (``replication_factor`` 0: the
        server's default) with per-topic ``config``; InvalidArgumentError (a name, count or
        config key), AlreadyExistsError, and then nothing was created."""
        request = create_request(name, partitions, replication_factor, config)
        return topic_from(self._admin(CREATE, request, False, timeout).topic)

    def delete_topic(self, name: str, *, timeout: float | None = ADMIN_TIMEOUT) -> None:
        """Delete a topic and its data; UnknownTopicError if there is none."""
        self._admin(DELETE, admin_pb2.DeleteTopicRequest(name=_name(name)), False, timeout)

    def list_topics(self, *, timeout: float | None = DEFAULT_TIMEOUT) -> list[TopicDescription]:
        """Every topic, by name."""
        response = self._admin(LIST, admin_pb2.ListTopicsRequest(), True, timeout)
        return [topic_from(info) for info in response.topics]

    def describe_topic(
        self, name: str, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> TopicDescription:
        """One topic with its partitions' state; UnknownTopicError if there is none."""
        request = admin_pb2.DescribeTopicRequest(name=_name(name))
        return self._complete(topic_from(self._admin(DESCRIBE, request, True, timeout).topic))

    def _complete(self, description: TopicDescription) -> TopicDescription:
        return description  # the client's own: fills in what other servers know

    def alter_topic_config(
        self,
        name: str,
        set: Mapping[str, str] | None = None,
        delete: Sequence[str] = (),
        *,
        timeout: float | None = ADMIN_TIMEOUT,
    ) -> TopicDescription:
        """Set config keys and reset ``delete``'s to the server default; ConfigError naming
        a bad key or value, UnknownTopicError (nothing changes)."""
        request = alter_request(name, set, delete)
        return topic_from(self._admin(ALTER, request, False, timeout).topic)

    def create_partitions(
        self, name: str, count: int, *, timeout: float | None = ADMIN_TIMEOUT
    ) -> TopicDescription:
        """Grow a topic to ``count`` partitions in all (it never shrinks)."""
        request = admin_pb2.CreatePartitionsRequest(name=_name(name), count=_u32("count", count))
        return topic_from(self._admin(GROW, request, False, timeout).topic)


class AsyncAdminMethods:
    """The topic administration calls of ``AsyncClient`` (awaited; see ``AdminMethods``)."""

    async def _call(
        self, method: str, request: Any, *, idempotent: bool, timeout: Any, route: str = "consume"
    ) -> Any:
        raise NotImplementedError  # the client's own

    async def _admin(self, method: str, request: Any, idempotent: bool, timeout: Any) -> Any:
        return await self._call(
            method, request, idempotent=idempotent, timeout=timeout, route="produce"
        )

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 0,
        config: Mapping[str, str] | None = None,
        *,
        timeout: float | None = ADMIN_TIMEOUT,
    ) -> TopicDescription:
        """Create a topic (see ``AdminMethods.create_topic``)."""
        request = create_request(name, partitions, replication_factor, config)
        return topic_from((await self._admin(CREATE, request, False, timeout)).topic)

    async def delete_topic(self, name: str, *, timeout: float | None = ADMIN_TIMEOUT) -> None:
        """Delete a topic and its data; UnknownTopicError if there is none."""
        await self._admin(DELETE, admin_pb2.DeleteTopicRequest(name=_name(name)), False, timeout)

    async def list_topics(
        self, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> list[TopicDescription]:
        """Every topic, by name."""
        response = await self._admin(LIST, admin_pb2.ListTopicsRequest(), True, timeout)
        return [topic_from(info) for info in response.topics]

    async def describe_topic(
        self, name: str, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> TopicDescription:
        """One topic with its partitions' state; UnknownTopicError if there is none."""
        request = admin_pb2.DescribeTopicRequest(name=_name(name))
        described = topic_from((await self._admin(DESCRIBE, request, True, timeout)).topic)
        return await self._complete(described)

    async def _complete(self, description: TopicDescription) -> TopicDescription:
        return description  # the client's own: fills in what other servers know

    async def alter_topic_config(
        self,
        name: str,
        set: Mapping[str, str] | None = None,
        delete: Sequence[str] = (),
        *,
        timeout: float | None = ADMIN_TIMEOUT,
    ) -> TopicDescription:
        """Set and reset config keys (see ``AdminMethods.alter_topic_config``)."""
        request = alter_request(name, set, delete)
        return topic_from((await self._admin(ALTER, request, False, timeout)).topic)

    async def create_partitions(
        self, name: str, count: int, *, timeout: float | None = ADMIN_TIMEOUT
    ) -> TopicDescription:
        """Grow a topic to ``count`` partitions in all (it never shrinks)."""
        request = admin_pb2.CreatePartitionsRequest(name=_name(name), count=_u32("count", count))
        return topic_from((await self._admin(GROW, request, False, timeout)).topic)
