"""The topics of a cluster node: metadata, partition groups, registration, leader balance.

``TopicsHost`` is what a ``ClusterNode`` adds for topics (docs/multiraft.md):
- ``Metadata`` follows the controller log and ``PartitionGroups`` runs the groups it wants;
- the controller leader registers every voter of the controller group as a node (the
  node list placement uses), and refreshes an address that changed; each node has the
  metadata name its own Kafka listener (``kafka_address``, "" when it runs none) and its
  HTTP API (``http_address``, once it listens);
- leader balancing: each node that leads a partition group whose preferred leader (its
  first replica) is another node, live and caught up, hands leadership to it, a few
  groups per round, so leaderships return to their preferred nodes after a failover;
- retention on every replica: each round, every hosted partition deletes the segments
  its topic's retention lets go, never at or above its commit index; the controller group
  (``default``/0) too, only below its newest controller snapshot, which each round first
  refreshes (a node also writes one when the metadata changed, and when it stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from grpc import aio

from replog.api.backend import DuplicateOffset
from replog.api.status import grpc_code_for, metadata_for
from replog.api.wire import produce_batch_request
from replog.broker.config import TopicConfig
from replog.broker.names import DEFAULT_TOPIC
from replog.cluster.backend import RaftBackend
from replog.cluster.controller_commands import RegisterNode, SetHttpAddress, SetKafkaAddress
from replog.cluster.events import group_labels, note_transfer
from replog.cluster.forward import TOPIC_ID_KEY, Forwarder
from replog.cluster.groups import GroupHost
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import AddressBook, raft_id
from replog.cluster.metadata import Metadata
from replog.cluster.metadata_forward import MetadataForwarding
from replog.cluster.move_admin import MoveAdmin
from replog.cluster.moves import MoveDriver
from replog.cluster.partitions import HostedPartition, PartitionGroups, group_id
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.cluster.remote import RemotePartition
from replog.cluster.remote_leaders import RemoteLeaders
from replog.cluster.topics import ClusterTopics
from replog.cluster.transfer import hand_over
from replog.cluster.transport import RaftTransport
from replog.errors import ReplogError, UnavailableError
from replog.raft.core import Raft
from replog.raft.ready import Role
from replog.storage import LogConfig
from replog.v1 import log_pb2

__all__ = ["TopicsHost"]

log = logging.getLogger("replog.cluster.topics")

Spawn = Callable[[Coroutine[Any, Any, None]], None]

_REGISTER_EVERY_S = 0.5
_BALANCE_MAX_PER_ROUND = 16
_BALANCE_MAX_LAG = 64


class TopicsHost:
    """A cluster node's topics; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        data_dir: str,
        node: RaftNode,
        store: ReplogLogStore,
        controller: RaftBackend,
        book: AddressBook,
        groups: GroupHost,
        transport: RaftTransport,
        options: NodeOptions,
        defaults: TopicConfig,
        sync_interval_ms: int,
        credentials: grpc.ChannelCredentials | None,
        on_fatal: Callable[[BaseException], None],
        leader_balancing: bool = True,
        balance_interval_s: float = 5.0,
        retention_interval_s: float = 60.0,
    ) -> None:
        """Follow the controller group ``node`` (over ``store``)."""
        self.name = name
        self.node = node
        self.book = book
        self.transport = transport
        self.defaults = defaults
        self._sync_interval_ms = sync_interval_ms
        self.leader_balancing = leader_balancing
        self.balance_interval_s = balance_interval_s
        self.retention_interval_s = retention_interval_s
        self.metadata = Metadata(node, store, book.address)
        self.partitions = PartitionGroups(
            name=name,
            data_dir=data_dir,
            log_config=self._log_config,
            options=options,
            groups=groups,
            book=book,
            members=controller._members,
            credentials=credentials,
            on_fatal=on_fatal,
        )
        self.metadata.listeners.append(self.partitions.want)
        self.partitions.may_remove = self._metadata_current
        self.move_admin = MoveAdmin(self.metadata, book, credentials)
        self.moves = MoveDriver(
            name=name,
            state=lambda: self.metadata.state,
            partitions=self.partitions,
            controller=node,
            controller_leader=lambda: self.metadata.is_leader,
            complete=self.move_admin.complete_on_leader,
        )
        self.metadata.listeners.append(self.moves.kick)
        self.forwarder = Forwarder(credentials)
        self.forwarding = MetadataForwarding(
            self.metadata, book, credentials, self._register_voters
        )
        self._last_leader: dict[tuple[str, int], str] = {}
        self.remote_leaders = _remote_leaders(name, self.metadata, transport, credentials)
        self.kafka_address = ""  # HOST:PORT Kafka clients are told ("": none); registered
        self.http_address = ""  # HOST:PORT HTTP clients are told ("": not listening yet)
        self.topics = ClusterTopics(
            self.metadata,
            self.partitions,
            controller,
            defaults,
            remote=self._remote,
            propose=self.forwarding.propose,
        )

    def _metadata_current(self) -> bool:
        """Whether this node follows a controller leader and applied all it knows to be
        committed (after a restart: once the leader's commit index reached it)."""
        node = self.node
        return node.leader is not None and node.high_watermark > node.raft.log.committed

    def topic_config(self, topic: str) -> TopicConfig:
        """A topic's effective configuration (the defaults under its overrides)."""
        info = self.metadata.state.topics.get(topic)
        return self.defaults.with_values(info.config if info is not None else {})

    def _log_config(self, topic: str) -> LogConfig:
        config = self.topic_config(topic)
        return LogConfig(
            max_store_bytes=config.segment_bytes,
            max_record_bytes=config.max_record_bytes,
            sync=config.sync,
            sync_interval_ms=self._sync_interval_ms,
            segment_ms=None if config.segment_ms == -1 else config.segment_ms,
        )

    def _remote(self, topic: str, partition: int, replicas: tuple[str, ...]) -> RemotePartition:
        state = self.metadata.state
        return RemotePartition(
            topic,
            partition,
            replicas,
            address_of=lambda n: state.nodes[n].address if n in state.nodes else None,
            forwarder=self.forwarder,
            servers=self.topics.controller.servers,
            last_leader=self._last_leader,
            topic_id=state.topics[topic].topic_id if topic in state.topics else None,
            leader_of=self.remote_leaders.leader,
        )

    async def serve_forwarded(
        self, request: bytes, context: aio.ServicerContext[Any, Any]
    ) -> log_pb2.ProduceBatchResponse:
        """``Raft/Forward``: a produce another node forwarded; appended here if this node
        leads the partition's group, never forwarded again."""
        try:
            batch = produce_batch_request(request)
            target = self._forward_target(batch.topic, batch.partition or 0)
            wanted = dict(context.invocation_metadata() or ()).get(TOPIC_ID_KEY)
            if (
                wanted is not None
                and str(target.topic_id) != wanted
                and target.topic_id is not None
            ):
                raise UnavailableError(
                    f"this node's {batch.topic}/{batch.partition or 0} is another incarnation "
                    "of the topic (deleted or created again); retry",
                    certainly_not_applied=True,
                )
            if target.closing:
                raise UnavailableError("the node is stopping", certainly_not_applied=True)
            node = target.node
            if not node.is_leader:
                lead = node.leader
                raise UnavailableError(
                    "not the leader",
                    certainly_not_applied=True,
                    leader_addr=(self.book.address(lead) or "") if lead is not None else "",
                )
            base = await target.submit_here(batch.values, batch.conditions)
        except ReplogError as exc:
            await context.abort(grpc_code_for(exc), str(exc), trailing_metadata=metadata_for(exc))
            raise
        return log_pb2.ProduceBatchResponse(
            base_offset=base,
            count=len(batch.values),
            duplicate=isinstance(base, DuplicateOffset),
        )

    def _forward_target(self, topic: str, partition: int) -> RaftBackend:
        """The group a forwarded produce is for, if this node holds a replica of it."""
        if topic in ("", DEFAULT_TOPIC):
            return self.topics.controller
        backend = self.local(topic, partition)
        if backend is None:
            raise UnavailableError(
                f"this node holds no replica of {topic}/{partition}", certainly_not_applied=True
            )
        return backend

    def local(self, topic: str, partition: int) -> RaftBackend | None:
        """The group of a partition this node holds a replica of, if it runs here."""
        for ref, hosted in self.partitions.hosted.items():
            if ref.topic == topic and ref.partition == partition:
                return hosted.backend
        return None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, spawn: Spawn) -> None:
        """Rebuild the metadata, open the wanted groups and run the background tasks."""
        self.metadata.rebuild()
        self.partitions.want(None, self.metadata.state)
        spawn(self.partitions.run())
        spawn(self._register_loop())
        spawn(self._balance_loop())
        spawn(self._retention_loop())
        spawn(self.moves.run())

    async def hand_over_all(self, timeout_s: float) -> None:
        """Hand leadership of every partition group this node leads to another replica
        (a graceful stop: its partitions need not wait for a liveness timeout)."""
        leading = [h.node for h in self.partitions.hosted.values() if h.node.is_leader]
        await asyncio.gather(*(hand_over(node, timeout_s) for node in leading))

    async def close(self) -> None:
        """Stop every partition group (their data stays) and the forwarding channels; keep
        a snapshot of the metadata as applied (a restart then replays less)."""
        with contextlib.suppress(ReplogError, OSError):
            await self.metadata.save_snapshot()
        await self.partitions.close()
        await self.forwarder.close()
        await self.remote_leaders.close()

    # -- registration ---------------------------------------------------------------------

    async def _register_loop(self) -> None:
        while True:
            await asyncio.sleep(_REGISTER_EVERY_S)
            if self.metadata.is_leader:
                await self._register_voters()
            await self._advertise()

    async def _register_voters(self) -> None:
        """Register each voter whose name or address the metadata does not have yet."""
        nodes = self.metadata.state.nodes
        for voter in sorted(self.node.raft.config.voters):
            name, addr = self.book.name(voter), self.book.address(voter)
            if not addr or name == str(voter):
                continue  # its address is not in the book yet
            known = nodes.get(name)
            if known is not None and known.address == addr:
                continue
            try:
                await self.metadata.propose(RegisterNode(name, addr))
            except ReplogError as exc:
                log.debug("registering %s failed: %s", name, exc)
                return

    async def _advertise(self) -> None:
        """Have the metadata name this node's Kafka listener and HTTP API as they are now
        (once this node is registered; through the controller leader). The HTTP API is
        always on, so its address is never cleared: a restart sets the new one."""
        known = self.metadata.state.nodes.get(self.name)
        if known is None:
            return
        commands: list[SetKafkaAddress | SetHttpAddress] = []
        if known.kafka_address != self.kafka_address:
            commands.append(SetKafkaAddress(self.name, self.kafka_address))
        if self.http_address and known.http_address != self.http_address:
            commands.append(SetHttpAddress(self.name, self.http_address))
        for command in commands:
            try:
                await self.forwarding.propose(command)
            except ReplogError as exc:
                log.debug("advertising an address (%s) failed: %s", command.kind, exc)

    # -- leader balancing -----------------------------------------------------------------

    async def _balance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.balance_interval_s)
            if self.leader_balancing:
                self.balance_leaders()

    def balance_leaders(self) -> int:
        """Hand leadership of up to a few groups back to their live, caught-up preferred
        leaders; how many transfers began. Not while this node still opens or drops groups
        or any group here knows no leader: a transfer then competes with the elections (a
        thousand new partitions had fewer leaders with balancing than without)."""
        if not self.partitions.is_settled or any(
            h.node.leader is None for h in self.partitions.hosted.values()
        ):
            return 0
        state = self.metadata.state
        moved = 0
        for ref, hosted in sorted(self.partitions.hosted.items()):
            if moved >= _BALANCE_MAX_PER_ROUND:
                break
            topic = state.topics.get(ref.topic)
            if topic is None or ref.partition >= len(topic.partitions):
                continue
            part = topic.partitions[ref.partition]
            replicas = part.target or part.replicas  # a move's new preferred leader
            if not replicas or replicas[0] == self.name or not hosted.node.is_leader:
                continue
            preferred = raft_id(replicas[0])
            if self._may_take_over(hosted, preferred):
                note_transfer(
                    hosted.node, f"leader balancing: {replicas[0]} is the preferred leader"
                )
                future = hosted.node.call(functools.partial(_transfer, to=preferred))
                future.add_done_callback(_ignore_result)
                moved += 1
        if moved:
            log.info("leader balancing: handing %d partitions to their preferred leaders", moved)
        return moved

    def _may_take_over(self, hosted: HostedPartition, preferred: int) -> bool:
        raft = hosted.node.raft
        if raft.role is not Role.LEADER or raft.lead_transferee is not None:
            return False
        if preferred not in raft.config.voters or not self.transport.live(preferred):
            return False
        progress = raft.progress.get(preferred)
        return progress is not None and raft.log.last_index() - progress.match <= _BALANCE_MAX_LAG

    # -- retention ------------------------------------------------------------------------

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retention_interval_s)
            await self.apply_retention()

    async def apply_retention(self, now_ms: int | None = None) -> int:
        """Apply each hosted partition's retention (below its commit index) and the
        controller group's (below its newest controller snapshot too); how many segments
        were deleted."""
        deleted = await self._retain_controller(now_ms)
        for ref, hosted in sorted(self.partitions.hosted.items()):
            config = self.topic_config(ref.topic)
            if config.retention_ms == -1 and config.retention_bytes == -1:
                continue
            with contextlib.suppress(UnavailableError):
                deleted += await _retain_group(
                    hosted.node, hosted.store, group_id(ref), config, now_ms
                )
        return deleted

    async def _retain_controller(self, now_ms: int | None) -> int:
        """Snapshot the metadata if it changed (or, under retention, if the applied index
        moved on), then apply ``default``'s retention below that snapshot."""
        config = self.topic_config(DEFAULT_TOPIC)
        retained = config.retention_ms != -1 or config.retention_bytes != -1
        try:
            snapshot = await self.metadata.save_snapshot(refresh=retained)
            if not retained:
                return 0
            store = self.metadata.store
            return await _retain_group(self.node, store, "default/0", config, now_ms, snapshot)
        except UnavailableError:
            return 0
        except (ReplogError, OSError) as exc:
            log.warning("the controller snapshot could not be written: %s", exc)
            return 0


