"""Cluster operations on a real in-process cluster: crash failover, uncommitted records stay
invisible, graceful leader shutdown under a Producer, join with snapshot catch-up, remove and
transfer through the Cluster admin API."""

from __future__ import annotations

import contextlib
import shutil
import time
from typing import Any

import grpc

from replog.client import Client, Producer
from replog.cluster.members import join_pending
from replog.raft.messages import EntryKind
from replog.v1 import cluster_pb2
from replog.v1.record_pb2 import Record
from tests.cluster.conftest import Cluster, Node, wait_until


def _crash(node: Node) -> None:
    """Stop without handing leadership over (like a crash, minus lost page cache)."""
    node.stop_without_hand_over()


def _admin(node: Node, method: str, request: Any, response: Any) -> Any:
    with grpc.insecure_channel(node.grpc_address) as channel:
        call = channel.unary_unary(
            f"/replog.v1.Cluster/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=15)


def test_leader_crash_elects_a_new_leader_quickly_and_producing_resumes(three: Cluster) -> None:
    old = three.leader()
    follower = three.followers()[0]
    with Client(follower.grpc_address) as client:
        client.produce(b"before")
        started = time.monotonic()
        _crash(old)
        new = three.leader(timeout=10)
        failover_s = time.monotonic() - started
        print(f"\nfailover after a leader crash: {failover_s:.2f} s (tick 50 ms x 10)")
        assert new is not old and failover_s < 3
        client.produce(b"after")
        values = [r.value for r in client.consume_batch(0, max_records=100).records]
    assert values == [b"before", b"after"]


def test_consumers_never_see_records_the_cluster_has_not_committed(three: Cluster) -> None:
    leader = three.leader()
    with Client(leader.grpc_address) as client:
        client.produce(b"committed")
        for node in three.followers():
            _crash(node)
        # The leader appends this but cannot commit it without a follower.
        with (
            Client(leader.grpc_address, timeout=0.5) as slow,
            contextlib.suppress(Exception),  # a timeout is the expected outcome
        ):
            slow.produce(b"never acknowledged")
        wait_until(
            lambda: leader.cluster.store.last_index() > leader.cluster.node.raft.log.committed
        )
        values = [r.value for r in client.consume_batch(0, max_records=100).records]
    assert values == [b"committed"]


def test_graceful_leader_shutdown_under_a_producer_loses_nothing(three: Cluster) -> None:
    leader = three.leader()
    follower = three.followers()[0]
    with Producer(follower.grpc_address, linger_ms=2) as producer:
        futures = [producer.send(b"a%d" % i) for i in range(300)]
        leader.stop()  # SIGTERM path: transfer leadership first
        futures += [producer.send(b"b%d" % i) for i in range(300)]
        producer.flush(30)
        offsets = [f.result(30) for f in futures]
    assert len(set(offsets)) == 600
    with Client(follower.grpc_address) as client:
        wait_until(lambda: len(client.consume_batch(0, max_records=1000).records) == 600)
        values = [r.value for r in client.consume_batch(0, max_records=1000).records]
    # Every record exactly once; a batch retried across the leader change may land after
    # later ones (max_in_flight > 1, as with Kafka's producer).
    assert sorted(values) == sorted(
        [b"a%d" % i for i in range(300)] + [b"b%d" % i for i in range(300)]
    )


def test_a_fourth_node_joins_catches_up_from_a_snapshot_and_becomes_a_voter(
    cluster: Cluster,
) -> None:
    three = cluster
    three.bootstrap(3, segment_bytes=16 * 1024, max_record_bytes=1024)
    leader = three.leader()
    with Client(leader.grpc_address) as client:
        for i in range(20):
            client.produce_batch([b"x%d-%d" % (i, j) for j in range(50)])
    store = leader.cluster.store
    leader.call(_compact(leader, leader.cluster.node.raft.log.committed))
    assert store.first_index() > 1, "the leader's log must start later for a snapshot"
    n4 = three.join("n4", segment_bytes=16 * 1024, max_record_bytes=1024)
    assert n4.cluster.store.log.lowest_offset == store.log.lowest_offset > 1  # snapshot
    wait_until(lambda: n4.cluster.node.high_watermark >= leader.cluster.node.high_watermark)
    with Client(n4.grpc_address) as client:
        records = client.consume_batch(store.log.lowest_offset, max_records=10_000).records
    assert records and records[-1].value == b"x19-49"


async def _compact(node: Node, index: int) -> None:
    """Drop the leader's oldest segments as retention does, on its node loop: only below a
    controller snapshot, which holds the metadata of the entries deleted."""
    snapshot = await node.cluster.topics_host.metadata.save_snapshot(refresh=True)
    bound = min(index, snapshot + 1)
    await node.cluster.node.call(lambda raft: raft.log.storage.compact(bound))


def test_transfer_leader_and_remove_through_the_admin_api(three: Cluster) -> None:
    leader = three.leader()
    target = three.followers()[0]
    answer = _admin(
        leader,
        "TransferLeader",
        cluster_pb2.TransferLeaderRequest(node_id=target.name),
        cluster_pb2.TransferLeaderResponse,
    )
    assert answer.leader_id == target.name
    assert three.leader() is target
    status = _admin(target, "Status", cluster_pb2.StatusRequest(), cluster_pb2.StatusResponse)
    assert status.leader_id == target.name and len(status.members) == 3
    _admin(
        target, "Remove", cluster_pb2.RemoveRequest(node_id=leader.name), cluster_pb2.RemoveResponse
    )
    wait_until(lambda: len(target.cluster.node.raft.config.voters) == 2)
    with Client(target.grpc_address) as client:
        assert sorted(s.id for s in client.servers()) == sorted(
            n.name for n in three.nodes if n is not leader
        )
        client.produce(b"two voters commit")


def _config_entries(node: Node) -> int:
    """How many configuration entries ``node``'s log holds."""
    log = node.cluster.store.log
    payloads = log.read_payloads(log.lowest_offset, max_records=1 << 20, max_bytes=1 << 30)
    return sum(Record.FromString(p).type == EntryKind.CONFIG for p in payloads)


def _last_config(node: Node) -> bytes:
    """The value of the last configuration entry in ``node``'s log."""
    log = node.cluster.store.log
    payloads = log.read_payloads(log.lowest_offset, max_records=1 << 20, max_bytes=1 << 30)
    configs = [r for r in map(Record.FromString, payloads) if r.type == EntryKind.CONFIG]
    return configs[-1].value if configs else b""


def test_a_retried_fresh_join_is_not_removed_again(three: Cluster) -> None:
    leader = three.leader()
    victim = three.followers()[0]
    victim.stop()
    shutil.rmtree(victim.data_dir)
    wiped = Node(victim.data_dir, victim.name, join=leader.grpc_address)
    three.nodes.append(wiped)
    wiped.start()
    wait_until(lambda: not join_pending(str(wiped.data_dir)), 20, "the fresh join to be confirmed")
    wait_until(lambda: leader.is_voter(wiped), 20, "the wiped node to be a voter again")
    # The core takes a configuration when it appends it, a moment before the leader's own
    # write: count the entries once the promotion is in the leader's log.
    promoted = b"promote %d " % wiped.cluster.id
    wait_until(lambda: _last_config(leader).startswith(promoted), 20, "the promotion stored")
    incarnation = wiped.cluster.incarnation
    assert incarnation, "a fresh join carries a token"
    before = _config_entries(leader)

    def join(token: str) -> None:
        request = cluster_pb2.JoinRequest(
            node_id=wiped.name, rpc_addr=wiped.grpc_address, fresh=True, incarnation=token
        )
        _admin(leader, "Join", request, cluster_pb2.JoinResponse)

    join(incarnation)  # the same join again, as if its first answer had been lost
    assert _config_entries(leader) == before  # not removed, not re-added
    assert leader.is_voter(wiped)
    join("another-incarnation")  # a node wiped once more: removed, then added anew
    assert _config_entries(leader) >= before + 2
    wait_until(lambda: leader.is_voter(wiped), 20, "the re-added node to be a voter again")
