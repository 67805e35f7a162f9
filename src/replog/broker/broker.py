"""The embedded Broker: named topics of partitions in one directory, each partition a Log."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from replog.broker.config import TopicConfig, check_keys, normalize_key
from replog.broker.layout import TopicMeta, TopicsDirectory
from replog.broker.model import PartitionDescription, TopicDescription
from replog.broker.names import DEFAULT_TOPIC, check_partition_count, check_topic_name
from replog.broker.partitioner import StickyPartitioner, batch_partition, partition_for_key
from replog.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    LogClosedError,
    UnknownPartitionError,
    UnknownTopicError,
)
from replog.storage import Log, LogConfig
from replog.storage.codec import RecordInput
from replog.storage.directory import lock_directory
from replog.storage.files import OsFileSystem, make_private_dir
from replog.tlog.log_tree import TLOG_DIR, LogTree, attach_tree, tree_of
from replog.v1.record_pb2 import Record

__all__ = ["Broker", "RetentionEvent"]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class RetentionEvent:
    """Retention deleted segments of one partition."""

    topic: str
    partition: int
    segments_deleted: int
    bytes_deleted: int
    lowest_offset: int


class _Topic:
    """A topic's state in memory: its configuration and its open partition Logs."""

    def __init__(self, name: str, overrides: dict[str, str], config: TopicConfig) -> None:
        self.name = name
        self.overrides = overrides
        self.config = config
        self.logs: list[Log] = []