def _transfer(raft: Raft, *, to: int) -> None:
    raft.transfer_leadership(to)


async def _retain_group(  # noqa: PLR0917  (the group and its bounds)
    node: RaftNode,
    store: ReplogLogStore,
    name: str,
    config: TopicConfig,
    now_ms: int | None,
    snapshot: int | None = None,
) -> int:
    """Apply one group's retention: what the producer state and key index remember of the
    records about to go is on disk first, and retention keeps what they do not cover yet
    (and, with ``snapshot``, the records after that index); segments deleted."""
    covered = await node.producers.before_retention(node.high_watermark)
    keep_from = covered if snapshot is None else min(covered, snapshot + 1)
    retain = functools.partial(
        _retain, node=node, store=store, name=name, config=config, now_ms=now_ms
    )
    return int(await node.call(functools.partial(retain, keep_from=keep_from)))


def _retain(
    raft: Raft,
    *,
    node: RaftNode,
    store: ReplogLogStore,
    name: str,
    config: TopicConfig,
    now_ms: int | None,
    keep_from: int,
) -> int:
    """Delete what retention lets go of one group's log (on its node's loop, so the store
    is not used by anyone else meanwhile); the number of segments deleted."""
    result = store.log.apply_retention(
        retention_ms=config.retention_ms,
        retention_bytes=config.retention_bytes,
        keep_from=min(keep_from, node.high_watermark),
        now_ms=now_ms,
    )
    if result.segments_deleted:
        store.compact(store.log.lowest_offset)
        where, topic, partition = group_labels(name)
        log.info(
            "retention deleted %d segments of %s; its records now start at %d",
            result.segments_deleted,
            where,
            store.log.lowest_offset,
            extra={
                "event": "retention",
                "topic": topic,
                "partition": partition,
                "segments": result.segments_deleted,
                "lowest_offset": store.log.lowest_offset,
            },
        )
    return int(result.segments_deleted)


def _remote_leaders(
    name: str,
    metadata: Metadata,
    transport: RaftTransport,
    credentials: grpc.ChannelCredentials | None,
) -> RemoteLeaders:
    """Who leads the partitions node ``name`` holds no replica of (Kafka Metadata, and the
    group coordinator of an offsets partition hosted elsewhere), asked of their replicas."""
    return RemoteLeaders(
        name=name,
        state=lambda: metadata.state,
        live=lambda node: transport.live(raft_id(node)),
        credentials=credentials,
    )


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
