"""A 3-node cluster with mutual TLS between nodes and an ACL in which the node identity holds
only ``replicate``: it elects, nodes join, a follower forwards produces, and a client
identity without ``replicate`` cannot call the Raft service or join."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from replog.client import Client
from replog.security.certs import NODE_SUBJECT, CertificateAuthority, IssuedCert
from replog.security.tls import TLSConfig, grpc_channel_credentials
from replog.v1 import cluster_pb2, log_pb2, raft_pb2
from tests.cluster.conftest import Cluster, wait_until

POLICY = """\
p, replog-node, *, replicate
p, alice, *, produce
p, alice, *, consume
"""


def _save(directory: Path, name: str, issued: IssuedCert) -> None:
    (directory / f"{name}.pem").write_bytes(issued.cert_pem)
    (directory / f"{name}-key.pem").write_bytes(issued.key_pem)


def _unary(channel: grpc.Channel, method: str, response: type) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        method,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,  # type: ignore[attr-defined]
    )


def test_a_mutual_tls_cluster_with_an_acl_elects_replicates_and_guards_node_traffic(
    cluster: Cluster, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = CertificateAuthority()
    (pki / "ca.pem").write_bytes(ca.cert_pem)
    _save(pki, "node", ca.issue(NODE_SUBJECT, sans=["127.0.0.1", "localhost"], server=True))
    _save(pki, "alice", ca.issue("alice"))
    (pki / "acl.csv").write_text(POLICY)
    secure = {
        "tls_cert": str(pki / "node.pem"),
        "tls_key": str(pki / "node-key.pem"),
        "tls_ca": str(pki / "ca.pem"),
        "acl_policy": str(pki / "acl.csv"),
    }
    cluster.bootstrap(3, **secure)  # joining needs only replicate
    leader, follower = cluster.leader(), cluster.followers()[0]
    tls = {"ca": pki / "ca.pem", "cert": pki / "alice.pem", "key": pki / "alice-key.pem"}
    with Client(leader.grpc_address, **tls) as client:  # type: ignore[arg-type]
        offset = client.produce(b"secret")
        assert client.consume(offset, min_offset=offset).value == b"secret"

    alice = grpc_channel_credentials(
        TLSConfig(str(pki / "alice.pem"), str(pki / "alice-key.pem"), str(pki / "ca.pem"))
    )
    with grpc.secure_channel(follower.grpc_address, alice) as channel:
        # a produce sent to a follower is forwarded to the leader as the node (replicate)
        produce = _unary(channel, "/replog.v1.Log/ProduceBatch", log_pb2.ProduceBatchResponse)
        request = log_pb2.ProduceBatchRequest(records=[{"value": b"via follower"}])
        assert produce(request, timeout=10).base_offset > offset
        # alice holds no replicate: Raft traffic and joining are refused
        refused = [
            (_unary(channel, "/replog.v1.Raft/Forward", log_pb2.ProduceBatchResponse), request),
            (
                _unary(channel, "/replog.v1.Cluster/Join", cluster_pb2.JoinResponse),
                cluster_pb2.JoinRequest(node_id="evil", rpc_addr="127.0.0.1:1"),
            ),
            (
                _unary(channel, "/replog.v1.Cluster/Remove", cluster_pb2.RemoveResponse),
                cluster_pb2.RemoveRequest(node_id=leader.name),
            ),
        ]
        for call, message in refused:
            with pytest.raises(grpc.RpcError) as denied:
                call(message, timeout=5)
            assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        stream = channel.stream_unary(
            "/replog.v1.Raft/Stream",
            request_serializer=raft_pb2.RaftBatch.SerializeToString,
            response_deserializer=raft_pb2.RaftAck.FromString,
        )
        with pytest.raises(grpc.RpcError) as denied:
            stream(iter([raft_pb2.RaftBatch(from_id="evil")]), timeout=5)
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    wait_until(lambda: all(n.cluster.node.high_watermark > offset + 1 for n in cluster.nodes), 10)
    assert sorted(m[1] for m in leader.cluster.members()) == ["n1", "n2", "n3"]
