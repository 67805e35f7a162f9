"""The partition groups one node runs, reconciled with the controller state.

The node runs a Raft group for every partition whose replica set (or move target) names it
(``controller_queries.partitions_of``). The reconciler is level-based: after every metadata
change it compares the groups it runs with the groups the state wants and opens or drops
the difference, a few at a time with the event loop free in between (opening a
partition's log is disk work, done in a worker thread), so a topic of thousands of
partitions never stalls the node's other groups.

A partition group lives in ``<data>/topics/<topic>/<partition>/`` (its log, hard state
and snapshot staging) with ``group.json`` naming the topic incarnation (``topic_id``): a
directory left by a deleted incarnation of the same name is removed, never reused, and the
group id carries the incarnation too (``<topic>/<partition>@<topic_id>``), so a message of
a deleted incarnation's group never reaches the new one's. A brand-new group's first
configuration is its replica set; its preferred leader (the first replica) campaigns at
once so leaders are spread from the start. Groups quiesce when idle.

Removal happens only for a change this node saw applied (a deleted topic, a completed move
away), and at start for directories whose incarnation the state knows and no longer
wants. A directory whose incarnation is newer than the state is kept: its topic may have
been created by a command this node has yet to apply again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc

from replog.broker.config import TopicConfig
from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.backend import RaftBackend
from replog.cluster.controller_queries import PartitionRef, partitions_of
from replog.cluster.controller_state import ControllerState
from replog.cluster.groups import GroupHost
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import AddressBook, raft_id
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.raft.messages import Membership
from replog.storage import LogConfig
from replog.storage.atomic import write_atomically

__all__ = ["GROUP_FILE", "HostedPartition", "PartitionGroups", "group_id"]

log = logging.getLogger("replog.cluster.partitions")

GROUP_FILE = "group.json"
_OPEN_CHUNK = 16
_OPEN_THREADS = 4
_REMOVE_RETRY_S = 0.5
_PERSIST_THREADS = 4
# A commit-only change of a partition's hard state is written at most this often (the
# controller group: every second). Each write is two fsyncs (file, directory), and the
# first commit after a quiet second paid them on every replica, in the path of the append's
# acknowledgement: 3 of 4 fsyncs of a write to an idle partition, which a few hundred
# partitions written at once queued behind each other. The commit index is volatile in
# Raft: a restart with an older one only re-learns it (and recovery checks less of it).
_COMMIT_FLUSH_S = 30.0


def group_id(ref: PartitionRef) -> str:
    """The Raft group id of a partition incarnation."""
    return f"{ref.topic}/{ref.partition}@{ref.topic_id}"


@dataclass(slots=True)
class HostedPartition:
    """One partition group this node runs."""

    ref: PartitionRef
    node: RaftNode
    store: ReplogLogStore
    backend: RaftBackend


class PartitionGroups:
    """Runs this node's partition groups; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        data_dir: str,
        log_config: Callable[[str], LogConfig],
        options: NodeOptions,
        groups: GroupHost,
        book: AddressBook,
        members: Callable[[], list[tuple[int, str, str, bool]]],
        credentials: grpc.ChannelCredentials | None,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        """``log_config(topic)`` gives a partition's Log settings (the topic's config)."""
        self.name = name
        self.id = raft_id(name)
        self.root = Path(data_dir) / "topics"
        self._log_config = log_config
        self._options = dataclasses.replace(options, quiesce=True, persist_inline=False)
        self._groups = groups
        self.live = groups.transport.live
        """Whether node liveness holds a peer (by Raft id) live."""
        self.book = book
        self._members = members
        self._credentials = credentials
        self._on_fatal = on_fatal
        self.hosted: dict[PartitionRef, HostedPartition] = {}
        self.may_remove: Callable[[], bool] = lambda: True
        """Whether this node's metadata is current enough to remove a partition's data: a
        node restarted rebuilds the state only up to its saved commit index, and a later
        entry it applied before (a move making it a replica) may still want the data."""
        self._state: ControllerState | None = None
        self._wanted: set[PartitionRef] = set()
        self._removed: set[PartitionRef] = set()
        self._kick = asyncio.Event()
        self._idle = asyncio.Event()
        self._executor = ThreadPoolExecutor(_PERSIST_THREADS, thread_name_prefix="raft-groups")
        self._closed = False

    # -- what the state wants ---------------------------------------------------------------

    def want(self, old: ControllerState | None, new: ControllerState) -> None:
        """Run the groups ``new`` wants here; drop (with their data) those a change from
        ``old`` took away. Returns at once; ``run`` does the work."""
        wanted = {r for r in partitions_of(new, self.name) if r.topic != DEFAULT_TOPIC}
        if old is not None:
            before = {r for r in partitions_of(old, self.name) if r.topic != DEFAULT_TOPIC}
            self._removed |= before - wanted
        else:  # starting: directories of incarnations the state knows and no longer wants
            # (the rebuild replays a deletion whose entry is still in the controller log;
            # this also covers one folded into the state some other way)
            self._removed |= {r for r in self._on_disk() if r.topic_id <= new.version} - wanted
        self._removed -= wanted
        self._state, self._wanted = new, wanted
        self._idle.clear()
        self._kick.set()

    def _on_disk(self) -> set[PartitionRef]:
        """The partition incarnations whose directories are here (by their markers)."""
        found: set[PartitionRef] = set()
        for marker in self.root.glob(f"*/*/{GROUP_FILE}"):
            topic_id = _topic_id(marker)
            partition = marker.parent.name
            if topic_id is not None and partition.isdigit():
                found.add(PartitionRef(marker.parent.parent.name, int(partition), topic_id))
        return found

    def backend(self, ref: PartitionRef) -> RaftBackend | None:
        """The running group of ``ref`` (None while it is not open here)."""
        hosted = self.hosted.get(ref)
        return hosted.backend if hosted is not None else None

    @property
    def is_settled(self) -> bool:
        """Whether the groups run are those wanted (nothing left to open or drop)."""
        return self._idle.is_set()

    async def settled(self, timeout_s: float) -> bool:
        """Wait until the groups run are those wanted; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # -- the reconciler -------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile until cancelled."""
        while not self._closed:
            await self._kick.wait()
            self._kick.clear()
            try:
                await self._reconcile()
            except Exception as exc:  # a disk failure: the node fail-stops
                log.critical("opening or removing a partition failed: %s", exc)
                self._on_fatal(exc)
                return
            if not self._kick.is_set():
                self._idle.set()

    async def _reconcile(self) -> None:
        # Data is removed only once this node's metadata is current (see ``may_remove``);
        # until then groups are only stopped, and the removal is retried.
        allowed = self.may_remove()
        for ref in sorted(set(self.hosted) - self._wanted):
            await self._drop(ref, remove=allowed and ref in self._removed)
            if self._kick.is_set():
                return  # the state moved on: start over from the newest
        if allowed:
            for ref in sorted(self._removed - set(self.hosted)):
                await asyncio.to_thread(_remove_dir, self._dir(ref), ref.topic_id)
                self._removed.discard(ref)
        elif self._removed:
            asyncio.get_running_loop().call_later(_REMOVE_RETRY_S, self._kick.set)
        # The groups to open and the state that places them, taken together: ``want`` may
        # replace both while a chunk opens in a worker thread (a node catching up its
        # controller log after a restart applies a topic's deletion then), and the newer
        # state may not know the topic any more. The next pass drops what this one opened.
        state, wanted = self._state, self._wanted
        missing = sorted(wanted - set(self.hosted))
        # A few chunks at once, each in its own worker thread: opening a partition is mostly
        # fsyncs (its marker and state file), which overlap across threads.
        wave = _OPEN_CHUNK * _OPEN_THREADS
        for start in range(0, len(missing), wave):
            chunks = [
                missing[i : i + _OPEN_CHUNK]
                for i in range(start, min(start + wave, len(missing)), _OPEN_CHUNK)
            ]
            opened = await asyncio.gather(
                *(asyncio.to_thread(self._open_stores, chunk, state) for chunk in chunks)
            )
            for chunk, stores in zip(chunks, opened, strict=True):
                for ref, store in zip(chunk, stores, strict=True):
                    self._start_group(ref, store, state)
            if self._kick.is_set():
                return

    def _dir(self, ref: PartitionRef) -> Path:
        return self.root / ref.topic / str(ref.partition)

    def _open_stores(
        self, refs: list[PartitionRef], state: ControllerState | None
    ) -> list[ReplogLogStore]:
        return [self._open_store(ref, state) for ref in refs]

    def _open_store(self, ref: PartitionRef, state: ControllerState | None) -> ReplogLogStore:
        """Open (or create) the partition's store as ``state`` places it; runs in a worker
        thread."""
        assert state is not None
        directory = self._dir(ref)
        marker = directory / GROUP_FILE
        if directory.exists() and _topic_id(marker) != ref.topic_id:
            log.info("removing %s: left by another incarnation of %s", directory, ref.topic)
            shutil.rmtree(directory)
        fresh = not directory.exists()
        part = state.topics[ref.topic].partitions[ref.partition]
        seed = None
        if fresh and self.name in part.replicas:  # a member of the first configuration
            seed = Membership(frozenset(raft_id(n) for n in part.replicas))
        # Each level with its own mode: mkdir(parents=True) gives the parents the umask's
        # (0755), and what a node writes is private.
        for level in (self.root, directory.parent, directory):
            level.mkdir(mode=0o700, exist_ok=True)
        store = ReplogLogStore(
            directory,
            self._log_config(ref.topic),
            bootstrap=seed,
            commit_flush_s=_COMMIT_FLUSH_S,
            verifiable=self._options.tlog,
        )
        if fresh:
            doc = {"topic": ref.topic, "partition": ref.partition, "topic_id": ref.topic_id}
            write_atomically(marker, json.dumps(doc).encode())
        return store

    def _start_group(
        self, ref: PartitionRef, store: ReplogLogStore, state: ControllerState | None
    ) -> None:
        assert state is not None
        overrides = state.topics[ref.topic].config
        options = dataclasses.replace(
            self._options, key_index=TopicConfig().with_values(overrides).key_index
        )
        node = RaftNode(store, self.id, random.Random(), options, executor=self._executor)
        node.on_fatal = self._on_fatal
        self._groups.host(group_id(ref), node, store)
        node.start()
        backend = RaftBackend(
            node,
            store,
            name=self.name,
            members=self._members,
            address_of=self.book.address,
            credentials=self._credentials,
            topic=ref.topic,
            partition=ref.partition,
            topic_id=ref.topic_id,
        )
        self.hosted[ref] = HostedPartition(ref, node, store, backend)
        replicas = state.topics[ref.topic].partitions[ref.partition].replicas
        if store.initial_state().term == 0 and replicas and replicas[0] == self.name:
            node.call(lambda r: r.campaign())  # the preferred leader leads from the start

    async def _drop(self, ref: PartitionRef, *, remove: bool) -> None:
        hosted = self.hosted[ref]
        self._groups.unhost(group_id(ref))
        await hosted.backend.close()
        await hosted.node.stop()
        self.hosted.pop(ref, None)  # only now: a drop cut short is done again by close()
        if remove:
            await asyncio.to_thread(_remove_dir, self._dir(ref), ref.topic_id)
            self._removed.discard(ref)
            log.info("removed partition %s/%d and its data", ref.topic, ref.partition)

    async def close(self) -> None:
        """Stop every group (their data stays)."""
        self._closed = True
        self._kick.set()
        for ref in list(self.hosted):
            await self._drop(ref, remove=False)
        self._executor.shutdown(wait=True)


def _topic_id(marker: Path) -> int | None:
    try:
        return int(json.loads(marker.read_bytes())["topic_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove_dir(directory: Path, topic_id: int) -> None:
    """Remove a partition's directory if it is of incarnation ``topic_id`` (and the topic's
    directory once empty)."""
    if directory.exists() and _topic_id(directory / GROUP_FILE) in (topic_id, None):
        shutil.rmtree(directory)
    parent = directory.parent
    if parent.exists() and not any(parent.iterdir()):
        parent.rmdir()
