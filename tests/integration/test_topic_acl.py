"""Topic-level ACLs on a real TLS server: rule objects are topic patterns (issue 12).

billing may consume orders.*; topics-admin may administer and read orders.*; writer may
produce to orders.*; ops holds every action on every topic; alice has the rules written
before topics existed (object *), which keep meaning every topic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from replog.security.certs import NODE_SUBJECT, CertificateAuthority
from replog.security.tls import TLSConfig, grpc_channel_credentials
from replog.v1 import log_pb2, log_pb2_grpc
from replog.v1.record_pb2 import Record
from tests.integration.conftest import ThreadedServer
from tests.integration.test_security import Pki, https

POLICY = """\
p, billing, orders.*, consume
p, topics-admin, orders.*, admin
p, topics-admin, orders.*, consume
p, writer, orders.*, produce
p, ops, *, admin
p, ops, *, produce
p, ops, *, consume
p, alice, *, produce
p, alice, *, consume
p, replog-node, *, replicate
"""
IDENTITIES = ("billing", "topics-admin", "writer", "ops", "alice")
RECORD = {"record": {"value": "eA=="}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("topic-pki")
    ca = CertificateAuthority()
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    node = ca.issue(NODE_SUBJECT, sans=["localhost", "127.0.0.1"], server=True)
    for name, issued in [("node", node), *((n, ca.issue(n)) for n in IDENTITIES)]:
        (directory / f"{name}.pem").write_bytes(issued.cert_pem)
        (directory / f"{name}-key.pem").write_bytes(issued.key_pem)
    return Pki(directory)


@pytest.fixture
def secure(pki: Pki, tmp_path: Path, server_factory: Callable[..., ThreadedServer]) -> Any:
    policy = tmp_path / "policy.csv"
    policy.write_text(POLICY)
    server = server_factory(
        tls_cert=pki.cert("node"), tls_key=pki.key("node"), tls_ca=pki.ca, acl_policy=str(policy)
    )
    ops = pki.https("ops")
    for name in ("orders.eu", "payments"):
        status, _ = https(server, ops, "POST", "/v1/topics", {"name": name, "partitions": 2})
        assert status == 201
        path = f"/v1/topics/{name}/partitions/0/records"
        assert https(server, ops, "POST", path, RECORD)[0] == 200
    return server


def call(
    pki: Pki, server: ThreadedServer, who: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    return https(server, pki.https(who), method, path, body)


def topic_names(pki: Pki, server: ThreadedServer) -> list[str]:
    status, body = call(pki, server, "ops", "GET", "/v1/topics")
    assert status == 200
    return [t["name"] for t in body["topics"]]


def records_everywhere(pki: Pki, server: ThreadedServer) -> int:
    """Every record of every partition of every topic, as ops sees them."""
    _, body = call(pki, server, "ops", "GET", "/v1/topics")
    return sum(p["next_offset"] for t in body["topics"] for p in t["partitions"])


def assert_denied(got: tuple[int, Any], says: str) -> None:
    status, body = got
    assert (status, body["error"]["code"]) == (403, "PERMISSION_DENIED"), body
    assert says in body["error"]["message"]


# -- HTTP ---------------------------------------------------------------------------------------


def test_a_topic_pattern_grant_reads_matching_topics_only(pki: Pki, secure: Any) -> None:
    status, body = call(pki, secure, "billing", "GET", "/v1/topics/orders.eu/partitions/0/records")
    assert status == 200 and len(body["records"]) == 1
    assert call(pki, secure, "billing", "GET", "/v1/topics/orders.eu")[0] == 200
    assert_denied(
        call(pki, secure, "billing", "GET", "/v1/topics/payments/partitions/0/records/0"),
        "'billing' may not consume topic 'payments'",
    )
    assert_denied(call(pki, secure, "billing", "GET", "/v1/topics/payments"), "'payments'")
    assert_denied(call(pki, secure, "billing", "GET", "/v1/records"), "topic 'default'")
    # Cluster-wide reads: any topic grant is enough to find the servers.
    assert call(pki, secure, "billing", "GET", "/v1/servers")[0] == 200


def test_listing_topics_shows_only_those_the_caller_may_consume(pki: Pki, secure: Any) -> None:
    status, body = call(pki, secure, "billing", "GET", "/v1/topics")
    assert status == 200 and [t["name"] for t in body["topics"]] == ["orders.eu"]
    assert topic_names(pki, secure) == ["default", "orders.eu", "payments"]
    assert_denied(call(pki, secure, "writer", "GET", "/v1/topics"), "may not consume any topic")


def test_a_consume_grant_neither_writes_nor_administers(pki: Pki, secure: Any) -> None:
    before = records_everywhere(pki, secure)
    for method, path, body in [
        ("POST", "/v1/topics/orders.eu/partitions/0/records", RECORD),
        ("POST", "/v1/topics/orders.eu/records", RECORD),
        ("POST", "/v1/topics", {"name": "orders.new"}),
        ("PATCH", "/v1/topics/orders.eu", {"partitions": 4}),
        ("DELETE", "/v1/topics/orders.eu", None),
    ]:
        status, answer = call(pki, secure, "billing", method, path, body)
        assert (status, answer["error"]["code"]) == (403, "PERMISSION_DENIED"), (method, path)
    assert topic_names(pki, secure) == ["default", "orders.eu", "payments"]
    _, described = call(pki, secure, "ops", "GET", "/v1/topics/orders.eu")
    assert len(described["partitions"]) == 2
    assert records_everywhere(pki, secure) == before


def test_admin_on_a_pattern_administers_matching_topics_only(pki: Pki, secure: Any) -> None:
    status, body = call(pki, secure, "topics-admin", "POST", "/v1/topics", {"name": "orders.x"})
    assert status == 201 and body["name"] == "orders.x"
    assert_denied(
        call(pki, secure, "topics-admin", "POST", "/v1/topics", {"name": "payments.x"}),
        "'topics-admin' may not admin topic 'payments.x'",
    )
    patch = {"config": {"retention_ms": "60000"}}
    assert call(pki, secure, "topics-admin", "PATCH", "/v1/topics/orders.x", patch)[0] == 200
    assert_denied(call(pki, secure, "topics-admin", "PATCH", "/v1/topics/payments", patch), "")
    assert_denied(call(pki, secure, "topics-admin", "DELETE", "/v1/topics/payments"), "")
    assert call(pki, secure, "topics-admin", "DELETE", "/v1/topics/orders.x")[0] == 204
    assert topic_names(pki, secure) == ["default", "orders.eu", "payments"]
    # Topic admin is not cluster admin.
    assert_denied(call(pki, secure, "topics-admin", "POST", "/v1/cluster:transfer-leader", {}), "")


def test_a_produce_grant_on_a_pattern_writes_matching_topics_only(pki: Pki, secure: Any) -> None:
    status, body = call(pki, secure, "writer", "POST", "/v1/topics/orders.eu/records", RECORD)
    assert status == 200 and body["partition"] in (0, 1)
    before = records_everywhere(pki, secure)
    assert_denied(
        call(
            pki,
            secure,
            "writer",
            "POST",
            "/v1/topics/payments/records:batch",
            {"records": [RECORD["record"]]},
        ),
        "'writer' may not produce topic 'payments'",
    )
    assert_denied(call(pki, secure, "writer", "POST", "/v1/records", RECORD), "'default'")
    assert records_everywhere(pki, secure) == before


def test_rules_for_every_object_keep_granting_every_topic(pki: Pki, secure: Any) -> None:
    assert call(pki, secure, "alice", "POST", "/v1/records", RECORD) == (200, {"offset": 0})
    assert call(pki, secure, "alice", "POST", "/v1/topics/payments/records", RECORD)[0] == 200
    status, body = call(pki, secure, "alice", "GET", "/v1/topics")
    assert status == 200
    assert [t["name"] for t in body["topics"]] == ["default", "orders.eu", "payments"]
    assert_denied(call(pki, secure, "alice", "POST", "/v1/topics", {"name": "mine"}), "admin")


# -- gRPC ---------------------------------------------------------------------------------------


@pytest.fixture
def stub(pki: Pki, secure: Any) -> Iterator[Callable[[str], log_pb2_grpc.LogStub]]:
    channels: list[grpc.Channel] = []

    def make(who: str) -> log_pb2_grpc.LogStub:
        creds = grpc_channel_credentials(TLSConfig(pki.cert(who), pki.key(who), pki.ca))
        channel = grpc.secure_channel(secure.grpc_address, creds)
        channels.append(channel)
        return log_pb2_grpc.LogStub(channel)

    yield make
    for channel in channels:
        channel.close()


def _code(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_grpc_reads_are_checked_against_the_requested_topic(
    pki: Pki, secure: Any, stub: Callable[[str], log_pb2_grpc.LogStub]
) -> None:
    billing = stub("billing")
    batch = log_pb2.ConsumeBatchRequest(topic="orders.eu", max_records=10)
    assert _code(lambda: billing.ConsumeBatch(batch, timeout=5)) == grpc.StatusCode.OK
    denied = grpc.StatusCode.PERMISSION_DENIED
    for topic in ("payments", ""):  # "" is the default topic
        request = log_pb2.ConsumeBatchRequest(topic=topic, max_records=10)
        assert _code(lambda r=request: billing.ConsumeBatch(r, timeout=5)) == denied
        one = log_pb2.ConsumeRequest(topic=topic)
        assert _code(lambda r=one: billing.Consume(r, timeout=5)) == denied
        stream = log_pb2.ConsumeBatchRequest(topic=topic)
        assert _code(lambda r=stream: next(billing.ConsumeBatchStream(r, timeout=5))) == denied
    servers = log_pb2.GetServersRequest()
    assert _code(lambda: billing.GetServers(servers, timeout=5)) == grpc.StatusCode.OK


def test_grpc_produce_is_checked_against_the_requested_topic_and_changes_nothing_refused(
    pki: Pki, secure: Any, stub: Callable[[str], log_pb2_grpc.LogStub]
) -> None:
    writer = stub("writer")
    record = Record(value=b"w")
    ok = log_pb2.ProduceRequest(record=record, topic="orders.eu", partition=1)
    assert _code(lambda: writer.Produce(ok, timeout=5)) == grpc.StatusCode.OK
    before = records_everywhere(pki, secure)
    denied = grpc.StatusCode.PERMISSION_DENIED
    for topic in ("payments", ""):
        one = log_pb2.ProduceRequest(record=record, topic=topic)
        assert _code(lambda r=one: writer.Produce(r, timeout=5)) == denied
        many = log_pb2.ProduceBatchRequest(records=[record] * 3, topic=topic)
        assert _code(lambda r=many: writer.ProduceBatch(r, timeout=5)) == denied
    assert records_everywhere(pki, secure) == before


def test_a_produce_stream_ends_at_the_first_message_for_a_refused_topic(
    pki: Pki, secure: Any, stub: Callable[[str], log_pb2_grpc.LogStub]
) -> None:
    writer = stub("writer")
    before = records_everywhere(pki, secure)
    messages = [
        log_pb2.ProduceRequest(record=Record(value=b"a"), topic="orders.eu", partition=0),
        log_pb2.ProduceRequest(record=Record(value=b"b"), topic="orders.eu", partition=0),
        log_pb2.ProduceRequest(record=Record(value=b"refused"), topic="payments"),
        log_pb2.ProduceRequest(record=Record(value=b"after"), topic="orders.eu", partition=0),
    ]
    answers = writer.ProduceStream(iter(messages), timeout=10)
    got = []
    with pytest.raises(grpc.RpcError) as refused:
        for answer in answers:
            got.append(answer.offset)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'writer' may not produce topic 'payments'" in refused.value.details()
    assert len(got) == 2  # the messages before the refused one are answered
    assert records_everywhere(pki, secure) == before + 2  # and only they are appended


def test_a_produce_stream_of_a_caller_who_may_produce_nowhere_is_refused_at_once(
    pki: Pki, secure: Any, stub: Callable[[str], log_pb2_grpc.LogStub]
) -> None:
    billing = stub("billing")
    answers = billing.ProduceStream(iter([]), timeout=10)
    with pytest.raises(grpc.RpcError) as refused:
        list(answers)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not produce any topic" in refused.value.details()
