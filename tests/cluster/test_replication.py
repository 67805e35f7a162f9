"""A 3-node in-process cluster: bootstrap, election, replication, follower produce, failover."""

from __future__ import annotations

import time

from replog.client import Client
from tests.cluster.conftest import Cluster, wait_until


def _payloads(node, upto: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    log = node.cluster.store.log
    out: list[bytes] = []
    offset = log.lowest_offset
    while offset < upto:
        chunk = log.read_payloads(offset, max_records=upto - offset)
        out.extend(chunk)
        offset += len(chunk)
    return out


def test_three_nodes_bootstrap_elect_replicate_and_store_identical_logs(three: Cluster) -> None:
    leader = three.leader()
    with Client(leader.grpc_address) as client:
        base = client.produce_batch([b"r%d" % i for i in range(100)])[0]
    commit = leader.cluster.node.raft.log.committed
    assert commit >= base + 99
    for node in three.nodes:
        wait_until(lambda n=node: n.cluster.node.high_watermark > commit, 10, "replication")
    expected = _payloads(leader, commit + 1)
    for node in three.nodes:
        assert _payloads(node, commit + 1) == expected
    with Client(three.followers()[0].grpc_address) as client:
        records = client.consume_batch(0, max_records=1000).records
    assert [r.value for r in records] == [b"r%d" % i for i in range(100)]


def test_producing_to_a_follower_reaches_the_leader(three: Cluster) -> None:
    follower = three.followers()[0]
    with Client(follower.grpc_address) as client:
        offset = client.produce(b"via follower")
        assert client.consume(offset).value == b"via follower"
    servers = Client(follower.grpc_address).servers()
    assert sorted(s.id for s in servers) == ["n1", "n2", "n3"]
    assert [s.id for s in servers if s.is_leader] == [three.leader().name]


def test_leader_stop_elects_a_new_leader_and_producing_resumes(three: Cluster) -> None:
    old = three.leader()
    with Client(old.grpc_address) as client:
        client.produce(b"before")
    survivor = next(n for n in three.nodes if n is not old)
    started = time.monotonic()
    old.stop()
    new = three.leader(timeout=10)
    failover_s = time.monotonic() - started
    print(f"failover took {failover_s:.2f} s")
    assert new is not old
    with Client(survivor.grpc_address) as client:
        offset = client.produce(b"after")
        values = [r.value for r in client.consume_batch(0, max_records=100).records]
    assert values == [b"before", b"after"]
    assert offset > 0
