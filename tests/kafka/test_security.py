"""Security on the Kafka port (issue 14): TLS with client certificates mapped to the same
identities and ACL as the gRPC and HTTP ports, SASL/PLAIN and SCRAM-SHA-256/512 over TLS
for clients without a certificate, and plaintext refused, with real Kafka clients.

One server for the module: TLS (node certificate), a CA (client certificates verified), an
ACL and a SASL users file. alice (certificate) and sam (SASL) may produce and consume;
carol (certificate) may only consume; dave (certificate) may consume ``vis-*`` alone."""

from __future__ import annotations

import json
import logging
import signal
import socket
import ssl
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType
from kafka.errors import KafkaError as KpKafkaError
from typer.testing import CliRunner

from replog.cli import kafka_users
from replog.errors import ConfigError
from replog.security.certs import NODE_SUBJECT, CertificateAuthority
from replog.security.scram import MECHANISMS, derive, read_users, write_users
from replog.server.settings import ServerSettings
from tests.integration.conftest import ServerProcess, wait_until
from tests.kafka.conftest import KafkaServer
from tests.kafka.wire import request

POLICY = """\
p, alice, *, produce
p, alice, *, consume
p, alice, group:*, consume
p, sam, *, produce
p, sam, *, consume
p, carol, *, consume
p, dave, vis-*, consume
p, newbie, *, produce
"""
SAM_PASSWORD = "sam-secret"


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca(self) -> str:
        return str(self.dir / "ca.pem")

    def cert(self, name: str) -> str:
        return str(self.dir / f"{name}.pem")

    def key(self, name: str) -> str:
        return str(self.dir / f"{name}-key.pem")

    @property
    def users(self) -> str:
        return str(self.dir / "users")

    def settings(self) -> dict[str, Any]:
        return {
            "tls_cert": self.cert("node"),
            "tls_key": self.key("node"),
            "tls_ca": self.ca,
            "acl_policy": str(self.dir / "policy.csv"),
            "kafka_sasl_users": self.users,
        }


def _users(**passwords: str) -> dict[str, Any]:
    return {n: {m: derive(m, pw) for m in MECHANISMS} for n, pw in passwords.items()}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("kafka-pki")
    ca = CertificateAuthority()
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    issued = {"node": ca.issue(NODE_SUBJECT, sans=["localhost", "127.0.0.1"], server=True)}
    issued.update({name: ca.issue(name) for name in ("alice", "carol", "dave")})
    for name, cert in issued.items():
        (directory / f"{name}.pem").write_bytes(cert.cert_pem)
        (directory / f"{name}-key.pem").write_bytes(cert.key_pem)
    (directory / "policy.csv").write_text(POLICY)
    write_users(directory / "users", _users(sam=SAM_PASSWORD))
    return Pki(directory)


