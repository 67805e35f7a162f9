"""Mutual TLS on both APIs, identities from client certificates, and the ACL (issue #4).

Every server here runs with TLS (node certificate), a CA (client certificates required) and
an ACL: alice may produce and consume, carol may only consume, mallory has a valid
certificate but no rule. Certificates are made in the test with CertificateAuthority.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from typer.testing import CliRunner

from replog import (
    Client,
    PermissionDeniedError,
    Producer,
    ReplogError,
    UnauthenticatedError,
    UnavailableError,
)
from replog.client import RetryPolicy
from replog.errors import ConfigError, InvalidArgumentError, ResourceExhaustedError
from replog.security.certs import NODE_SUBJECT, CertificateAuthority, IssuedCert
from replog.security.tls import TLSConfig, client_ssl_context, grpc_channel_credentials
from replog.server import agent as agent_module
from replog.server.agent import exposure_warning
from replog.server.settings import load_settings
from tests.integration.conftest import ServerProcess, ThreadedServer, wait_until
from tests.integration.test_cli_and_process import cli_app

POLICY = """\
p, alice, *, produce
p, alice, *, consume
p, carol, *, consume
p, replog-node, *, replicate
"""
NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class Pki:
    """Paths of the files a test needs: ``cert(name)`` and ``key(name)`` for each identity."""

    dir: Path

    @property
    def ca(self) -> str:
        return str(self.dir / "ca.pem")

    def cert(self, name: str) -> str:
        return str(self.dir / f"{name}.pem")

    def key(self, name: str) -> str:
        return str(self.dir / f"{name}-key.pem")

    def client(self, name: str, server: str, **kw: Any) -> Client:
        kw.setdefault("retry", NO_RETRY)
        kw.setdefault("timeout", 5.0)
        return Client(server, ca=self.ca, cert=self.cert(name), key=self.key(name), **kw)

    def https(self, name: str | None, ca: str | None = None) -> ssl.SSLContext:
        cert = self.cert(name) if name else None
        key = self.key(name) if name else None
        return client_ssl_context(TLSConfig(cert, key, ca or self.ca))


def _anonymous(ca: CertificateAuthority) -> IssuedCert:
    """A CA-signed client certificate with no identity: no common name, only an IP SAN."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nobody")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return IssuedCert(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _save(directory: Path, name: str, issued: IssuedCert) -> None:
    (directory / f"{name}.pem").write_bytes(issued.cert_pem)
    (directory / f"{name}-key.pem").write_bytes(issued.key_pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority()
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    _save(directory, "node", ca.issue(NODE_SUBJECT, sans=["localhost", "127.0.0.1"], server=True))
    for name in ("alice", "carol", "mallory"):
        _save(directory, name, ca.issue(name))
    _save(directory, "anonymous", _anonymous(ca))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    _save(
        directory,
        "alice-expired",
        ca.issue("alice", not_before=past, not_after=past + dt.timedelta(days=1)),
    )
    other = CertificateAuthority("another CA")
    (directory / "other-ca.pem").write_bytes(other.cert_pem)
    _save(directory, "alice-other-ca", other.issue("alice"))
    _save(directory, "other-node", other.issue(NODE_SUBJECT, sans=["127.0.0.1"], server=True))
    (directory / "policy.csv").write_text(POLICY)
    return Pki(directory)


def _secure_settings(pki: Pki, tmp_path: Path) -> dict[str, Any]:
    policy = tmp_path / "policy.csv"
    policy.write_text(POLICY)
    return {
        "tls_cert": pki.cert("node"),
        "tls_key": pki.key("node"),
        "tls_ca": pki.ca,
        "acl_policy": str(policy),
    }


@pytest.fixture
def secure(
    pki: Pki, tmp_path: Path, server_factory: Callable[..., ThreadedServer]
) -> ThreadedServer:
    return server_factory(**_secure_settings(pki, tmp_path))


def _next_offset(pki: Pki, server: ThreadedServer) -> int:
    with pki.client("alice", server.grpc_address) as alice:
        return alice.consume_batch(0, max_records=1).high_watermark


# -- gRPC ---------------------------------------------------------------------------------------


def test_an_allowed_identity_produces_and_consumes_over_grpc(
    pki: Pki, secure: ThreadedServer
) -> None:
    with pki.client("alice", secure.grpc_address) as alice:
        assert alice.produce(b"one") == 0
        assert alice.produce_batch([b"two", b"three"]) == (1, 2)
        assert alice.consume(1).value == b"two"
        assert [r.value for r in alice.consume_batch(0).records] == [b"one", b"two", b"three"]
        stream = alice.stream(0)
        assert [next(stream).value for _ in range(3)] == [b"one", b"two", b"three"]
        stream.close()
        with Producer(alice, linger_ms=1) as producer:
            future = producer.send(b"four")
        assert future.result() == 3
    with pki.client("carol", secure.grpc_address) as carol:
        assert carol.consume(3).value == b"four"
        assert carol.servers()[0].is_leader


def test_a_producer_given_an_address_connects_with_its_own_tls_settings(
    pki: Pki, secure: ThreadedServer
) -> None:
    tls = {"ca": pki.ca, "cert": pki.cert("alice"), "key": pki.key("alice")}
    with Producer(secure.grpc_address, linger_ms=1, **tls) as producer:
        future = producer.send(b"over tls")
    assert future.result() == 0
    with (
        pki.client("alice", secure.grpc_address) as alice,
        pytest.raises(InvalidArgumentError, match="to the Client"),
    ):
        Producer(alice, **tls)


def test_a_consumer_only_identity_is_denied_produce_and_the_log_is_unchanged(
    pki: Pki, secure: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    with pki.client("alice", secure.grpc_address) as alice:
        alice.produce(b"kept")
    # retries allowed, to show a denial is never retried (it would still be one log line)
    with pki.client("carol", secure.grpc_address, retry=RetryPolicy()) as carol:
        with pytest.raises(PermissionDeniedError, match="carol"):
            carol.produce(b"sneaky")
        with pytest.raises(PermissionDeniedError):
            carol.produce_batch([b"a", b"b"])
        with Producer(carol, linger_ms=1) as producer:
            future = producer.send(b"batched")
        with pytest.raises(PermissionDeniedError):
            future.result()
    assert _next_offset(pki, secure) == 1
    denials = [r.getMessage() for r in caplog.records if r.getMessage().startswith("denied")]
    assert len(denials) == 3
    assert all("subject=carol action=produce peer=ipv4:127.0.0.1:" in m for m in denials)


def test_an_unknown_identity_is_denied_everything_but_health(
    pki: Pki, secure: ThreadedServer
) -> None:
    with pki.client("mallory", secure.grpc_address) as mallory:
        calls: list[Callable[[], Any]] = [
            lambda: mallory.produce(b"x"),
            lambda: mallory.consume(0),
            lambda: mallory.consume_batch(0),
            mallory.servers,
            lambda: next(mallory.stream(0)),
        ]
        for call in calls:
            with pytest.raises(PermissionDeniedError, match="mallory"):
                call()
    creds = grpc_channel_credentials(TLSConfig(pki.cert("mallory"), pki.key("mallory"), pki.ca))
    with grpc.secure_channel(secure.grpc_address, creds) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert _next_offset(pki, secure) == 0


def test_a_verified_certificate_without_an_identity_is_unauthenticated(
    pki: Pki, secure: ThreadedServer
) -> None:
    with pki.client("anonymous", secure.grpc_address) as anonymous:
        with pytest.raises(UnauthenticatedError):
            anonymous.produce(b"x")
        with pytest.raises(UnauthenticatedError):
            anonymous.consume(0)
    status, body = https(secure, pki.https("anonymous"), "GET", "/v1/records")
    assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED")
    assert _next_offset(pki, secure) == 0


@pytest.mark.parametrize(
    ("ca", "cert"),
    [
        ("ca", "alice-other-ca"),  # a client certificate from another CA
        ("ca", "alice-expired"),  # an expired client certificate
        ("ca", None),  # TLS, but no client certificate
        ("other-ca", "alice"),  # the client does not trust the server's CA
    ],
    ids=["other-ca", "expired", "no-client-cert", "untrusted-server"],
)
def test_a_bad_handshake_is_refused_over_grpc(
    pki: Pki, secure: ThreadedServer, ca: str, cert: str | None
) -> None:
    client = Client(
        secure.grpc_address,
        ca=str(pki.dir / f"{ca}.pem"),
        cert=pki.cert(cert) if cert else None,
        key=pki.key(cert) if cert else None,
        retry=NO_RETRY,
        timeout=5,
    )
    with client, pytest.raises(UnavailableError) as caught:
        client.produce(b"x")
    assert caught.value.certainly_not_applied, str(caught.value)
    assert _next_offset(pki, secure) == 0


def test_a_plaintext_client_is_refused_by_a_tls_server(pki: Pki, secure: ThreadedServer) -> None:
    with Client(secure.grpc_address, retry=NO_RETRY, timeout=5) as plain:
        with pytest.raises(UnavailableError):
            plain.produce(b"x")
        with pytest.raises(UnavailableError):
            plain.consume(0)
    assert _next_offset(pki, secure) == 0


def test_without_an_acl_mutual_tls_alone_lets_any_ca_signed_identity_in(
    pki: Pki, server_factory: Callable[..., ThreadedServer]
) -> None:
    server = server_factory(tls_cert=pki.cert("node"), tls_key=pki.key("node"), tls_ca=pki.ca)
    with pki.client("mallory", server.grpc_address) as mallory:
        assert mallory.produce(b"x") == 0
    with (
        pki.client("alice-other-ca", server.grpc_address) as stranger,
        pytest.raises(UnavailableError),
    ):
        stranger.produce(b"x")


# -- HTTP ---------------------------------------------------------------------------------------


def https(
    server: ThreadedServer,
    context: ssl.SSLContext,
    method: str,
    path: str,
    body: Any = None,
) -> tuple[int, Any]:
    host, port = server.http_address.rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=context)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if "json" in response.getheader("Content-Type", ""):
            return response.status, json.loads(payload)
        return response.status, payload.decode()
    finally:
        conn.close()


def test_http_allows_granted_identities_and_refuses_others_with_a_json_error(
    pki: Pki, secure: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    alice, carol, mallory = (pki.https(n) for n in ("alice", "carol", "mallory"))
    record = {"record": {"value": "aGk="}}
    status, body = https(secure, alice, "POST", "/v1/records", record)
    assert (status, body.get("offset")) == (200, 0), body
    status, body = https(secure, carol, "GET", "/v1/records/0")
    assert (status, body["record"]["value"]) == (200, "aGk="), body

    status, body = https(secure, carol, "POST", "/v1/records", record)
    assert status == 403
    assert body["error"]["code"] == "PERMISSION_DENIED" and "carol" in body["error"]["message"]
    status, body = https(
        secure, carol, "POST", "/v1/records:batch", {"records": [record["record"]]}
    )
    assert status == 403
    for method, path in [("GET", "/v1/records/0"), ("GET", "/v1/records"), ("GET", "/v1/servers")]:
        status, body = https(secure, mallory, method, path)
        assert status == 403 and set(body) == {"error"}, (method, path, body)
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert https(secure, mallory, "GET", path)[0] == 200, path
    assert _next_offset(pki, secure) == 1
    denials = [r.getMessage() for r in caplog.records if r.getMessage().startswith("denied")]
    assert "denied: subject=carol action=produce peer=127.0.0.1:" in denials[0]
    assert len(denials) == 5


@pytest.mark.parametrize(
    ("ca", "cert"),
    [("ca", "alice-other-ca"), ("ca", "alice-expired"), ("ca", None), ("other-ca", "alice")],
    ids=["other-ca", "expired", "no-client-cert", "untrusted-server"],
)
def test_a_bad_handshake_is_refused_over_http(
    pki: Pki, secure: ThreadedServer, ca: str, cert: str | None
) -> None:
    context = pki.https(cert, ca=str(pki.dir / f"{ca}.pem"))
    # TLS 1.3 finishes the client's side first: the server's refusal of the client
    # certificate arrives as an alert on the first read, or the connection is reset.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(secure, context, "POST", "/v1/records", {"record": {"value": "aGk="}})
    assert _next_offset(pki, secure) == 0


def test_a_plaintext_http_client_is_refused_by_a_tls_server(
    pki: Pki, secure: ThreadedServer
) -> None:
    host, port = secure.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("POST", "/v1/records", body=b'{"record": {"value": "aGk="}}')
            conn.getresponse().read()
    finally:
        conn.close()
    assert _next_offset(pki, secure) == 0


# -- policy reload ------------------------------------------------------------------------------


def test_reloading_the_policy_in_process_applies_new_rules_and_keeps_the_old_on_error(
    pki: Pki, secure: ThreadedServer, tmp_path: Path
) -> None:
    assert secure.agent is not None
    policy = Path(secure.agent.settings.acl_policy)
    with pki.client("carol", secure.grpc_address) as carol:
        with pytest.raises(PermissionDeniedError):
            carol.produce(b"x")
        policy.write_text(POLICY + "p, carol, *, produce\n")
        assert secure.agent.reload_acl()
        assert carol.produce(b"x") == 0
        policy.write_text("p, carol, *, fly\n")  # not an action: refused, old policy kept
        assert not secure.agent.reload_acl()
        assert carol.produce(b"y") == 1
        policy.write_text("p, alice, *, consume\n")
        assert secure.agent.reload_acl()
        with pytest.raises(PermissionDeniedError):
            carol.consume(0)


def test_sighup_reloads_the_policy_of_a_running_replog_serve(
    pki: Pki, tmp_path: Path, process_factory: Callable[..., ServerProcess]
) -> None:
    policy = tmp_path / "live-policy.csv"
    policy.write_text(POLICY)
    proc = process_factory(
        tmp_path / "data",
        *("--tls-cert", pki.cert("node"), "--tls-key", pki.key("node")),
        *("--tls-ca", pki.ca, "--acl-policy", str(policy)),
    )
    with pki.client("carol", proc.grpc_address) as carol:
        with pytest.raises(PermissionDeniedError):
            carol.produce(b"x")
        policy.write_text(POLICY + "p, carol, *, produce\n")
        proc.proc.send_signal(signal.SIGHUP)

        def carol_may_produce() -> bool:
            try:
                carol.produce(b"x")
            except PermissionDeniedError:
                return False
            return True

        wait_until(carol_may_produce, timeout=10, what="the reloaded policy")
    assert proc.terminate() == 0


# -- CLI and startup ----------------------------------------------------------------------------


def test_cli_client_commands_speak_mutual_tls(
    pki: Pki, secure: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    app = cli_app()
    tls = ["--ca", pki.ca, "--cert", pki.cert("alice"), "--key", pki.key("alice")]
    address = ["-s", secure.grpc_address]
    result = runner.invoke(app, ["produce", *address, *tls, "--record-key", "k", "a", "b"])
    assert (result.exit_code, result.stdout.split()) == (0, ["0", "1"]), result.output
    result = runner.invoke(app, ["consume", *address, *tls])
    assert (result.exit_code, result.stdout) == (0, "a\nb\n"), result.output
    monkeypatch.setenv("REPLOG_CA", pki.ca)
    monkeypatch.setenv("REPLOG_CERT", pki.cert("carol"))
    monkeypatch.setenv("REPLOG_KEY", pki.key("carol"))
    result = runner.invoke(app, ["servers", *address])
    assert result.exit_code == 0 and secure.grpc_address in result.stdout, result.output
    result = runner.invoke(app, ["produce", *address, "c"])
    assert result.exit_code == 1 and "permission denied" in result.stderr, result.output
    assert result.stderr.count("\n") == 1


def test_cli_tls_failures_are_one_line_errors(pki: Pki, secure: ThreadedServer) -> None:
    runner = CliRunner()
    app = cli_app()
    address = ["-s", secure.grpc_address]
    other = ["--ca", pki.ca, "--cert", pki.cert("alice-other-ca")]
    cases = [
        (["produce", *address, "x"], "check the ca"),  # plaintext against TLS
        (["consume", *address, *other, "--key", pki.key("alice-other-ca")], "check the ca"),
        (["servers", *address, "--ca", str(pki.dir / "other-ca.pem")], "handshake failed"),
        (["servers", *address, "--ca", pki.ca, "--cert", pki.cert("alice")], "give both"),
        (["servers", *address, "--ca", str(pki.dir / "missing.pem")], "cannot read"),
    ]
    for args, text in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert text in result.stderr.lower(), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_an_acl_without_mutual_tls_refuses_to_start(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mutual TLS"):
        load_settings({"acl_policy": str(pki.dir / "policy.csv")}, env={})
    with pytest.raises(ConfigError, match="mutual TLS"):
        load_settings(
            {"acl_policy": "p.csv", "tls_cert": pki.cert("node"), "tls_key": pki.key("node")},
            env={},
        )
    result = subprocess.run(
        [sys.executable, "-c", "from replog.cli.app import main; main()", "serve"],
        env={"REPLOG_ACL_POLICY": str(pki.dir / "policy.csv"), "PATH": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("replog: error: an ACL (--acl-policy) needs mutual TLS")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"tls_cert": "n.pem"}, "go together"),
        ({"tls_key": "n-key.pem"}, "go together"),
        ({"tls_ca": "ca.pem"}, "needs the server's own"),
        ({"tls_cert": "n.pem", "tls_key": "k.pem", "acl_model": "m.conf"}, "needs acl_policy"),
    ],
)
def test_inconsistent_tls_settings_are_refused(given: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(given, env={})


def test_tls_and_acl_settings_follow_flags_over_env_over_toml(tmp_path: Path) -> None:
    toml = tmp_path / "replog.toml"
    toml.write_text(
        '[server]\ntls-cert = "toml.pem"\ntls_key = "toml-key.pem"\ntls-ca = "toml-ca.pem"\n'
        'acl-policy = "toml.csv"\n'
    )
    env = {"REPLOG_TLS_CA": "env-ca.pem", "REPLOG_ACL_MODEL": "env.conf"}
    settings = load_settings({"tls_cert": "flag.pem"}, env=env, config_file=str(toml))
    assert (settings.tls_cert, settings.tls_key) == ("flag.pem", "toml-key.pem")
    assert (settings.tls_ca, settings.acl_policy, settings.acl_model) == (
        "env-ca.pem",
        "toml.csv",
        "env.conf",
    )
    tls = settings.tls_config()
    assert tls is not None and tls.mutual
    assert load_settings({}, env={}).tls_config() is None


@pytest.mark.parametrize(
    ("grpc_addr", "tls", "warns"),
    [
        ("0.0.0.0:7400", False, True),
        ("[::]:7400", False, True),
        ("db.example.com:7400", False, True),
        ("0.0.0.0:7400", True, False),
        ("127.0.0.1:7400", False, False),
        ("localhost:7400", False, False),
        ("[::1]:7400", False, False),
    ],
)
def test_binding_beyond_loopback_without_tls_is_flagged(
    pki: Pki, grpc_addr: str, tls: bool, warns: bool
) -> None:
    # Judged from the settings alone: tests never listen beyond loopback.
    overrides: dict[str, object] = {"grpc_addr": grpc_addr}
    if tls:
        overrides |= {"tls_cert": pki.cert("node"), "tls_key": pki.key("node"), "tls_ca": pki.ca}
    warning = exposure_warning(load_settings(overrides, env={}))
    assert (warning is not None) == warns
    if warning is not None:
        assert "WITHOUT TLS" in warning and grpc_addr in warning


def test_the_exposure_warning_is_logged_and_printed_at_start(
    server_factory: Callable[..., ThreadedServer],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "exposure_warning", lambda settings: "WITHOUT TLS (test)")
    server_factory()  # on loopback; the warning function is what decides
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "WITHOUT TLS" in r.msg]
    assert len(warnings) == 1
    assert "WITHOUT TLS" in capsys.readouterr().err


def test_a_server_with_an_unreadable_acl_or_certificate_fails_to_start(
    pki: Pki, server_factory: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    tls = {"tls_cert": pki.cert("node"), "tls_key": pki.key("node"), "tls_ca": pki.ca}
    with pytest.raises(ConfigError, match="does not exist"):
        server_factory(**tls, acl_policy=str(tmp_path / "missing.csv"))
    with pytest.raises(ConfigError, match="cannot read"):
        server_factory(**{**tls, "tls_ca": str(tmp_path / "missing.pem")})


def test_errors_are_replog_errors_and_not_retryable() -> None:
    assert issubclass(PermissionDeniedError, ReplogError)
    assert issubclass(UnauthenticatedError, ReplogError)
    for error in (PermissionDeniedError("no"), UnauthenticatedError("who")):
        assert not RetryPolicy.retryable(error, idempotent=True)


# -- stream limits per identity (issue: resource limits) -------------------------------------


def test_each_client_identity_has_its_own_stream_quota(
    pki: Pki, tmp_path: Path, server_factory: Callable[..., ThreadedServer]
) -> None:
    server = server_factory(**_secure_settings(pki, tmp_path), max_streams_per_identity=1)
    with (
        pki.client("alice", server.grpc_address) as alice,
        pki.client("carol", server.grpc_address) as carol,
    ):
        alice.produce(b"r")
        first = alice.stream(0)
        assert next(first).value == b"r"
        with pytest.raises(ResourceExhaustedError, match="'alice' already holds 1 open stream"):
            next(alice.stream(0))
        other = carol.stream(0)
        assert next(other).value == b"r"  # carol's quota is her own
        first.close()
        other.close()
