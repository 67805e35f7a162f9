"""``ClusterTopics``: a cluster node's TopicsBackend (the APIs' view of its topics).

Metadata comes from the controller state this node applied (``cluster/metadata.py``);
administration is proposed to the controller group by its leader (another node hands it
to the leader: ``cluster/metadata_forward.py``) and returns once this node applied it and
opened its groups. A partition resolves
to:
- ``default``/0: the controller group's log (as before topics);
- a partition this node holds a replica of: its group's RaftBackend (produce on a follower
  is forwarded to the group's leader; reads are served below the commit index);
- a partition of which it holds none: a ``RemotePartition`` that forwards produce to the
  partition's replicas and refuses reads with ``UNAVAILABLE`` naming a replica's address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from replog.api.backend import LogBackend
from replog.broker.config import TopicConfig
from replog.broker.model import PartitionDescription, TopicDescription
from replog.broker.names import (
    DEFAULT_TOPIC,
    check_partition_count,
    check_replication_factor,
    check_topic_name,
)
from replog.broker.partitioner import StickyPartitioner, partition_for_key
from replog.cluster.backend import RaftBackend
from replog.cluster.controller_commands import (
    AlterTopicConfig,
    Command,
    CreatePartitions,
    CreateTopic,
    DeleteTopic,
)
from replog.cluster.controller_queries import PartitionRef, describe
from replog.cluster.members import raft_id
from replog.cluster.metadata import Metadata
from replog.cluster.partitions import PartitionGroups
from replog.cluster.remote import RemotePartition
from replog.errors import (
    UnavailableError,
    UnknownPartitionError,
    UnknownTopicError,
    UnsupportedError,
)

__all__ = ["ClusterTopics"]

#: How many entries behind the leader a replica may be and still count as in sync.
_IN_SYNC_LAG = 1000
#: A node count no replication factor reaches (to check a factor's shape only).
_ANY_COUNT = 1 << 30
#: How long a topic change waits for this node's groups to follow it.
_SETTLE_S = 10.0


class ClusterTopics:
    """The TopicsBackend of a cluster node; see the module docstring."""

    def __init__(
        self,
        metadata: Metadata,
        groups: PartitionGroups,
        controller: RaftBackend,
        defaults: TopicConfig,
        *,
        remote: Callable[[str, int, tuple[str, ...]], RemotePartition],
        propose: Callable[[Command], Awaitable[int]] | None = None,
    ) -> None:
        """``remote(topic, partition, replicas)`` makes the backend of a partition this node
        holds no replica of; ``propose(command)`` has a topic command applied by the controller
        (its index; default: ``metadata.propose_at``, on the controller leader only)."""
        self._propose = propose or metadata.propose_at  # (CreateTopic's factor resolved)
        self.metadata = metadata
        self.groups = groups
        self.controller = controller
        self.defaults = defaults
        self._remote = remote
        self._sticky = StickyPartitioner()

    # -- routing --------------------------------------------------------------------------

    def _ref(self, topic: str, partition: int) -> PartitionRef:
        name = topic or DEFAULT_TOPIC
        info = self.metadata.state.topics.get(name)
        if info is None:
            raise UnknownTopicError(name)
        if not 0 <= partition < len(info.partitions):
            raise UnknownPartitionError(name, partition, len(info.partitions))
        return PartitionRef(name, partition, info.topic_id)

    def partition(self, topic: str, partition: int) -> LogBackend:
        """The backend of one partition (see the module docstring)."""
        ref = self._ref(topic, partition)
        if ref.topic == DEFAULT_TOPIC:
            return self.controller
        backend = self.groups.backend(ref)
        if backend is not None:
            return backend
        part = self.metadata.state.topics[ref.topic].partitions[partition]
        if self.groups.name in part.hosts:
            raise UnavailableError(
                f"partition {ref.topic}/{partition} is starting on this node; retry",
                certainly_not_applied=True,
            )
        return self._remote(ref.topic, partition, part.replicas)

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """Kafka's murmur2 partition of ``key``; a sticky partition without a key."""
        name = topic or DEFAULT_TOPIC
        info = self.metadata.state.topics.get(name)
        if info is None:
            raise UnknownTopicError(name)
        count = len(info.partitions)
        if key:
            return partition_for_key(key, count)
        return self._sticky.partition(name, count)

    def next_batch(self, topic: str) -> None:
        """A keyless batch ended: the sticky partition may move on."""
        self._sticky.next_batch(topic or DEFAULT_TOPIC)

    # -- administration (proposed by the controller leader) ---------------------------------

    async def create_topic(
        self, name: str, partitions: int, replication_factor: int, config: Mapping[str, str]
    ) -> TopicDescription:
        """Create a topic over the cluster's nodes (0 partitions: 1; replication factor 0:
        as many nodes as there are, at most 3)."""
        check_topic_name(name)
        check_partition_count(partitions or 1)
        check_replication_factor(replication_factor, _ANY_COUNT)  # its shape; the controller
        # leader resolves 0 and checks it against the nodes it knows (see metadata_forward)
        command = CreateTopic(name, partitions or 1, replication_factor, dict(config))
        await self._change(command)
        return self.describe_topic(name)

    async def delete_topic(self, name: str) -> None:
        """Delete a topic; every replica removes its data."""
        self._ref(name, 0)
        await self._change(DeleteTopic(name))

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Sequence[str]
    ) -> TopicDescription:
        """Set keys and reset others to the server defaults (``key_index`` only at creation:
        every replica keeps it from its partition's first record)."""
        self._ref(name, 0)
        if any(k.replace(".", "_").strip() == "key_index" for k in (*set_, *delete)):
            raise UnsupportedError("a cluster topic's key_index is set when it is created")
        await self._change(AlterTopicConfig(name, dict(set_), tuple(delete)))
        return self.describe_topic(name)

    async def create_partitions(self, name: str, count: int) -> TopicDescription:
        """Grow a topic to ``count`` partitions."""
        self._ref(name, 0)
        await self._change(CreatePartitions(name, count))
        return self.describe_topic(name)

    async def _change(
        self, command: CreateTopic | DeleteTopic | AlterTopicConfig | CreatePartitions
    ) -> None:
        index = await self._propose(command)
        await self.metadata.wait_version(index, _SETTLE_S)
        await self.groups.settled(_SETTLE_S)
        await self._leaders_known(command, _SETTLE_S)

    async def _leaders_known(self, command: object, timeout_s: float) -> None:
        """Wait (bounded) until this node's groups of the topic know a leader, so the
        caller's first produce finds one."""
        name = getattr(command, "name", "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            hosted = [h for r, h in self.groups.hosted.items() if r.topic == name]
            if all(h.node.leader is not None for h in hosted):
                return
            await asyncio.sleep(0.05)

    # -- descriptions ---------------------------------------------------------------------

    def list_topics(self) -> list[TopicDescription]:
        """Every topic, by name."""
        return [self.describe_topic(name) for name in sorted(self.metadata.state.topics)]

    def describe_topic(self, name: str) -> TopicDescription:
        """A topic as this node sees it: leaders, offsets and sizes of the partitions it
        holds a replica of; for the others, the leader is "" and the offsets 0."""
        state = self.metadata.state
        description = describe(state, name, self._leaders(name), defaults=self.defaults)
        if name == DEFAULT_TOPIC:
            return self._describe_default(description)
        parts = []
        info = state.topics[name]
        for p in description.partitions:
            backend = self.groups.backend(PartitionRef(name, p.partition, info.topic_id))
            parts.append(p if backend is None else self._with_offsets(p, backend))
        return TopicDescription(
            name, description.config, description.replication_factor, tuple(parts)
        )

    def _leaders(self, name: str) -> dict[tuple[str, int], str]:
        book = self.groups.book
        out: dict[tuple[str, int], str] = {}
        for ref, hosted in self.groups.hosted.items():
            if ref.topic == name and hosted.node.leader is not None:
                out[(name, ref.partition)] = book.name(hosted.node.leader)
        return out

    def _describe_default(self, description: TopicDescription) -> TopicDescription:
        servers = self.controller.servers()
        leader = next((s.id for s in servers if s.is_leader), "")
        replicas = tuple(s.id for s in servers)
        voters = tuple(s.id for s in servers if s.is_voter)
        c = self.controller
        part = PartitionDescription(
            0, leader, replicas, voters, c.lowest_offset, c.high_watermark, c.size_bytes
        )
        return TopicDescription(DEFAULT_TOPIC, description.config, len(replicas), (part,))

    def _with_offsets(self, p: PartitionDescription, backend: RaftBackend) -> PartitionDescription:
        """``p`` with this replica's offsets and size, and, on the leader, the replicas that
        are in sync (Kafka's ISR: caught up within ``_IN_SYNC_LAG`` entries and heard from
        live by node liveness; a quiet group's followers send nothing, yet are in sync)."""
        in_sync = p.in_sync
        node = backend.node
        if node.is_leader:
            raft, book = node.raft, self.groups.book
            last = raft.log.last_index()
            caught_up = []
            for name in p.replicas:
                member = raft_id(name)
                progress = raft.progress.get(member)
                if member == node.id or (
                    progress is not None
                    and last - progress.match <= _IN_SYNC_LAG
                    and self.groups.live(member)
                ):
                    caught_up.append(book.name(member))
            in_sync = tuple(caught_up)
        return PartitionDescription(
            p.partition,
            p.leader,
            p.replicas,
            in_sync,
            backend.lowest_offset,
            backend.high_watermark,
            backend.size_bytes,
        )
