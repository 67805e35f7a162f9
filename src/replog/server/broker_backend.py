"""TopicsBackends: a single node's over its embedded Broker, and a one-log adapter.

``BrokerBackend`` gives every partition of the Broker its own ``SingleNodeBackend`` (group
commit per partition; the appends of all partitions share one small thread pool) and
applies retention in the background. ``SingleLogTopics`` serves any one LogBackend as the
topic ``default`` with one partition (a cluster's topics are ``cluster/topics.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from replog.api.backend import LogBackend
from replog.api.traffic import ReplicaStats
from replog.broker.broker import Broker
from replog.broker.key_index import KeyIndex
from replog.broker.key_source import LogKeySource
from replog.broker.model import PartitionDescription, TopicDescription
from replog.broker.names import DEFAULT_TOPIC, check_replication_factor, check_topic_name
from replog.broker.producer_log import PartitionProducers
from replog.errors import (
    UnavailableError,
    UnknownPartitionError,
    UnknownTopicError,
    UnsupportedError,
)
from replog.server.backend import SingleNodeBackend
from replog.storage import Log

__all__ = ["BrokerBackend", "SingleLogTopics", "check_replication_factor"]

KEY_INDEX_DIR = "key-index"
"""Where a partition keeps its key index, inside its log directory."""

log = logging.getLogger("replog.server.topics")


def _topic_name(topic: str) -> str:
    return topic or DEFAULT_TOPIC


class BrokerBackend:
    """A single node's topics: the embedded Broker behind the APIs.

    Call ``start()`` from the event loop, ``close()`` to finish queued appends and close the
    Broker. Retention runs every ``retention_check_interval_ms`` and never deletes a record
    at or after a partition's high watermark.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        server_id: str,
        rpc_addr: str,
        on_appended: Callable[[int, int], None] | None = None,
        on_storage_failure: Callable[[BaseException], None] | None = None,
        max_batch_records: int = 32768,
        retention_check_interval_ms: int = 60_000,
    ) -> None:
        self.broker = broker
        self._server_id = server_id
        self._rpc_addr = rpc_addr
        self._on_appended = on_appended
        self._on_storage_failure = on_storage_failure
        self._max_batch_records = max_batch_records
        self._retention_interval_s = retention_check_interval_ms / 1000
        self._executor = ThreadPoolExecutor(
            max_workers=min(8, 2 * (os.cpu_count() or 1)), thread_name_prefix="replog-append"
        )
        self._partitions: dict[str, list[SingleNodeBackend]] = {}
        self._admin = asyncio.Lock()
        self._retention: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start a backend for every partition and the retention task."""
        for name in self.broker.topics():
            self._partitions[name] = [
                self._make(name, p) for p in range(self.broker.partition_count(name))
            ]
        self._retention = asyncio.get_running_loop().create_task(
            self._retain_forever(), name="replog-retention"
        )

    def _make(self, topic: str, partition: int) -> SingleNodeBackend:
        log_ = self.broker.log(topic, partition)
        index_dir = Path(log_.directory) / KEY_INDEX_DIR
        key_index = None
        if self.broker.topic_config(topic).key_index:
            key_index = KeyIndex(index_dir, LogKeySource(log_))
        elif index_dir.exists():  # turned off: a later one must not trust a stale checkpoint
            shutil.rmtree(index_dir, ignore_errors=True)
        backend = SingleNodeBackend(
            log_,
            server_id=self._server_id,
            rpc_addr=self._rpc_addr,
            on_appended=self._on_appended,
            on_storage_failure=self._on_storage_failure,
            max_batch_records=self._max_batch_records,
            executor=self._executor,
            key_index=key_index,
        )
        backend.start()
        return backend

    def set_address(self, server_id: str, rpc_addr: str) -> None:
        """The server's id and gRPC address, once it is listening."""
        self._server_id, self._rpc_addr = server_id, rpc_addr
        self.broker.node_id = server_id
        for backends in self._partitions.values():
            for backend in backends:
                backend.server_id, backend.rpc_addr = server_id, rpc_addr

    def replica_stats(self) -> list[ReplicaStats]:
        """Every partition's traffic (for the metrics read at scrape time)."""
        return [
            ReplicaStats(topic, p, backend.traffic)
            for topic, backends in sorted(self._partitions.items())
            for p, backend in enumerate(backends)
        ]

    @property
    def default(self) -> SingleNodeBackend:
        """The backend of ``default``'s partition 0 (the log of the routes without a topic)."""
        return self._partitions[DEFAULT_TOPIC][0]

    def begin_shutdown(self) -> None:
        """Refuse new appends on every partition and wake every waiter."""
        self._closing = True
        for backends in self._partitions.values():
            for backend in backends:
                backend.begin_shutdown()

    async def close(self) -> None:
        """Finish queued appends, close every partition and the Broker."""
        self.begin_shutdown()
        if self._retention is not None:
            self._retention.cancel()
            await asyncio.gather(self._retention, return_exceptions=True)
        for backends in self._partitions.values():
            for backend in backends:
                await backend.close()
        await asyncio.to_thread(self.broker.close)
        self._executor.shutdown(wait=True)

    # -- routing ------------------------------------------------------------------------------

    def partition(self, topic: str, partition: int) -> LogBackend:
        """The backend of one partition ("" is ``default``)."""
        name = _topic_name(topic)
        backends = self._partitions.get(name)
        if backends is None:
            raise UnknownTopicError(name)
        if type(partition) is not int or not 0 <= partition < len(backends):
            raise UnknownPartitionError(name, partition, len(backends))
        return backends[partition]

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partition a record with ``key`` goes to (murmur2; sticky without a key)."""
        name = _topic_name(topic)
        if name not in self._partitions:
            raise UnknownTopicError(name)
        return self.broker.partition_for(name, key)

    def next_batch(self, topic: str) -> None:
        """A keyless batch ended: the sticky partition may move on."""
        self.broker.next_batch(_topic_name(topic))

    # -- administration -----------------------------------------------------------------------

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: Mapping[str, str]
    ) -> TopicDescription:
        """Create a topic (replication factor 1, or 0 for the default, on a single node)."""
        check_topic_name(name)
        check_replication_factor(replication_factor, 1)
        async with self._admin:
            description = await asyncio.to_thread(
                self.broker.create_topic, name, partitions or 1, dict(config)
            )
            self._partitions[name] = [self._make(name, p) for p in range(partitions or 1)]
        log.info("topic created", extra={"topic": name, "partitions": partitions or 1})
        return description

    async def delete_topic(self, name: str) -> None:
        """Delete a topic: its appends in flight finish, then its data is removed."""
        async with self._admin:
            backends = self._partitions.get(name)
            if backends is None:
                raise UnknownTopicError(name)
            if name == DEFAULT_TOPIC:
                self.broker.delete_topic(name)  # refuses, with the reason
            del self._partitions[name]
            for backend in backends:  # a request routed before the delete hears it
                await backend.close(lambda: UnknownTopicError(name))
            await asyncio.to_thread(self.broker.delete_topic, name)
        log.info("topic deleted", extra={"topic": name})

    def list_topics(self) -> list[TopicDescription]:
        """Every topic, by name."""
        return self._with_watermarks(self.broker.list_topics())

    def describe_topic(self, name: str) -> TopicDescription:
        """One topic with each partition's offsets."""
        return self._with_watermarks([self.broker.describe_topic(name)])[0]

    def _with_watermarks(self, topics: list[TopicDescription]) -> list[TopicDescription]:
        """Descriptions whose next offsets are what readers see (acknowledged records)."""
        out = []
        for topic in topics:
            backends = self._partitions.get(topic.name, [])
            parts = tuple(
                _with_next(p, backends[p.partition].high_watermark)
                if p.partition < len(backends)
                else p
                for p in topic.partitions
            )
            out.append(TopicDescription(topic.name, topic.config, 1, parts))
        return out

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Sequence[str]
    ) -> TopicDescription:
        """Change a topic's configuration; partitions whose Log settings change reopen."""
        async with self._admin:
            backends = self._partitions.get(name)
            if backends is None:
                raise UnknownTopicError(name)
            before = self.broker.topic_config(name)
            # Validated first: a refused change must not disturb the partitions.
            after = self.broker.altered_config(name, set_, delete)
            old, new = self.broker.log_config(before), self.broker.log_config(after)
            if new == old and before.key_index == after.key_index:
                return await asyncio.to_thread(self.broker.alter_topic_config, name, set_, delete)
            for backend in backends:  # the Logs reopen: drain their appends first
                await backend.close(lambda: _reconfiguring(name))
            try:
                description = await asyncio.to_thread(
                    self.broker.alter_topic_config, name, set_, delete
                )
            finally:
                self._partitions[name] = [
                    self._make(name, p) for p in range(self.broker.partition_count(name))
                ]
            return description

    async def create_partitions(self, name: str, count: int) -> TopicDescription:
        """Grow a topic to ``count`` partitions."""
        async with self._admin:
            backends = self._partitions.get(name)
            if backends is None:
                raise UnknownTopicError(name)
            description = await asyncio.to_thread(self.broker.create_partitions, name, count)
            have = len(backends)
            self._partitions[name] = backends + [
                self._make(name, p) for p in range(have, self.broker.partition_count(name))
            ]
            return description

    # -- retention ----------------------------------------------------------------------------

    def _checkpoint_all(self, snapshots: list[tuple[PartitionProducers, bytes]]) -> None:
        """Write producer-state checkpoints and key-index checkpoints (a worker thread)."""
        for producers, data in snapshots:
            try:
                producers.write(data)
            except OSError as exc:
                log.warning("producer-state checkpoint of %s failed: %s", producers.path, exc)
        for backends in list(self._partitions.values()):
            for backend in backends:
                backend.checkpoint_key_index()

    async def _retain_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._retention_interval_s)
            try:
                await self.apply_retention()
            except Exception:
                log.exception("retention failed; trying again later")

    async def apply_retention(self) -> int:
        """Apply every topic's retention now; return how many segments were deleted."""
        async with self._admin:
            # What producer states and key indexes remember of the records about to go is
            # on disk first; retention keeps what their checkpoints do not cover yet.
            snapshots = [
                (b.producers, b.producers.snapshot())
                for backends in self._partitions.values()
                for b in backends
                if len(b.producers.states)
            ]
            await asyncio.to_thread(self._checkpoint_all, snapshots)
            events = await asyncio.to_thread(self.broker.apply_retention, None, self._keep_from)
        for event in events:
            log.info(
                "retention deleted %d segments of %s/%d (%d bytes); lowest offset now %d",
                event.segments_deleted,
                event.topic,
                event.partition,
                event.bytes_deleted,
                event.lowest_offset,
                extra={
                    "event": "retention",
                    "topic": event.topic,
                    "partition": event.partition,
                    "segments": event.segments_deleted,
                    "bytes": event.bytes_deleted,
                    "lowest_offset": event.lowest_offset,
                },
            )
        return sum(e.segments_deleted for e in events)

    def _keep_from(self, topic: str, partition: int, log_: Log) -> int:
        backends = self._partitions.get(topic)
        if backends is None or partition >= len(backends):
            return log_.lowest_offset
        backend = backends[partition]
        if len(backend.producers.states):  # its producers' checkpoint covers up to here
            return min(backend.high_watermark, backend.producers.checkpointed)
        return backend.high_watermark