class Broker:
    """Topics of partitions in one directory, like SQLite for a streaming log.

    ``Broker(path)`` opens (or creates) the directory, takes its lock (a second opener gets
    LogLockedError) and opens every partition; with ``create_default`` it makes sure the
    topic ``default`` (1 partition) exists. A directory written by a single ``Log`` (or by
    a single-node server before topics) becomes the ``default`` topic's partition 0.

    Keys pick partitions as Kafka's default partitioner does (murmur2); records without a
    key stick to one partition per batch. Each partition has its own dense offsets from 0.
    Methods are thread-safe; appends to one partition are serialised by its Log.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        defaults: TopicConfig | None = None,
        sync_interval_ms: int = 100,
        create_default: bool = True,
        clock_ms: Callable[[], int] = _wall_clock_ms,
        partitioner: StickyPartitioner | None = None,
        node_id: str = "local",
        verifiable: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.verifiable = verifiable
        """Whether each partition keeps its Merkle tree's tiles (``replog.tlog``)."""
        self.node_id = node_id
        self.defaults = defaults or TopicConfig()
        self._sync_interval_ms = sync_interval_ms
        self._clock_ms = clock_ms
        self._sticky = partitioner or StickyPartitioner()
        self._lock = threading.RLock()
        self._topics: dict[str, _Topic] = {}
        self._closed = False
        make_private_dir(self.path)
        self._dir_lock = lock_directory(OsFileSystem(), self.path)
        try:
            self._dir = TopicsDirectory(self.path)
            self._dir.prepare(DEFAULT_TOPIC)
            for meta in self._dir.load():
                self._open_topic(meta)
            if create_default and DEFAULT_TOPIC not in self._topics:
                self.create_topic(DEFAULT_TOPIC, 1)
        except BaseException:
            self._close_logs()
            self._dir_lock.release()
            raise

    # -- topics -------------------------------------------------------------------------------

    def _open_topic(self, meta: TopicMeta) -> _Topic:
        topic = _Topic(meta.name, meta.overrides, self.defaults.with_values(meta.overrides))
        try:
            for p in range(meta.partitions):
                topic.logs.append(self._open_log(meta.name, p, topic.config))
        except BaseException:
            for log_ in topic.logs:
                log_.close()
            raise
        self._topics[meta.name] = topic
        return topic

    def _open_log(self, name: str, partition: int, config: TopicConfig) -> Log:
        directory = self._dir.partition_dir(name, partition)
        log_ = Log(directory, self.log_config(config), clock_ms=self._clock_ms)
        if self.verifiable:
            attach_tree(log_, Path(directory) / TLOG_DIR)
        return log_

    def tree(self, topic: str, partition: int) -> LogTree | None:
        """The verifiable log's tree of a partition (None when trees are not kept);
        UnknownTopicError / UnknownPartitionError if there is no such partition."""
        return tree_of(self.log(topic, partition))

    def log_config(self, config: TopicConfig) -> LogConfig:
        """The LogConfig each partition of a topic with ``config`` is opened with."""
        return LogConfig(
            max_store_bytes=config.segment_bytes,
            max_record_bytes=config.max_record_bytes,
            sync=config.sync,
            sync_interval_ms=self._sync_interval_ms,
            segment_ms=None if config.segment_ms == -1 else config.segment_ms,
        )

    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, object] | None = None
    ) -> TopicDescription:
        """Create a topic of ``partitions`` partitions with ``config`` set over the defaults.

        Raises InvalidArgumentError (name, count), ConfigError (naming the key) or
        AlreadyExistsError; then nothing was created.
        """
        check_topic_name(name)
        check_partition_count(partitions)
        self.defaults.with_values(config or {})  # refuses a bad key or value before any file
        overrides = {k: str(v) for k, v in _normalized(config or {}).items()}
        with self._lock:
            self._check_open()
            if name in self._topics:
                raise AlreadyExistsError(name)
            meta = TopicMeta(name, partitions, overrides)
            self._dir.create(meta)
            return self._describe(self._open_topic(meta))

    def delete_topic(self, name: str) -> None:
        """Delete a topic and all its data; raises UnknownTopicError, or InvalidArgumentError
        for ``default`` (the topic of every request that names none)."""
        with self._lock:
            topic = self._topic(name)
            if name == DEFAULT_TOPIC:
                raise InvalidArgumentError(
                    "the topic 'default' takes every request that names no topic; "
                    "it cannot be deleted"
                )
            del self._topics[name]
            for log_ in topic.logs:
                log_.close()
            self._dir.delete(name)

    def topics(self) -> list[str]:
        """The names of every topic, sorted."""
        with self._lock:
            return sorted(self._topics)

    def list_topics(self) -> list[TopicDescription]:
        """Every topic, by name."""
        with self._lock:
            return [self._describe(self._topics[name]) for name in sorted(self._topics)]

    def describe_topic(self, name: str) -> TopicDescription:
        """A topic with its configuration and each partition's offsets and size."""
        with self._lock:
            return self._describe(self._topic(name))

    def topic_config(self, name: str) -> TopicConfig:
        """A topic's effective configuration."""
        return self._topic(name).config

    def altered_config(
        self, name: str, set_: Mapping[str, object] | None = None, delete: Sequence[str] = ()
    ) -> TopicConfig:
        """The configuration ``alter_topic_config`` would give the topic (nothing changes);
        raises UnknownTopicError or ConfigError."""
        return self.defaults.with_values(self._altered(self._topic(name), set_, delete))

    def _altered(
        self, topic: _Topic, set_: Mapping[str, object] | None, delete: Sequence[str]
    ) -> dict[str, str]:
        overrides = dict(topic.overrides)
        for key in check_keys(list(delete)):
            overrides.pop(key, None)
        overrides.update({k: str(v) for k, v in _normalized(set_ or {}).items()})
        self.defaults.with_values(overrides)  # validates every value
        return overrides

    def alter_topic_config(
        self,
        name: str,
        set_: Mapping[str, object] | None = None,
        delete: Sequence[str] = (),
    ) -> TopicDescription:
        """Set keys and reset ``delete``'s keys to the defaults. A change of the segment,
        record-size or sync settings reopens the partitions' Logs. Raises UnknownTopicError
        or ConfigError (nothing changes)."""
        with self._lock:
            topic = self._topic(name)
            overrides = self._altered(topic, set_, delete)
            config = self.defaults.with_values(overrides)
            self._dir.update(TopicMeta(name, len(topic.logs), overrides))
            reopen = self.log_config(config) != self.log_config(topic.config)
            topic.overrides, topic.config = overrides, config
            if reopen:
                for p, old in enumerate(topic.logs):
                    old.close()
                    topic.logs[p] = self._open_log(name, p, config)
            return self._describe(topic)

    def create_partitions(self, name: str, count: int) -> TopicDescription:
        """Grow a topic to ``count`` partitions; raises UnknownTopicError, or
        InvalidArgumentError when ``count`` is not more than it has."""
        with self._lock:
            topic = self._topic(name)
            have = len(topic.logs)
            if isinstance(count, int) and not isinstance(count, bool) and count <= have:
                raise InvalidArgumentError(
                    f"topic {name!r} has {have} partitions; the count can only grow, got {count}"
                )
            check_partition_count(count)
            self._dir.update(TopicMeta(name, count, topic.overrides))
            for p in range(have, count):
                topic.logs.append(self._open_log(name, p, topic.config))
            return self._describe(topic)

    def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has; raises UnknownTopicError."""
        return len(self._topic(topic).logs)

    def log(self, topic: str, partition: int) -> Log:
        """The Log of one partition; raises UnknownTopicError or UnknownPartitionError."""
        logs = self._topic(topic).logs
        if type(partition) is not int or not 0 <= partition < len(logs):
            raise UnknownPartitionError(topic, partition, len(logs))
        return logs[partition]

    # -- records ------------------------------------------------------------------------------

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partition a record with ``key`` goes to: murmur2 of the key modulo the
        partition count, as Kafka; a sticky partition for a record without a key."""
        count = self.partition_count(topic)
        if not key:  # a Record cannot tell an empty key from none: both are keyless
            return self._sticky.partition(topic, count)
        return partition_for_key(key, count)

    def next_batch(self, topic: str) -> None:
        """A batch of keyless records ended: the next one may go to another partition."""
        self._sticky.next_batch(topic)

    def append(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Iterable[tuple[str, bytes]] | dict[str, bytes] | None = None,
        partition: int | None = None,
    ) -> tuple[int, int]:
        """Append one record; return ``(partition, offset)`` once durable. The partition is
        ``partition`` if given, else chosen by the key."""
        p = self.partition_for(topic, key) if partition is None else partition
        offset = self.log(topic, p).append(value, key=key, headers=headers)
        if partition is None and not key:
            self.next_batch(topic)
        return p, offset

    def append_batch(
        self, topic: str, values: Sequence[RecordInput], *, partition: int | None = None
    ) -> tuple[int, int]:
        """Append records to one partition at contiguous offsets; return ``(partition,
        first offset)``. Without ``partition``, the records' keys pick it and must all pick
        the same one (InvalidArgumentError otherwise); keyless records take a sticky one."""
        p = partition
        if p is None:
            p = self._batch_partition(topic, values)
        base = self.log(topic, p).append_batch(values)
        if partition is None:
            self.next_batch(topic)
        return p, base

    def _batch_partition(self, topic: str, values: Sequence[RecordInput]) -> int:
        count = self.partition_count(topic)
        chosen = batch_partition(values, lambda key: partition_for_key(key, count))
        return self.partition_for(topic, None) if chosen is None else chosen

    def read(self, topic: str, partition: int, offset: int) -> Record:
        """The record at ``offset`` of a partition; OffsetOutOfRangeError outside its range."""
        return self.log(topic, partition).read(offset)

    def read_batch(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[Record]:
        """Up to ``max_records`` records of a partition from ``offset``."""
        return self.log(topic, partition).read_batch(offset, max_records=max_records)

    # -- retention ----------------------------------------------------------------------------

    def apply_retention(
        self,
        now_ms: int | None = None,
        keep_from: Callable[[str, int, Log], int] | None = None,
    ) -> list[RetentionEvent]:
        """Roll partitions whose active segment is older than ``segment_ms`` and delete
        sealed segments beyond ``retention_ms`` / ``retention_bytes``; return what was
        deleted. ``keep_from(topic, partition, log)`` is the first offset that must stay
        (default: the log's end, i.e. everything may go that retention allows)."""
        now = self._clock_ms() if now_ms is None else now_ms
        with self._lock:
            work = [(t, p, log_) for t in self._topics.values() for p, log_ in enumerate(t.logs)]
        events = []
        for topic, p, log_ in work:
            try:
                event = self._retain(topic, p, log_, now, keep_from)
            except LogClosedError:  # the topic was deleted or reconfigured meanwhile
                continue
            if event is not None:
                events.append(event)
        return events

    def _retain(
        self,
        topic: _Topic,
        p: int,
        log_: Log,
        now: int,
        keep_from: Callable[[str, int, Log], int] | None,
    ) -> RetentionEvent | None:
        config = topic.config
        log_.roll_if_due(now)
        if config.retention_ms == -1 and config.retention_bytes == -1:
            return None
        keep = log_.next_offset if keep_from is None else keep_from(topic.name, p, log_)
        result = log_.apply_retention(
            retention_ms=None if config.retention_ms == -1 else config.retention_ms,
            retention_bytes=None if config.retention_bytes == -1 else config.retention_bytes,
            keep_from=keep,
            now_ms=now,
        )
        if not result.segments_deleted:
            return None
        return RetentionEvent(
            topic.name, p, result.segments_deleted, result.bytes_deleted, result.lowest_offset
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def _topic(self, name: str) -> _Topic:
        self._check_open()
        topic = self._topics.get(name)
        if topic is None:
            if not isinstance(name, str):
                raise InvalidArgumentError(f"a topic name must be a string, got {name!r}")
            raise UnknownTopicError(name)
        return topic

    def _describe(self, topic: _Topic) -> TopicDescription:
        me = (self.node_id,)
        parts = tuple(
            PartitionDescription(
                partition=p,
                leader=me[0],
                replicas=me,
                in_sync=me,
                lowest_offset=log_.lowest_offset,
                next_offset=log_.next_offset,
                size_bytes=log_.size_bytes,
            )
            for p, log_ in enumerate(topic.logs)
        )
        return TopicDescription(topic.name, topic.config.as_strings(), 1, parts)

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the broker is closed")

    def _close_logs(self) -> None:
        for topic in self._topics.values():
            for log_ in topic.logs:
                log_.close()

    def close(self) -> None:
        """Flush, fsync and close every partition, and release the directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_logs()
            self._dir_lock.release()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _normalized(values: Mapping[str, object]) -> dict[str, object]:
    return {normalize_key(k): v for k, v in values.items()}
