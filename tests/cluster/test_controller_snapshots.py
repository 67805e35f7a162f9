"""The controller log (topic ``default``/0) under retention, made safe by controller
snapshots (docs/multiraft.md, "Controller snapshots").

- a node whose controller log lost its first segments to retention restarts with every
  topic and config as before, from a snapshot and the entries after it;
- three ``replog serve`` processes with tiny segments and retention on ``default``: old
  segments of default/0 go on every replica, a follower killed with SIGKILL restarts and
  catches up, a new node joins and is caught up by a snapshot of the controller group;
  every node ends with the same controller state (rebuilt from each data directory after
  the stop), no acknowledged record of another topic is lost, and a node whose snapshots
  are all damaged refuses to start with a clear message.
"""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest

from replog.broker.model import TopicDescription
from replog.client import Client
from replog.client.admin import topic_from
from replog.cluster.controller_snapshot import encode_state
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.metadata import Metadata
from replog.cluster.raft_node import RaftNode
from replog.storage.inspect import list_segments
from replog.v1 import admin_pb2, admin_pb2_grpc
from tests.cluster.conftest import Cluster, Node, ProcCluster, ProcNode, wait_until

pytestmark = pytest.mark.timeout(90)

SMALL = {"segment_bytes": 4096, "max_record_bytes": 1024, "retention_check_interval_ms": 3_600_000}
RETAIN_DEFAULT = {"retention.bytes": "8192"}


def _views(client: Client) -> dict[str, tuple[int, int, dict[str, str]]]:
    """Every topic's partitions, replication factor and config overrides as described."""
    topics: list[TopicDescription] = client.list_topics()
    return {t.name: (len(t.partitions), t.replication_factor, dict(t.config)) for t in topics}


def _topic_changes(client: Client, first: int, count: int) -> None:
    for i in range(first, first + count):
        config = {"retention.ms": str(60_000 + i)}
        client.create_topic(f"t{i}", 1, replication_factor=1, config=config)
        if i % 2:
            client.alter_topic_config(f"t{i}", {"retention.bytes": "1000000"})
        if i % 3 == 2:
            client.delete_topic(f"t{i - 1}")


def _fill_default(client: Client, count: int, tag: bytes) -> None:
    for start in range(0, count, 10):
        client.produce_batch([tag + b"%05d" % i + b"." * 90 for i in range(start, start + 10)])


def _controller(node: Node) -> Metadata:
    return node.cluster.topics_host.metadata


def test_a_node_restarts_with_its_topics_after_retention_deleted_the_controller_log_start(
    cluster: Cluster,
) -> None:
    [node] = cluster.bootstrap(1, **SMALL)
    with Client(node.grpc_address) as client:
        _topic_changes(client, 0, 6)
        first_create = _controller(node).state.topics["t0"].topic_id
        client.alter_topic_config("default", RETAIN_DEFAULT)
        _fill_default(client, 200, b"d")
        deleted = node.call(node.cluster.topics_host.apply_retention())
        lowest = node.cluster.store.log.lowest_offset
        assert deleted > 0 and lowest > first_create  # the topic's creation entry is gone
        _topic_changes(client, 6, 4)  # entries after the snapshot retention wrote
        views = _views(client)
    state = encode_state(_controller(node).state)
    snapshots = _controller(node).snapshots
    node.stop()
    newest, older = snapshots.indexes()  # the one written at the stop, and retention's
    assert older >= lowest - 1
    snapshots.path(newest).unlink()  # so the restart folds the entries after `older`
    again = cluster.start_node("n1", **SMALL)
    wait_until(again.is_leader, 10, "the restarted node to lead")
    assert encode_state(_controller(again).state) == state
    assert again.cluster.store.log.lowest_offset == lowest
    with Client(again.grpc_address) as client:
        assert _views(client) == views
        client.produce(b"after", topic="t9")
        assert client.consume_batch(0, topic="t9").records[0].value == b"after"


# -- three processes ----------------------------------------------------------------------

PROC_SMALL = (
    "--segment-bytes", "4096", "--max-record-bytes", "1024",
    "--retention-check-interval-ms", "200", "--leader-balance-interval-ms", "300",
)  # fmt: skip
KEEP = "keep"  # a topic whose acknowledged records must all be there at the end