@pytest.fixture(scope="module")
def secure(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    server = KafkaServer(
        tmp_path_factory.mktemp("data"), kafka_addr="127.0.0.1:0", **pki.settings()
    )
    server.start()
    yield server
    server.stop()


def _topic(server: KafkaServer, name: str) -> str:
    server.create_topic(name)
    return name


def _end(server: KafkaServer, topic: str) -> int:
    assert server.agent is not None and server.agent.topics is not None
    return server.agent.topics.partition(topic, 0).high_watermark


def _cert_config(pki: Pki, name: str) -> dict[str, Any]:
    return {
        "security.protocol": "SSL",
        "ssl.ca.location": pki.ca,
        "ssl.certificate.location": pki.cert(name),
        "ssl.key.location": pki.key(name),
    }


def _sasl_config(pki: Pki, mechanism: str, user: str, password: str) -> dict[str, Any]:
    return {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": pki.ca,
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def _confluent_produce(address: str, topic: str, values: list[bytes], **config: Any) -> list[Any]:
    """Each value's delivery outcome: its offset, or its KafkaError."""
    outcomes: list[Any] = []
    producer = Producer({"bootstrap.servers": address, "message.timeout.ms": 8000, **config})

    def delivered(err: KafkaError | None, message: Any) -> None:
        outcomes.append(err if err is not None else message.offset())

    for value in values:
        producer.produce(topic, value, partition=0, on_delivery=delivered)
    producer.flush(10)
    return outcomes


def _confluent_consume(address: str, topic: str, count: int, **config: Any) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": address, "group.id": "unused", "enable.auto.commit": False, **config}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 10
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None:
                assert message.error() is None, message.error()
                values.append(message.value())
        return values
    finally:
        consumer.close()


def test_confluent_with_a_client_certificate_produces_and_consumes_as_its_identity(
    pki: Pki, secure: KafkaServer
) -> None:
    topic = _topic(secure, "tls-confluent")
    config = _cert_config(pki, "alice")
    assert _confluent_produce(secure.kafka_address, topic, [b"a", b"b"], **config) == [0, 1]
    assert _confluent_consume(secure.kafka_address, topic, 2, **config) == [b"a", b"b"]


def test_a_consume_only_identitys_produce_is_refused_and_appends_nothing(
    pki: Pki, secure: KafkaServer
) -> None:
    topic = _topic(secure, "tls-carol")
    outcomes = _confluent_produce(
        secure.kafka_address, topic, [b"no"], **_cert_config(pki, "carol")
    )
    assert [o.code() for o in outcomes] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert _end(secure, topic) == 0
    producer = KafkaProducer(
        bootstrap_servers=secure.kafka_address, security_protocol="SSL", ssl_cafile=pki.ca,
        ssl_certfile=pki.cert("carol"), ssl_keyfile=pki.key("carol"), retries=0,
        enable_idempotence=False,
    )  # fmt: skip
    try:
        with pytest.raises(KpKafkaError, match="TopicAuthorizationFailed"):
            producer.send(topic, b"no", partition=0).get(timeout=10)
    finally:
        producer.close(timeout=5)
    assert _end(secure, topic) == 0


def test_kafka_python_with_a_client_certificate_produces_and_consumes(
    pki: Pki, secure: KafkaServer
) -> None:
    topic = _topic(secure, "tls-kafka-python")
    tls = {"security_protocol": "SSL", "ssl_cafile": pki.ca,
           "ssl_certfile": pki.cert("alice"), "ssl_keyfile": pki.key("alice")}  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=secure.kafka_address, **tls)
    try:
        assert producer.send(topic, b"kp", partition=0).get(timeout=10).offset == 0
    finally:
        producer.close(timeout=5)
    _kafka_python_reads(secure, topic, [b"kp"], **tls)


def _kafka_python_reads(
    server: KafkaServer, topic: str, values: list[bytes], **config: Any
) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=server.kafka_address, enable_auto_commit=False,
        consumer_timeout_ms=5000, **config,
    )  # fmt: skip
    try:
        consumer.assign([KpTopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        got = [m.value for _, m in zip(values, consumer, strict=False)]
    finally:
        consumer.close()
    assert got == values


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_confluent_over_sasl_ssl_is_the_user_it_authenticated_as(
    pki: Pki, secure: KafkaServer, mechanism: str
) -> None:
    topic = _topic(secure, f"sasl-{mechanism.lower()}")
    config = _sasl_config(pki, mechanism, "sam", SAM_PASSWORD)
    assert _confluent_produce(secure.kafka_address, topic, [b"s1", b"s2"], **config) == [0, 1]
    assert _confluent_consume(secure.kafka_address, topic, 2, **config) == [b"s1", b"s2"]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_over_sasl_ssl_produces_and_consumes(
    pki: Pki, secure: KafkaServer, mechanism: str
) -> None:
    topic = _topic(secure, f"kp-sasl-{mechanism.lower()}")
    config = {"security_protocol": "SASL_SSL", "ssl_cafile": pki.ca, "sasl_mechanism": mechanism,
              "sasl_plain_username": "sam", "sasl_plain_password": SAM_PASSWORD}  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=secure.kafka_address, **config)
    try:
        assert producer.send(topic, b"kp-sasl", partition=0).get(timeout=10).offset == 0
    finally:
        producer.close(timeout=5)
    _kafka_python_reads(secure, topic, [b"kp-sasl"], **config)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_wrong_password_fails_authentication_and_appends_nothing(
    pki: Pki, secure: KafkaServer, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = _topic(secure, f"wrong-{mechanism.lower()}")
    errors: list[KafkaError] = []
    config = _sasl_config(pki, mechanism, "sam", "not-the-password")
    producer = Producer(
        {"bootstrap.servers": secure.kafka_address, "error_cb": errors.append, **config}
    )
    producer.produce(topic, b"never", partition=0)
    wait_until(lambda: producer.poll(0.05) >= 0 and errors, timeout=10, what="an auth error")
    producer.purge()
    producer.flush(1)
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert _end(secure, topic) == 0
    assert any("authentication from" in r.getMessage() for r in caplog.records)


def _tls_socket(secure: KafkaServer, pki: Pki) -> ssl.SSLSocket:
    host, port = secure.kafka_address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=pki.ca)
    raw = socket.create_connection((host, int(port)), timeout=10)
    return context.wrap_socket(raw, server_hostname=host)


def _exchange(sock: socket.socket, frame: bytes) -> bytes:
    sock.sendall(frame)
    size = struct.unpack(">i", sock.recv(4))[0]
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_a_connection_without_certificate_or_sasl_gets_only_the_sasl_apis(
    pki: Pki, secure: KafkaServer
) -> None:
    with _tls_socket(secure, pki) as sock:
        # SaslHandshake v1 for an unknown mechanism: UNSUPPORTED_SASL_MECHANISM (33) and the list
        answer = _exchange(sock, request(17, 1, 8, struct.pack(">h", 6) + b"GSSAPI"))
        assert answer[4:6] == struct.pack(">h", 33) and b"SCRAM-SHA-512" in answer
        # Metadata v1 of all topics (a null array) before authenticating: the server closes
        sock.sendall(request(3, 1, 7, struct.pack(">i", -1)))
        assert sock.recv(4096) == b""


def test_a_plaintext_client_is_refused_by_the_tls_port_in_one_log_line(
    secure: KafkaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="replog.kafka")
    host, port = secure.kafka_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request(18, 0, 1))
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        assert struct.pack(">i", 1) not in data[:8]  # no Kafka answer, whatever TLS alert
    lines = wait_until(
        lambda: [r for r in caplog.records if "TLS handshake" in r.getMessage()], timeout=5
    )
    assert len(lines) == 1 and lines[0].exc_info is None