def _reconfiguring(topic: str) -> UnavailableError:
    return UnavailableError(
        f"topic {topic!r} is being reconfigured; retry", certainly_not_applied=True
    )


def _with_next(p: PartitionDescription, high_watermark: int) -> PartitionDescription:
    return PartitionDescription(
        p.partition,
        p.leader,
        p.replicas,
        p.in_sync,
        p.lowest_offset,
        min(p.next_offset, high_watermark),
        p.size_bytes,
    )


class SingleLogTopics:
    """Any one LogBackend served as the topic ``default`` with one partition (to put a
    custom backend behind the APIs): creating or changing topics is refused with
    UnsupportedError."""

    def __init__(
        self,
        backend: LogBackend,
        config: Mapping[str, str],
        size_bytes: Callable[[], int] = lambda: 0,
    ) -> None:
        """``size_bytes`` tells the log's size on this node (describe shows it)."""
        self.backend = backend
        self._config = dict(config)
        self._size_bytes = size_bytes

    def partition(self, topic: str, partition: int) -> LogBackend:
        """The log, for ``default``/0."""
        name = _topic_name(topic)
        if name != DEFAULT_TOPIC:
            raise UnknownTopicError(name)
        if partition != 0:
            raise UnknownPartitionError(name, partition, 1)
        return self.backend

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """Always 0 (``default`` has one partition)."""
        self.partition(topic, 0)
        return 0

    def next_batch(self, topic: str) -> None:
        """Nothing to move: one partition."""

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: Mapping[str, str]
    ) -> TopicDescription:
        """Refused: this adapter serves only ``default``."""
        check_topic_name(name)
        raise _unsupported()

    async def delete_topic(self, name: str) -> None:
        """Refused."""
        self.partition(name, 0)
        raise _unsupported()

    def list_topics(self) -> list[TopicDescription]:
        """The one topic."""
        return [self.describe_topic(DEFAULT_TOPIC)]

    def describe_topic(self, name: str) -> TopicDescription:
        """``default`` with its one partition, replicated over every server."""
        self.partition(name, 0)
        servers = self.backend.servers()
        leader = next((s.id for s in servers if s.is_leader), "")
        replicas = tuple(s.id for s in servers)
        voters = tuple(s.id for s in servers if s.is_voter)
        part = PartitionDescription(
            0,
            leader,
            replicas,
            voters,
            self.backend.lowest_offset,
            self.backend.high_watermark,
            self._size_bytes(),
        )
        return TopicDescription(DEFAULT_TOPIC, self._config, len(replicas), (part,))

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Sequence[str]
    ) -> TopicDescription:
        """Refused."""
        self.partition(name, 0)
        raise _unsupported()

    async def create_partitions(self, name: str, count: int) -> TopicDescription:
        """Refused."""
        self.partition(name, 0)
        raise _unsupported()


def _unsupported() -> UnsupportedError:
    return UnsupportedError(
        "this server serves only the topic 'default'; it cannot create or change topics"
    )