def _first_segment(node: ProcNode) -> int:
    """The base offset of the oldest segment of ``node``'s controller log on disk."""
    return min(s.base for s in list_segments(str(node.data_dir / "log")))


def _views_of(node: ProcNode) -> dict[str, tuple[int, int, dict[str, str]]]:
    """``_views`` as ``node`` itself answers them (its own metadata; no client routing)."""
    with grpc.insecure_channel(node.grpc_address) as channel:
        answer = admin_pb2_grpc.AdminStub(channel).ListTopics(admin_pb2.ListTopicsRequest())
    topics = [topic_from(info) for info in answer.topics]
    return {t.name: (len(t.partitions), t.replication_factor, dict(t.config)) for t in topics}


def _rebuilt_state(data_dir: Path) -> bytes:
    """The controller state a restart of the stopped node at ``data_dir`` would start
    with, encoded: what its own snapshots and log give."""
    store = ReplogLogStore(data_dir)
    try:
        metadata = Metadata(RaftNode(store, 1, random.Random()), store, lambda node: None)
        metadata.rebuild()
        return encode_state(metadata.state)
    finally:
        store.close()


def _produce_keep(client: Client, acked: dict[int, bytes], count: int, tag: str) -> None:
    for start in range(0, count, 10):
        values = [f"{tag}-{i}".encode().ljust(80, b".") for i in range(start, start + 10)]
        base, n = client.produce_batch(values, topic=KEEP, partition=0)
        acked.update((base + i, v) for i, v in enumerate(values[:n]))


def _kept(client: Client) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while True:
        records = client.consume_batch(offset, topic=KEEP, max_records=500).records
        if not records:
            return out
        out.update((r.offset, r.value) for r in records)
        offset = records[-1].offset + 1


def test_default_under_retention_keeps_every_node_on_the_same_metadata_through_kill_and_join(
    direct_procs: ProcCluster,
) -> None:
    procs = direct_procs
    procs.bootstrap(3, *PROC_SMALL)
    acked: dict[int, bytes] = {}
    with Client(procs.addresses(), timeout=10) as client:
        client.create_topic(KEEP, 1, replication_factor=3)
        client.alter_topic_config("default", RETAIN_DEFAULT)
        _topic_changes(client, 0, 6)
        _produce_keep(client, acked, 60, "a")
        _fill_default(client, 300, b"a")
    wait_until(lambda: all(_first_segment(n) > 20 for n in procs.up()), 20, "default/0 retention")
    leader = procs.leader()
    victim = procs.nodes[next(n for n in procs.names if n != leader)]
    victim.kill()  # SIGKILL, by PID
    held = max(s.base for s in list_segments(str(victim.data_dir / "log"))) + 64  # >= its last
    with Client(procs.addresses(), timeout=10) as client:
        _topic_changes(client, 6, 6)
        _produce_keep(client, acked, 60, "b")
        _fill_default(client, 300, b"b")
    wait_until(lambda: all(_first_segment(n) > held for n in procs.up()), 20, "deleted past it")
    victim.start()
    joiner = procs.node("n4").start("--join", procs.nodes[procs.names[0]].grpc_address)
    procs.wait_voters(4)
    with Client(procs.addresses(), timeout=10) as client:
        _topic_changes(client, 12, 3)
        _produce_keep(client, acked, 30, "c")
        views = _views(client)
    procs.wait_converged(timeout=30)
    assert _first_segment(joiner) > 20  # it never had the first entries: a snapshot
    assert _first_segment(victim) > held  # caught up by a snapshot too
    for node in procs.up():
        assert _views_of(node) == views, node.name
    with Client(procs.addresses(), timeout=10) as client:
        assert _kept(client) == acked
    procs.stop_all()
    states = {n.name: _rebuilt_state(n.data_dir) for n in procs.nodes.values()}
    assert len(set(states.values())) == 1, states
    for path in (joiner.data_dir).glob("controller-*.snapshot"):
        path.write_bytes(path.read_bytes()[:-1])  # every snapshot of the joiner damaged
    joiner.spawn()
    assert joiner.wait_exited(20) == 1
    assert "cannot be rebuilt" in joiner.tail(40)