def test_metadata_lists_only_the_topics_the_identity_may_consume(
    pki: Pki, secure: KafkaServer
) -> None:
    _topic(secure, "vis-one")
    _topic(secure, "hidden-one")
    config = {"bootstrap.servers": secure.kafka_address, **_cert_config(pki, "dave")}
    topics = AdminClient(config).list_topics(timeout=10).topics
    assert "vis-one" in topics and "hidden-one" not in topics
    named = AdminClient(config).list_topics("hidden-one", timeout=10).topics["hidden-one"]
    assert named.error is not None
    assert named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_group_the_identity_may_not_use_answers_group_authorization_failed(
    pki: Pki, secure: KafkaServer
) -> None:
    topic = _topic(secure, "vis-group")
    consumer = Consumer(
        {"bootstrap.servers": secure.kafka_address, "group.id": "daves",
         **_cert_config(pki, "dave")}
    )  # fmt: skip
    try:
        consumer.subscribe([topic])
        deadline, error = time.monotonic() + 10, None
        while error is None and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is not None:
                error = message.error()
        assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    finally:
        consumer.close()


def test_describe_configs_answers_a_topics_configs_in_kafka_names(
    kafka_server: KafkaServer,
) -> None:
    kafka_server.create_topic("configured")
    admin = AdminClient({"bootstrap.servers": kafka_server.kafka_address})
    futures = admin.describe_configs(
        [ConfigResource("topic", "configured"), ConfigResource("topic", "no-such-topic")]
    )
    found, missing = futures.values()
    configs = found.result(timeout=10)
    assert configs["retention.ms"].value == "-1"
    assert configs["max.message.bytes"].value == str(1024 * 1024)
    assert configs["message.timestamp.type"].value == "LogAppendTime"
    assert configs["message.timestamp.type"].is_read_only
    with pytest.raises(Exception, match="UNKNOWN_TOPIC_OR_PART"):
        missing.result(timeout=10)


