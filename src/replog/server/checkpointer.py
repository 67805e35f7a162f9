"""Signed checkpoints of a single node's partitions, published on a timer (issue 15).

With a signing key (``replog serve --signing-key FILE``) every partition's checkpoint is
signed every ``checkpoint_interval_ms`` when its durable size grew, origin
``<cluster name>/<topic>/<partition>``; a single node's cluster name is its server id (the
gRPC address when no id is set). Without a key no checkpoint is signed; the tiles are kept
all the same. The size signed is the log's durable offset after an fsync: a checkpoint must
never cover a record a crash could take back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from replog.broker import Broker
from replog.errors import ReplogError
from replog.tlog.checkpoints import CHECKPOINTS_DIR, CheckpointStore, publish_checkpoint
from replog.tlog.note import Signer

__all__ = ["Checkpointer", "Periodic"]

log = logging.getLogger("replog.server")


class Periodic:
    """Runs ``publish_round`` every ``interval_ms`` from ``start`` until ``stop``."""

    def __init__(self, interval_ms: int) -> None:
        self._interval_s = interval_ms / 1000
        self._task: asyncio.Task[None] | None = None

    async def publish_round(self) -> None:
        """Publish the checkpoints due (the subclass's own)."""
        raise NotImplementedError

    def start(self) -> None:
        """Publish every interval until ``stop``."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.publish_round()
            except Exception:  # a failed round must not end the next ones
                log.exception("publishing checkpoints failed")

    async def stop(self) -> None:
        """Stop publishing (before the logs close)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Checkpointer(Periodic):
    """Publishes the checkpoints of every partition of ``broker``."""

    def __init__(
        self, broker: Broker, cluster_name: str, signer: Signer, *, interval_ms: int, keep: int
    ) -> None:
        super().__init__(interval_ms)
        self._broker = broker
        self.cluster_name = cluster_name
        self._signer = signer
        self._keep = keep

    def origin(self, topic: str, partition: int) -> str:
        """The log name a partition's checkpoints carry."""
        return f"{self.cluster_name}/{topic}/{partition}"

    def store(self, topic: str, partition: int) -> CheckpointStore | None:
        """Where a partition's checkpoints are kept (None if it keeps no tree)."""
        tree = self._broker.tree(topic, partition)
        if tree is None:
            return None
        return CheckpointStore(Path(tree.directory) / CHECKPOINTS_DIR, self._keep)

    def publish_all(self) -> int:
        """Sign a checkpoint for each partition whose durable size grew; how many were."""
        published = 0
        for topic in self._broker.topics():
            try:
                count = self._broker.partition_count(topic)
            except ReplogError:
                continue  # deleted meanwhile
            for partition in range(count):
                try:
                    published += self._publish(topic, partition)
                except (ReplogError, OSError) as exc:
                    log.warning("no checkpoint for %s/%d: %s", topic, partition, exc)
        return published

    def _publish(self, topic: str, partition: int) -> int:
        tree = self._broker.tree(topic, partition)
        store = self.store(topic, partition)
        if tree is None or store is None or tree.unavailable is not None:
            return 0
        log_ = self._broker.log(topic, partition)
        latest = store.latest_size()
        if latest is not None and log_.next_offset <= latest:
            return 0
        log_.sync()
        size = min(log_.durable_offset, tree.size)
        done = publish_checkpoint(tree, store, size, self.origin(topic, partition), self._signer)
        return 0 if done is None else 1

    async def publish_round(self) -> None:
        """One round of ``Periodic``: publish every partition's checkpoint."""
        await asyncio.to_thread(self.publish_all)
