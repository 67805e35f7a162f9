"""Raft traffic a node must not step: messages for another node, and batches of another
cluster, delivered through the node's real ``Raft/Stream`` receive path (issue item 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import grpc
import pytest

from replog.cluster.cluster_node import ClusterNode
from replog.cluster.log_store import ReplogLogStore
from replog.cluster.members import raft_id
from replog.cluster.transport import RAFT_SERVICE
from replog.raft.messages import Entry, EntryKind, HardState, Membership, MessageType
from replog.storage import LogConfig
from replog.v1 import cluster_pb2, raft_pb2
from tests.cluster.conftest import Cluster
from tests.integration.conftest import ThreadedServer, wait_until

N1, N2, N3 = raft_id("n1"), raft_id("n2"), raft_id("n3")
CLUSTER = "c0ffee"


@pytest.fixture
def n2(tmp_path: Path) -> Iterator[ThreadedServer]:
    """Member n2 of {n1, n2, n3} alone, holding entries 1..3 of term 1, none committed yet;
    its election timeout is far beyond the test, so term 1 stays current."""
    data_dir = tmp_path / "n2"
    voters = Membership(frozenset({N1, N2, N3}))
    store = ReplogLogStore(data_dir, LogConfig(), bootstrap=voters)
    store.append([Entry(1, i, EntryKind.NOOP, b"") for i in (1, 2, 3)])
    store.save_hard_state(HardState(1, None, 0, voters))
    store.close()
    (data_dir / "cluster-id").write_text(CLUSTER + "\n")
    node = ThreadedServer(data_dir, server_id="n2", raft_tick_ms=50, election_ticks=1000)
    node.start()
    yield node
    node.stop()


def _heartbeat(dst: int, commit: int) -> raft_pb2.RaftMessage:
    return raft_pb2.RaftMessage(type=MessageType.HEARTBEAT, src=N1, dst=dst, term=1, commit=commit)


def _send(node: ThreadedServer, *batches: raft_pb2.RaftBatch) -> None:
    """One ``Raft/Stream`` call carrying ``batches`` in order, as a peer's transport does."""
    with grpc.insecure_channel(node.grpc_address) as channel:
        call = channel.stream_unary(
            f"/{RAFT_SERVICE}/Stream",
            request_serializer=raft_pb2.RaftBatch.SerializeToString,
            response_deserializer=raft_pb2.RaftAck.FromString,
        )
        call(iter(batches), timeout=10)


def _commit(node: ThreadedServer) -> int:
    return node.call(_committed(node))


def _cluster(node: ThreadedServer) -> ClusterNode:
    assert node.agent is not None and node.agent.cluster is not None
    return node.agent.cluster


async def _committed(node: ThreadedServer) -> int:
    return _cluster(node).node.raft.log.committed


def _dropped(node: ThreadedServer, reason: str) -> str:
    """The node's count of Raft messages dropped for ``reason``, from its /metrics."""
    with urlopen(f"http://{node.http_address}/metrics", timeout=5) as response:
        text = response.read().decode()
    sample = f'replog_raft_messages_dropped_total{{reason="{reason}"}}'
    lines = [line for line in text.splitlines() if line.startswith(sample)]
    return lines[0].split()[-1] if lines else "none"


def test_a_heartbeat_for_another_node_is_dropped_not_stepped(n2: ThreadedServer) -> None:
    misdirected = raft_pb2.RaftBatch(from_id="n1", cluster_id=CLUSTER)
    misdirected.messages.append(_heartbeat(N3, commit=3))  # n3 holds 1..3; n2's are unverified
    honest = raft_pb2.RaftBatch(from_id="n1", cluster_id=CLUSTER)
    honest.messages.append(_heartbeat(N2, commit=1))
    _send(n2, misdirected, honest)
    wait_until(lambda: _commit(n2) >= 1, 10, "n2 to step the heartbeat addressed to it")
    assert _commit(n2) == 1, "n2 committed entries on the word of a message for n3"
    assert _dropped(n2, "destination") == "1.0"


def test_a_batch_of_another_cluster_is_dropped_not_stepped(n2: ThreadedServer) -> None:
    foreign = raft_pb2.RaftBatch(from_id="n1", from_addr="127.0.0.1:9", cluster_id="another")
    foreign.messages.append(_heartbeat(N2, commit=3))
    honest = raft_pb2.RaftBatch(from_id="n1", cluster_id=CLUSTER)
    honest.messages.append(_heartbeat(N2, commit=1))
    _send(n2, foreign, honest)
    wait_until(lambda: _commit(n2) >= 1, 10, "n2 to step the heartbeat of its own cluster")
    assert _commit(n2) == 1, "n2 committed entries on the word of another cluster's leader"
    assert _cluster(n2).book.address(N1) is None  # nor learnt an address from it
    assert _dropped(n2, "cluster") == "1.0"


def _install(node: ThreadedServer, *chunks: raft_pb2.SnapshotChunk) -> bool:
    with grpc.insecure_channel(node.grpc_address) as channel:
        call = channel.stream_unary(
            f"/{RAFT_SERVICE}/InstallSnapshot",
            request_serializer=raft_pb2.SnapshotChunk.SerializeToString,
            response_deserializer=raft_pb2.SnapshotAck.FromString,
        )
        return bool(call(iter(chunks), timeout=10).ok)


def test_a_snapshot_of_another_cluster_or_for_another_node_is_refused(n2: ThreadedServer) -> None:
    def stream(cluster_id: str, dst: int) -> list[raft_pb2.SnapshotChunk]:
        meta = raft_pb2.RaftSnapshotMeta(index=50, term=1, config=raft_pb2.RaftMembership(
            voters=[N1, N2, N3]))  # fmt: skip
        message = raft_pb2.RaftMessage(
            type=MessageType.SNAPSHOT, src=N1, dst=dst, term=1, snapshot=meta
        )
        first = raft_pb2.SnapshotChunk(
            from_id="n1", first_offset=1, cluster_id=cluster_id,
            address_book=b'{"n1": "127.0.0.1:9"}',
        )  # fmt: skip
        return [first, raft_pb2.SnapshotChunk(message=message)]

    assert not _install(n2, *stream("another", N2))
    assert _cluster(n2).book.address(N1) is None  # nothing learnt from another cluster
    assert not _install(n2, *stream(CLUSTER, N3))
    assert _dropped(n2, "cluster") == "1.0" and _dropped(n2, "destination") == "1.0"
    assert _commit(n2) == 0  # neither snapshot was installed
    assert not [p for p in n2.data_dir.iterdir() if p.name.startswith("snapshot")]


def test_members_share_the_bootstrapped_cluster_id_and_a_join_of_another_is_refused(
    three: Cluster,
) -> None:
    ids = {(n.data_dir / "cluster-id").read_text().strip() for n in three.nodes}
    assert len(ids) == 1 and len(ids.pop()) == 32  # drawn by n1, learnt by the joiners
    leader = three.leader()
    request = cluster_pb2.JoinRequest(node_id="n9", rpc_addr="127.0.0.1:9", cluster_id="other")
    with grpc.insecure_channel(leader.grpc_address) as channel:
        join = channel.unary_unary(
            "/replog.v1.Cluster/Join",
            request_serializer=cluster_pb2.JoinRequest.SerializeToString,
            response_deserializer=cluster_pb2.JoinResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as caught:
            join(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "another cluster" in str(caught.value.details())
    assert raft_id("n9") not in leader.cluster.node.raft.config.members()
