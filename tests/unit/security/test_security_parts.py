"""Certificates, identities and the ACL, each on its own (servers use them in integration)."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from replog.cli.app import _register, app
from replog.errors import ConfigError
from replog.security.acl import Action, Authorizer
from replog.security.certs import NODE_SUBJECT, CertificateAuthority, write_dev_pki
from replog.security.identity import subject_from_der, subject_from_grpc_auth
from replog.security.tls import TLSConfig, client_ssl_context, server_ssl_context


def _der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_dev_pki_writes_a_ca_a_node_cert_and_user_certs_with_private_keys_0600(
    tmp_path: Path,
) -> None:
    paths = write_dev_pki(tmp_path, hosts=["node1.internal"], users=["alice", "bob"])
    names = {p.name for p in paths}
    assert {"ca.pem", "node.pem", "node-key.pem", "alice.pem", "alice-key.pem"} <= names
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.name.endswith("-key.pem") else 0o644), path
    node = x509.load_pem_x509_certificate((tmp_path / "node.pem").read_bytes())
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "node1.internal"} <= set(sans.get_values_for_type(x509.DNSName))
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert subject_from_der(_der((tmp_path / "alice.pem").read_bytes())) == "alice"


def test_issued_certificates_chain_to_the_ca_and_load_into_tls_contexts(tmp_path: Path) -> None:
    write_dev_pki(tmp_path, hosts=[], users=["alice"])
    server = server_ssl_context(
        TLSConfig(
            str(tmp_path / "node.pem"), str(tmp_path / "node-key.pem"), str(tmp_path / "ca.pem")
        )
    )
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    client = client_ssl_context(
        TLSConfig(
            str(tmp_path / "alice.pem"), str(tmp_path / "alice-key.pem"), str(tmp_path / "ca.pem")
        )
    )
    assert client.verify_mode == ssl.CERT_REQUIRED


def test_a_certificate_without_its_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="go together"):
        TLSConfig(cert_file="x.pem")


def test_unreadable_tls_files_are_a_config_error(tmp_path: Path) -> None:
    config = TLSConfig(str(tmp_path / "missing.pem"), str(tmp_path / "missing-key.pem"))
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        server_ssl_context(config)


def test_identity_falls_back_to_the_first_dns_san_without_a_common_name() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    ca = CertificateAuthority()
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("svc.example"), x509.DNSName("b")]),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    assert subject_from_der(cert.public_bytes(Encoding.DER)) == "svc.example"
    assert subject_from_der(None) is None


def test_grpc_auth_context_without_a_certificate_has_no_subject() -> None:
    ca = CertificateAuthority()
    issued = ca.issue("carol")
    assert subject_from_grpc_auth({"x509_pem_cert": [issued.cert_pem]}) == "carol"
    assert subject_from_grpc_auth({"transport_security_type": [b"ssl"]}) is None


def _policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.csv"
    path.write_text(text)
    return str(path)


def test_acl_allows_only_what_a_rule_grants(tmp_path: Path) -> None:
    acl = Authorizer(
        _policy(
            tmp_path,
            "p, alice, *, produce\np, alice, *, consume\np, bob, *, consume\n"
            f"p, {NODE_SUBJECT}, *, replicate\np, *, *, consume\n",
        )
    )
    assert acl.allowed("alice", Action.PRODUCE)
    assert acl.allowed("bob", Action.CONSUME)
    assert not acl.allowed("bob", Action.PRODUCE)
    assert not acl.allowed("mallory", Action.PRODUCE)
    assert acl.allowed("mallory", Action.CONSUME)  # the "*" subject rule
    assert acl.allowed(NODE_SUBJECT, Action.REPLICATE)
    assert not acl.allowed("alice", Action.ADMIN)


def test_acl_reload_takes_the_new_policy_and_keeps_the_old_one_when_broken(
    tmp_path: Path,
) -> None:
    path = _policy(tmp_path, "p, alice, *, produce\n")
    acl = Authorizer(path)
    assert not acl.allowed("bob", Action.PRODUCE)
    Path(path).write_text("p, bob, *, produce\n")
    assert acl.reload()
    assert acl.allowed("bob", Action.PRODUCE)
    assert not acl.allowed("alice", Action.PRODUCE)
    Path(path).write_text("p, bob, *, fly\n")
    assert not acl.reload()
    assert acl.allowed("bob", Action.PRODUCE)


def test_acl_with_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Authorizer(str(tmp_path / "nope.csv"))


def test_certs_init_command_writes_the_files(tmp_path: Path) -> None:
    _register()
    result = CliRunner().invoke(app, ["certs", "init", "--out", str(tmp_path), "--user", "alice"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "alice-key.pem").exists()
    bad = CliRunner().invoke(app, ["certs", "init", "--out", str(tmp_path), "--user", "../x"])
    assert bad.exit_code != 0