def test_the_kafka_security_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="kafka_sasl_users needs TLS"):
        ServerSettings(kafka_addr="127.0.0.1:0", kafka_sasl_users="/users")
    ServerSettings(kafka_addr="127.0.0.1:0", tls_cert="c", tls_key="k", tls_ca="ca", acl_policy="p")


def test_sighup_reloads_the_users_file_of_a_serving_process(pki: Pki, tmp_path: Path) -> None:
    users = tmp_path / "users"
    write_users(users, _users(sam=SAM_PASSWORD))
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in pki.settings().items()]
    flags = [f for f in flags if not f.startswith("--kafka-sasl-users")]
    proc = ServerProcess(
        tmp_path / "data", tmp_path, "--kafka-addr", "127.0.0.1:0",
        f"--kafka-sasl-users={users}", *flags,
    )  # fmt: skip
    try:
        address = json.loads(proc.ready_file.read_text())["kafka_addr"]
        config = _sasl_config(pki, "SCRAM-SHA-256", "newbie", "fresh")
        errors: list[KafkaError] = []
        producer = Producer({"bootstrap.servers": address, "error_cb": errors.append, **config})
        producer.produce("default", b"x")
        wait_until(lambda: producer.poll(0.05) >= 0 and errors, timeout=10, what="refused")
        producer.purge()
        producer.flush(1)
        write_users(users, _users(sam=SAM_PASSWORD, newbie="fresh"))
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: b"Kafka users reloaded" in proc.log_path.read_bytes(), timeout=10)
        outcomes = _confluent_produce(address, "default", [b"welcome"], **config)
        assert len(outcomes) == 1 and isinstance(outcomes[0], int), proc.log_path.read_text()[
            -3000:
        ]
    finally:
        proc.kill()


def test_kafka_python_describes_a_topics_configs(kafka_server: KafkaServer) -> None:
    kafka_server.create_topic("kp-configured")
    admin = KafkaAdminClient(bootstrap_servers=kafka_server.kafka_address)
    try:
        answer = admin.describe_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, "kp-configured")]
        )
    finally:
        admin.close()
    configs = answer["topic"]["kp-configured"]  # type: ignore[index]
    assert configs["retention.ms"]["value"] == "-1"
    assert configs["max.message.bytes"]["value"] == str(1024 * 1024)


def test_kafka_user_add_writes_a_0600_file_from_stdin_without_the_password(tmp_path: Path) -> None:
    users = tmp_path / "users"
    runner = CliRunner()
    result = runner.invoke(kafka_users.app, ["add", "eve", "-f", str(users)], input="pw-e\n")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(users.stat().st_mode) == 0o600 and "pw-e" not in users.read_text()
    credential = read_users(users)["eve"]["SCRAM-SHA-512"]
    assert credential.matches("pw-e") and not credential.matches("pw-x")
    bad = runner.invoke(kafka_users.app, ["add", "e ve", "-f", str(users)], input="x\n")
    assert bad.exit_code != 0 and set(read_users(users)) == {"eve"}
