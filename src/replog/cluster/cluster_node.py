"""A replicated node's wiring: log store, Raft node, transport, address book, and the
``replog.v1.Raft`` (peer traffic, snapshots) and ``replog.v1.Cluster`` (admin) gRPC services.

Node ids are strings for users; the core's integer id is derived from the string
(:func:`raft_id`), so every node computes the same mapping. The id -> address book is
replicated as member records (type 3) and kept in ``members.json`` beside the log.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from replog.api.wire import request_parser
from replog.broker.config import TopicConfig
from replog.cluster.admin import (
    CLUSTER_SERVICE,
    AdminError,
    NodeChannel,
    admin_rpc,
    cluster_call,
    identity_bytes,
    leader_hint,
    serialize_message,
)
from replog.cluster.backend import RaftBackend
from replog.cluster.groups import GroupHost
from replog.cluster.hosting import TopicsHost
from replog.cluster.inbox import Inbox
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import (
    AddressBook,
    clear_join_pending,
    is_clustered,
    join_incarnation,
    join_pending,
    load_cluster_id,
    mark_join_pending,
    next_start_epoch,
    raft_id,
    raise_start_epoch,
    save_cluster_id,
)
from replog.cluster.move_admin import progress
from replog.cluster.raft_node import NodeOptions, RaftNode
from replog.cluster.snapshot import receive_snapshot
from replog.cluster.status import cluster_status
from replog.cluster.transfer import hand_over, transfer_to
from replog.cluster.transport import (
    RAFT_SERVICE,
    RaftTransport,
    message_from_proto,
)
from replog.errors import ReplogError, UnavailableError
from replog.raft.errors import ConfChangeError, NotLeaderError
from replog.raft.membership import ConfChange, ConfChangeOp
from replog.raft.messages import Membership
from replog.storage import LogConfig
from replog.v1 import cluster_pb2, raft_pb2

__all__ = ["CLUSTER_SERVICE", "AdminError", "ClusterNode", "is_clustered", "raft_id"]

log = logging.getLogger("replog.cluster")


class ClusterNode:
    """Owns a replicated node; ``backend`` is what the Log APIs use."""

    def __init__(
        self,
        data_dir: str,
        log_config: LogConfig,
        *,
        name: str,
        bootstrap: bool = False,
        options: NodeOptions | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        topic_defaults: TopicConfig | None = None,
        leader_balancing: bool = True,
        balance_interval_s: float = 5.0,
        retention_interval_s: float = 60.0,
    ) -> None:
        """Open (or create) the node's data; ``bootstrap`` makes a brand-new node the sole
        voter of a new cluster; ``topic_defaults`` is a topic's configuration where it sets
        no key. Call ``start`` once the gRPC server is listening."""
        self.name = name
        self.id = raft_id(name)
        self.addr = ""
        self.data_dir = data_dir
        self.credentials = credentials
        self.fresh = fresh = not is_clustered(data_dir)  # no log, term, vote: new or wiped
        cluster_id = load_cluster_id(data_dir, bootstrap=bootstrap)  # before any state file
        self.epoch = next_start_epoch(data_dir)  # before our address goes anywhere
        self.on_fatal: Callable[[BaseException], None] = lambda exc: None
        seed = Membership(frozenset({self.id})) if bootstrap and fresh else None
        tlog = bool(options and options.tlog)
        self.store = ReplogLogStore(data_dir, log_config, bootstrap=seed, verifiable=tlog)
        self.book = AddressBook(Path(data_dir) / "members.json")
        self.node = RaftNode(self.store, self.id, random.Random(), options)
        o = self.node.options
        self.transport = RaftTransport(
            name=name,
            addr="",
            resolve=self.book.address,
            credentials=credentials,
            epoch=self.epoch,
            gossip=self.book.gossip,
            cluster_id=cluster_id or "",
            peers=self._peer_nodes,
            liveness_interval_s=o.liveness_interval_ms / 1000,
            liveness_timeout_s=o.liveness_timeout_ms / 1000,
        )
        self.inbox = Inbox(self.id, cluster_id, self.book)
        self.inbox.on_heard = self.transport.heard
        self.groups = GroupHost(self.transport, self.inbox, self.book, credentials, self._spawn)
        self.node.on_member = self.book.set
        self.node.on_fatal = self._fail_stop
        self.backend = RaftBackend(
            self.node,
            self.store,
            name=name,
            members=self.members,
            address_of=self.book.address,
            credentials=credentials,
        )
        self.topics_host = self._host_topics(
            topic_defaults or TopicConfig(),
            log_config,
            (leader_balancing, balance_interval_s),
            retention_interval_s,
        )
        self.topics = self.topics_host.topics
        self.groups.host("", self.node, self.store, self.topics_host.metadata.snapshots)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rejoined: dict[int, str] = {}  # node -> the fresh incarnation re-added as it
        self._joining = asyncio.Lock()
        self.incarnation = ""
        self._closed = asyncio.Event()

    def _host_topics(
        self,
        defaults: TopicConfig,
        log_config: LogConfig,
        balancing: tuple[bool, float],
        retention_interval_s: float,
    ) -> TopicsHost:
        """The node's topics (``balancing``: leader balancing on, and its interval)."""
        return TopicsHost(
            name=self.name,
            data_dir=self.data_dir,
            node=self.node,
            store=self.store,
            controller=self.backend,
            book=self.book,
            groups=self.groups,
            transport=self.transport,
            options=self.node.options,
            defaults=defaults,
            sync_interval_ms=log_config.sync_interval_ms,
            credentials=self.credentials,
            on_fatal=self._fail_stop,
            leader_balancing=balancing[0],
            balance_interval_s=balancing[1],
            retention_interval_s=retention_interval_s,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, addr: str, join: str = "") -> None:
        """Run the node; advertise ``addr``; with ``join``, ask that member to add us (*fresh*
        from an empty data dir: no vote nor campaign until confirmed, see members.py)."""
        self.addr = self.transport.addr = addr
        self.book.learn(self.name, addr, self.epoch)
        fresh_join = join_pending(self.data_dir) or bool(join and self.fresh)
        if fresh_join:
            mark_join_pending(self.data_dir)  # before the loop can write any state
            self.node.votes.block("fresh-join")
        self.incarnation = join_incarnation(self.data_dir)
        self.node.start()
        self.transport.start()
        self.topics_host.start(self._spawn)
        self._spawn(self._announce_when_leader())
        others = [a for i, (_, a) in self.book.entries.items() if i != self.id]
        if join or (fresh_join and others):
            self._spawn(self._join(join or others[0], fresh=fresh_join))
        elif fresh_join:
            log.error("a fresh join is pending but no --join address is known")
        elif self.id in self.book.entries and self.book.entries[self.id][1] != addr and others:
            self._spawn(self._join(others[0], force=True))  # restarted on a new address

    def _fail_stop(self, exc: BaseException) -> None:
        """The Raft node stopped on a storage failure: refuse everything, tell the owner."""
        self.backend.begin_shutdown()
        self.close_streams()
        self.transport.stop_pings()  # so that peers find this node down
        self.on_fatal(exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_when_leader(self) -> None:
        """Make sure our own address is in the replicated book (first leader of a cluster)."""
        while self.book.entries.get(self.id) != (self.name, self.addr):
            if self.node.is_leader:
                try:
                    await self.node.add_member_record(self.name, self.addr, self.epoch)
                except ReplogError as exc:
                    log.debug("announcing our address failed: %s", exc)
            await asyncio.sleep(0.1)

    async def _join(self, target: str, *, force: bool = False, fresh: bool = False) -> None:
        """Ask the leader (found through ``target`` or any known member) to add us."""
        request = cluster_pb2.JoinRequest(
            node_id=self.name,
            rpc_addr=self.addr,
            fresh=fresh,
            incarnation=self.incarnation,
            epoch=self.epoch,
            cluster_id=self.inbox.cluster_id or "",
        )
        attempt = 0
        while force or fresh or self.id not in self.node.raft.config.members():
            try:
                async with NodeChannel(target, self.credentials) as channel:
                    response = await cluster_call(
                        channel, "Join", request, cluster_pb2.JoinResponse
                    )
                for m in response.members:
                    if raft_id(m.id) != self.id:
                        self.book.learn(m.id, m.rpc_addr, 0)
                if response.epoch > self.epoch:  # the leader knew a later one of our id
                    await asyncio.to_thread(raise_start_epoch, self.data_dir, response.epoch)
                    self.epoch = self.transport.epoch = response.epoch
                    self.book.learn(self.name, self.addr, self.epoch)
                if self.inbox.cluster_id is None:  # saved before the join counts as confirmed
                    cid = response.cluster_id
                    await asyncio.to_thread(save_cluster_id, self.data_dir, cid)
                    self.inbox.cluster_id = self.transport.cluster_id = cid
                log.info("joined the cluster through %s", target)
                if fresh:  # any old incarnation is gone: vote and campaign as a member
                    await asyncio.to_thread(clear_join_pending, self.data_dir)
                    self.node.votes.lift("fresh-join")
                return
            except grpc.RpcError as exc:
                _log_join_failure(target, exc, attempt)
                known = [a for i, (_, a) in self.book.entries.items() if i != self.id]
                attempt += 1
                target = leader_hint(exc) or (known[attempt % len(known)] if known else target)
            await asyncio.sleep(0.2)

    async def shutdown_transfer(self, timeout_s: float = 5.0) -> None:
        """Hand leadership of the controller and of every partition group this node leads to
        another voter first (graceful stop), then wait for our producers' entries to commit."""
        await asyncio.gather(
            hand_over(self.node, timeout_s), self.topics_host.hand_over_all(timeout_s)
        )

    def close_streams(self) -> None:
        """End the peers' incoming streams and refuse new ones (the server is stopping)."""
        self._closed.set()

    async def stop(self) -> None:
        """Stop the background tasks, the node and the transport."""
        self.close_streams()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # e.g. the reconciler, mid-open
        await self.backend.close()
        await self.topics_host.close()
        await self.node.stop()
        self.groups.events.flush()
        await self.transport.close()

    # -- views ----------------------------------------------------------------------------

    def _peer_nodes(self) -> list[int]:
        """The other nodes of the cluster (every member is one of the controller group)."""
        return [m for m in self.node.raft.config.members() if m != self.id]

    def members(self) -> list[tuple[int, str, str, bool]]:
        """(raft id, name, address, voter) of every member of the latest configuration."""
        config = self.node.raft.config
        return [
            (m, self.book.name(m), self.book.address(m) or "", m in config.voters)
            for m in sorted(config.members(), key=self.book.name)
        ]

    def status(self) -> cluster_pb2.StatusResponse:
        """This node's view of the cluster."""
        live = self.transport.live
        answer = cluster_status(self.node, self.name, self.book, self.members(), live)
        progress(answer, self.topics_host.metadata.state)
        return answer

    # -- gRPC services --------------------------------------------------------------------

    def generic_handlers(self) -> list[grpc.GenericRpcHandler]:
        """The Raft and Cluster service handlers for the node's gRPC server."""
        su = grpc.stream_unary_rpc_method_handler
        uu = grpc.unary_unary_rpc_method_handler
        raft = grpc.method_handlers_generic_handler(
            RAFT_SERVICE,
            {
                "Stream": su(
                    self._stream,
                    request_deserializer=raft_pb2.RaftBatch.FromString,
                    response_serializer=raft_pb2.RaftAck.SerializeToString,
                ),
                "InstallSnapshot": su(
                    self._install_snapshot,
                    request_deserializer=raft_pb2.SnapshotChunk.FromString,
                    response_serializer=raft_pb2.SnapshotAck.SerializeToString,
                ),
                "Forward": uu(
                    self.topics_host.serve_forwarded,
                    request_deserializer=identity_bytes,  # parsed by wire.produce_batch_values
                    response_serializer=serialize_message,
                ),
            },
        )
        pb = cluster_pb2
        admin: dict[str, tuple[Any, Any]] = {
            "Join": (self._admin_join, pb.JoinRequest),
            "Remove": (self._admin_remove, pb.RemoveRequest),
            "TransferLeader": (self._admin_transfer, pb.TransferLeaderRequest),
            "Status": (self._admin_status, pb.StatusRequest),
            **self.topics_host.move_admin.methods(),
            **self.topics_host.forwarding.methods(),
        }
        cluster = grpc.method_handlers_generic_handler(
            CLUSTER_SERVICE,
            {
                name: uu(
                    admin_rpc(fn),
                    request_deserializer=request_parser(req),
                    response_serializer=serialize_message,
                )
                for name, (fn, req) in admin.items()
            },
        )
        return [raft, cluster]

    async def _stream(
        self, requests: AsyncIterator[raft_pb2.RaftBatch], context: aio.ServicerContext[Any, Any]
    ) -> raft_pb2.RaftAck:
        count = 0
        if self._closed.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the node is stopping")
        receiver = asyncio.ensure_future(self._receive(requests))
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({receiver, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receiver.cancel()
            closer.cancel()
        return raft_pb2.RaftAck(batches=count)

    async def _receive(self, requests: AsyncIterator[raft_pb2.RaftBatch]) -> None:
        async for batch in requests:
            self.inbox.receive(batch)

    async def _install_snapshot(
        self,
        requests: AsyncIterator[raft_pb2.SnapshotChunk],
        context: aio.ServicerContext[Any, Any],
    ) -> raft_pb2.SnapshotAck:
        received = await receive_snapshot(requests, self.inbox)
        if received is None:
            return raft_pb2.SnapshotAck(ok=False)
        target, final = received
        target.deliver([message_from_proto(final)])
        return raft_pb2.SnapshotAck(ok=True)

    # -- admin operations (shared by the gRPC Cluster service and the HTTP routes) ---------

    def _require_leader(self) -> None:
        if self.node.is_leader:
            return
        lead = self.node.leader
        addr = self.book.address(lead) if lead is not None else None
        raise AdminError(
            "NOT_LEADER",
            f"not the leader; the leader is {self.book.name(lead) if lead else 'unknown'}",
            leader_addr=addr or "",
        )

    async def join_member(
        self,
        name: str,
        addr: str,
        *,
        fresh: bool = False,
        incarnation: str = "",
        epoch: int = 0,
        cluster_id: str = "",
    ) -> cluster_pb2.JoinResponse:
        """Add ``name`` at ``addr`` as a learner (it is promoted once caught up). A ``fresh``
        joiner lost its state: if it is a member, it is removed first, then added anew, so
        it catches up from scratch instead of being trusted with the log it no longer has;
        once per ``incarnation`` on this leader (a retried join is not removed again). A
        joiner of another ``cluster_id`` is refused; one that knows none learns ours."""
        self._require_leader()
        node_id = raft_id(name)
        if node_id not in self.node.raft.config.members():
            self.topics_host.move_admin.refuse_rejoin(name)
        if cluster_id and cluster_id != self.inbox.cluster_id:
            raise AdminError("FAILED_PRECONDITION", f"{name} is a member of another cluster")
        if fresh and node_id == self.id:
            raise AdminError("FAILED_PRECONDITION", f"{name} is this leader, and it is running")
        # The joiner's own word on where it listens beats what its earlier starts left
        # behind: a wiped node re-joining on a new port has no configuration yet, sends no
        # Raft message that would refresh the hint, and would wait forever for appends sent
        # to its old address (tests/cluster/test_faults.py). Its start counter began again at
        # 1, so its address gets an epoch above any we know of it; the joiner adopts it.
        epoch = self.book.epoch_for(name, addr, epoch)
        self.book.learn(name, addr, epoch)
        async with self._joining:  # one join at a time: a retry must not interleave
            await self.node.add_member_record(name, addr, epoch)
            handled = bool(incarnation) and self._rejoined.get(node_id) == incarnation
            if fresh and not handled and node_id in self.node.raft.config.members():
                log.warning("%s re-joins with an empty data dir: removing it first", name)
                await self._change(ConfChange(ConfChangeOp.REMOVE, node_id))
            if fresh and incarnation:
                self._rejoined[node_id] = incarnation  # once the removal (if any) committed
            if node_id not in self.node.raft.config.members():
                await self._change(ConfChange(ConfChangeOp.ADD_LEARNER, node_id))
                log.info(
                    "node %s joined the cluster at %s (a learner until it catches up)",
                    name,
                    addr,
                    extra={"event": "node_joined", "node": self.name, "peer": name, "addr": addr},
                )
        return cluster_pb2.JoinResponse(
            members=self.status().members,
            leader_id=self.name,
            cluster_id=self.inbox.cluster_id or "",
            epoch=epoch,
        )

    async def remove_member(self, name: str) -> None:
        """Remove member ``name`` from the configuration (leader only)."""
        self._require_leader()
        node_id = raft_id(name)
        if node_id not in self.node.raft.config.members():
            raise AdminError("NOT_FOUND", f"{name} is not a member")
        await self._change(ConfChange(ConfChangeOp.REMOVE, node_id))
        log.info(
            "node %s was removed from the cluster",
            name,
            extra={"event": "node_removed", "node": self.name, "peer": name},
        )

    async def transfer_leader(self, name: str = "") -> str:
        """Hand leadership to ``name`` (default: the most promising voter); its name."""
        self._require_leader()
        target = raft_id(name) if name else None
        if target is not None and target not in self.node.raft.config.voters:
            raise AdminError("NOT_FOUND", f"{name} is not a voter")
        return self.book.name(await transfer_to(self.node, target))

    async def _change(self, change: ConfChange) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            try:
                await self.node.propose_change(change)
                return
            except ConfChangeError as exc:
                if loop.time() > deadline:
                    raise AdminError("FAILED_PRECONDITION", str(exc)) from None
                await asyncio.sleep(0.05)  # another change is still committing
            except (NotLeaderError, UnavailableError) as exc:
                raise AdminError("UNAVAILABLE", str(exc)) from None

    # -- the gRPC Cluster service ------------------------------------------------------------

    async def _admin_join(self, request: cluster_pb2.JoinRequest) -> cluster_pb2.JoinResponse:
        return await self.join_member(
            request.node_id,
            request.rpc_addr,
            fresh=request.fresh,
            incarnation=request.incarnation,
            epoch=request.epoch,
            cluster_id=request.cluster_id,
        )

    async def _admin_remove(self, request: cluster_pb2.RemoveRequest) -> cluster_pb2.RemoveResponse:
        await self.remove_member(request.node_id)
        return cluster_pb2.RemoveResponse()

    async def _admin_transfer(
        self, request: cluster_pb2.TransferLeaderRequest
    ) -> cluster_pb2.TransferLeaderResponse:
        return cluster_pb2.TransferLeaderResponse(
            leader_id=await self.transfer_leader(request.node_id)
        )

    async def _admin_status(self, request: cluster_pb2.StatusRequest) -> cluster_pb2.StatusResponse:
        return self.status()


def _log_join_failure(target: str, exc: grpc.RpcError, attempt: int) -> None:
    """One line for a failed join attempt (the status and its text, not the RPC error's
    dump): the first at INFO, then one every 25 attempts (about 5 s), the rest at DEBUG."""
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if callable(getattr(exc, "details", None)) else None
    why = f"{code.name if code is not None else 'error'}: {details or 'no details'}"
    level = logging.INFO if attempt % 25 == 0 else logging.DEBUG
    again = f" (attempt {attempt + 1}; retrying)" if attempt else " (retrying)"
    log.log(level, "join via %s failed: %s%s", target, why, again)
