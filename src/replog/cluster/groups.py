"""The Raft groups one node hosts over its one transport and inbox (docs/multiraft.md).

Hosting a group wires its RaftNode to the shared parts: its messages go out through the
transport's stream per peer marked with the group, incoming batches and snapshot installs
of the group reach it through the inbox's registry, and its snapshots to followers are sent
as that group's. Today a node hosts the controller group ("") only; partition groups are
hosted the same way.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from replog.broker.producer_log import CHECKPOINT_NAME
from replog.cluster.events import GroupEvents, group_labels
from replog.cluster.failover import leader_down
from replog.cluster.inbox import GroupState, Inbox
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import AddressBook, raft_id
from replog.cluster.raft_node import RaftNode
from replog.cluster.snapshot import send_snapshot
from replog.cluster.transport import RaftTransport
from replog.errors import ReplogError
from replog.raft.messages import Message

__all__ = ["GroupHost"]

log = logging.getLogger("replog.cluster")

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class GroupHost:
    """Hosts Raft groups on ``transport`` and ``inbox``; ``spawn`` runs a background task
    that the owner cancels when it stops."""

    def __init__(
        self,
        transport: RaftTransport,
        inbox: Inbox,
        book: AddressBook,
        credentials: grpc.ChannelCredentials | None,
        spawn: Spawn,
    ) -> None:
        """Host nothing yet (see ``host``)."""
        self.transport = transport
        self.inbox = inbox
        self.book = book
        self.credentials = credentials
        self.spawn = spawn
        self.nodes: dict[str, RaftNode] = {}
        self.events = GroupEvents(transport.name, raft_id(transport.name), book.name)
        """The groups' elections and leader changes, logged by node name."""
        self._was_down: set[int] = set()
        # Node liveness stands in for the heartbeats a quiet group no longer sends.
        transport.on_peer_down(self._peer_down)
        transport.on_peer_up(self._peer_up)

    def host(
        self, group: str, node: RaftNode, store: ReplogLogStore, state: GroupState | None = None
    ) -> None:
        """Run ``group`` on ``node`` (over ``store``) here: wire its traffic both ways
        (``state``: what travels with its snapshots besides the records)."""
        node.send = self.transport.sender(group)
        node.leader_live = self.transport.live
        node.send_snapshot = lambda message: self.spawn(
            self._send_snapshot(group, node, store, message, state)
        )
        self.inbox.register(group, node.deliver, store, state)
        self.nodes[group] = node
        self.events.watch(group, node)

    def unhost(self, group: str) -> None:
        """Stop routing ``group``'s traffic (its node is the caller's to stop)."""
        self.inbox.unregister(group)
        self.events.forget(group)
        node = self.nodes.pop(group, None)
        if node is not None:
            node.send = lambda messages: None
            node.send_snapshot = lambda message: None

    def _peer_down(self, peer: int) -> None:
        """Wake every group led on ``peer`` and end its lease: one follower of each campaigns
        soon (``cluster/failover.py``; the group id spreads them over the survivors)."""
        woken = 0
        name = self.book.name(peer)
        for group, node in self.nodes.items():
            if node.leader == peer:
                self.events.reason(group, f"{name} was unreachable")
                leader_down(node, peer, zlib.crc32(group.encode()))
                woken += 1
        self._was_down.add(peer)
        log.info(
            "node %s is unreachable (nothing heard for %.1f s); it led %d groups here",
            name,
            self.transport.liveness.timeout_s,
            woken,
            extra={
                "event": "node_unreachable",
                "node": self.transport.name,
                "peer": name,
                "groups_led": woken,
            },
        )

    def _peer_up(self, peer: int) -> None:
        """Wake every group led here that ``peer`` is a member of: a leader quiesces past a
        member reported down (``raft/quiesce.py``), and catches it up once it is back."""
        again = peer in self._was_down
        self._was_down.discard(peer)
        name = self.book.name(peer)
        log.info(
            "node %s is reachable%s",
            name,
            " again" if again else "",
            extra={
                "event": "node_reachable",
                "node": self.transport.name,
                "peer": name,
                "again": again,
            },
        )
        for node in self.nodes.values():
            if node.is_leader and peer in node.raft.progress:
                node.unquiesce()

    async def _send_snapshot(
        self,
        group: str,
        node: RaftNode,
        store: ReplogLogStore,
        message: Message,
        group_state: GroupState | None,
    ) -> None:
        addr = self.book.address(message.dst)
        book = {n: a for n, a in self.book.entries.values()}
        t = self.transport
        ok = False
        path = store.directory / CHECKPOINT_NAME
        try:
            state = await asyncio.to_thread(path.read_bytes) if path.exists() else b""
            extra, first = b"", store.log.lowest_offset  # the state must fit these records
            if group_state is not None and message.snapshot is not None:
                extra = await asyncio.to_thread(group_state.outgoing, message.snapshot.index, first)
            if addr:
                ok = await send_snapshot(
                    addr,
                    message,
                    store.log,
                    self.credentials,
                    t.name,
                    t.addr,
                    book,
                    cluster_id=t.cluster_id,
                    group=group,
                    producer_state=state,
                    group_state=extra,
                    first_offset=first,
                )
        except (grpc.RpcError, ReplogError, OSError) as exc:
            log.warning("snapshot to %s failed: %s", self.book.name(message.dst), exc)
        if ok:
            where, topic, partition = group_labels(group)
            to = self.book.name(message.dst)
            index = message.snapshot.index if message.snapshot is not None else None
            log.info(
                "%s: sent a snapshot up to index %s to %s",
                where,
                index,
                to,
                extra={
                    "event": "snapshot_sent",
                    "node": t.name,
                    "group": where,
                    "topic": topic,
                    "partition": partition,
                    "peer": to,
                    "index": index,
                },
            )
        node.report_snapshot(message.dst, ok=ok)
