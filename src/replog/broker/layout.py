"""The broker's directory: where topics live, and the crash-safe steps that change it.

    <root>/.lock                      the broker's exclusive lock
    <root>/topics/<topic>/topic.json  the topic's partition count and configuration overrides
    <root>/topics/<topic>/<p>/        partition p: one Log directory
    <root>/.staging/                  topics being created or deleted (cleared on open)

Every change is one rename, so a crash leaves either the old state or the new one: a topic
is created in ``.staging`` and renamed into ``topics/``; it is deleted by renaming it into
``.staging`` and removing it there. A data directory of the single-log layout (segment
files at its top) is moved into ``topics/default/0`` the same way, once.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any

from replog.errors import ConfigError
from replog.storage.directory import SEGMENT_NAME
from replog.storage.files import PRIVATE_FILE_MODE, make_private_dir

__all__ = ["TopicMeta", "TopicsDirectory"]

_META = "topic.json"
_MIGRATION = "migrate-default"


@dataclass(frozen=True, slots=True)
class TopicMeta:
    """What topic.json holds: the partition count and the keys set on this topic."""

    name: str
    partitions: int
    overrides: dict[str, str]


class TopicsDirectory:
    """The file operations of a broker directory (the caller holds its lock)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.topics_dir = os.path.join(root, "topics")
        self.staging = os.path.join(root, ".staging")

    def prepare(self, default_topic: str) -> None:
        """Finish an interrupted migration, drop abandoned staging, and move a single-log
        directory's segments into ``topics/<default_topic>/0``."""
        make_private_dir(self.topics_dir)
        make_private_dir(self.staging)
        migration = os.path.join(self.staging, _MIGRATION)
        legacy = self._legacy_files()
        if legacy or os.path.isdir(migration):
            self._migrate(default_topic, legacy, migration)
        for name in os.listdir(self.staging):
            shutil.rmtree(os.path.join(self.staging, name), ignore_errors=True)
        _sync_dir(self.staging)

    def _legacy_files(self) -> list[str]:
        return sorted(n for n in os.listdir(self.root) if SEGMENT_NAME.match(n))

    def _migrate(self, topic: str, legacy: list[str], migration: str) -> None:
        target = self.topic_dir(topic)
        if os.path.exists(target):
            raise ConfigError(
                f"{self.root} holds both a single-log layout and topics/{topic}; "
                "move one of them away"
            )
        partition = os.path.join(migration, "0")
        make_private_dir(partition)
        for name in legacy:
            os.replace(os.path.join(self.root, name), os.path.join(partition, name))
        _sync_dir(partition)
        _sync_dir(self.root)
        _write_json(os.path.join(migration, _META), _meta_json(TopicMeta(topic, 1, {})))
        os.replace(migration, target)
        _sync_dir(self.topics_dir)
        _sync_dir(self.staging)

    def topic_dir(self, topic: str) -> str:
        """The directory of a topic."""
        return os.path.join(self.topics_dir, topic)

    def partition_dir(self, topic: str, partition: int) -> str:
        """The Log directory of one partition."""
        return os.path.join(self.topics_dir, topic, str(partition))

    def load(self) -> list[TopicMeta]:
        """Every topic on disk, by name; a topic whose topic.json is unreadable is an error
        (ConfigError naming it), never silently dropped."""
        metas = []
        for name in sorted(os.listdir(self.topics_dir)):
            path = os.path.join(self.topics_dir, name, _META)
            try:
                with open(path, encoding="utf-8") as f:
                    raw = json.load(f)
                metas.append(_meta_from_json(raw))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"cannot read topic {name!r} ({path}): {exc}") from exc
        return metas

    def create(self, meta: TopicMeta) -> None:
        """Create a topic's directory with its topic.json, atomically."""
        staged = os.path.join(self.staging, f"create-{uuid.uuid4().hex}")
        make_private_dir(staged)
        _write_json(os.path.join(staged, _META), _meta_json(meta))
        os.replace(staged, self.topic_dir(meta.name))
        _sync_dir(self.topics_dir)

    def update(self, meta: TopicMeta) -> None:
        """Replace a topic's topic.json, atomically."""
        _write_json(os.path.join(self.topic_dir(meta.name), _META), _meta_json(meta))

    def delete(self, topic: str) -> None:
        """Remove a topic and its data: renamed away first, so a crash cannot leave half."""
        doomed = os.path.join(self.staging, f"delete-{uuid.uuid4().hex}")
        os.replace(self.topic_dir(topic), doomed)
        _sync_dir(self.topics_dir)
        shutil.rmtree(doomed, ignore_errors=True)


def _meta_json(meta: TopicMeta) -> dict[str, Any]:
    return {
        "version": 1,
        "name": meta.name,
        "partitions": meta.partitions,
        "config": dict(meta.overrides),
    }


def _meta_from_json(raw: Any) -> TopicMeta:
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise ValueError("not a version 1 topic description")
    name, partitions, config = raw["name"], raw["partitions"], raw["config"]
    if not isinstance(name, str) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError("bad name or partition count")
    if not isinstance(config, dict):
        raise ValueError("bad config")
    return TopicMeta(name, partitions, {str(k): str(v) for k, v in config.items()})


def _write_json(path: str, obj: Any) -> None:
    """Write a JSON file durably and atomically (temp file, fsync, rename, fsync dir)."""
    tmp = f"{path}.tmp"
    data = json.dumps(obj, indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _sync_dir(os.path.dirname(path))


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
