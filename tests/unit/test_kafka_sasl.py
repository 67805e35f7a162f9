"""The SASL exchanges of the Kafka port (pure: no server), and the users file they read."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest

from replog.errors import ConfigError
from replog.security.scram import (
    ScramCredential,
    derive,
    format_users,
    parse_users,
    read_users,
    write_users,
)
from replog.server.kafka.sasl import PlainExchange, SaslFailedError, ScramExchange

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def _users(**passwords: str) -> dict[str, dict[str, ScramCredential]]:
    return {
        name: {m: derive(m, pw) for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")}
        for name, pw in passwords.items()
    }


def _rfc_lookup(name: str) -> dict[str, ScramCredential]:
    if name != "user":
        return {}
    return {"SCRAM-SHA-256": derive("SCRAM-SHA-256", "pencil", RFC_SALT, 4096)}


def test_scram_sha_256_answers_rfc_7677s_test_vector_and_names_the_user() -> None:
    exchange = ScramExchange("SCRAM-SHA-256", _rfc_lookup, nonce=RFC_SERVER_NONCE)
    assert exchange.step(RFC_CLIENT_FIRST).reply == RFC_SERVER_FIRST
    final = exchange.step(RFC_CLIENT_FINAL)
    assert final.reply == RFC_SERVER_FINAL
    assert final.user == "user"


def test_a_wrong_scram_proof_fails_and_the_exchange_cannot_be_continued() -> None:
    exchange = ScramExchange("SCRAM-SHA-256", _rfc_lookup, nonce=RFC_SERVER_NONCE)
    exchange.step(RFC_CLIENT_FIRST)
    bad = RFC_CLIENT_FINAL[:-6] + b"AAAAA="
    with pytest.raises(SaslFailedError, match="invalid credentials"):
        exchange.step(bad)
    with pytest.raises(SaslFailedError):
        exchange.step(RFC_CLIENT_FINAL)


def test_an_unknown_scram_user_gets_a_salt_and_fails_only_at_the_last_step() -> None:
    exchange = ScramExchange("SCRAM-SHA-256", _rfc_lookup, nonce=RFC_SERVER_NONCE)
    first = exchange.step(b"n,,n=nobody,r=abc").reply
    assert first.startswith(b"r=abc" + RFC_SERVER_NONCE.encode() + b",s=")
    with pytest.raises(SaslFailedError):
        exchange.step(b"c=biws,r=abc" + RFC_SERVER_NONCE.encode() + b",p=" + b"A" * 44)


@pytest.mark.parametrize(
    "first",
    [b"p=tls-unique,,n=user,r=x", b"n,,r=x,n=user", b"n,,n=user,r=x,m=ext", b"\xff", b"n,,"],
)
def test_a_malformed_or_channel_bound_client_first_fails(first: bytes) -> None:
    with pytest.raises(SaslFailedError):
        ScramExchange("SCRAM-SHA-256", _rfc_lookup).step(first)


def test_scram_sha_512_completes_with_a_client_computed_proof() -> None:
    users = _users(bob="s3cret")
    exchange = ScramExchange("SCRAM-SHA-512", lambda n: users.get(n, {}), nonce="srv")
    server_first = exchange.step(b"n,,n=bob,r=cli").reply.decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha512", b"s3cret", base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha512")
    without_proof = f"c=biws,r={fields['r']}"
    message = f"n=bob,r=cli,{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha512(client_key).digest(), message, "sha512")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = exchange.step(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
    server_key = hmac.digest(salted, b"Server Key", "sha512")
    assert final.reply == b"v=" + base64.b64encode(hmac.digest(server_key, message, "sha512"))
    assert final.user == "bob"


def test_plain_checks_the_password_against_the_stored_scram_credential() -> None:
    users = _users(alice="wonder")
    lookup = lambda n: users.get(n, {})  # noqa: E731
    assert PlainExchange(lookup).step(b"\0alice\0wonder").user == "alice"
    assert PlainExchange(lookup).step(b"alice\0alice\0wonder").user == "alice"
    for token in (b"\0alice\0wrong", b"\0nobody\0wonder", b"bob\0alice\0wonder", b"alice"):
        with pytest.raises(SaslFailedError):
            PlainExchange(lookup).step(token)


def test_the_users_file_round_trips_and_holds_no_password(tmp_path: Path) -> None:
    users = _users(alice="wonder-pass", bob="builder-pass")
    path = tmp_path / "users"
    write_users(path, users)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "wonder-pass" not in text and "builder-pass" not in text
    assert read_users(path) == users
    assert parse_users(format_users(users)) == users


def test_the_users_file_is_never_read_or_written_through_a_symbolic_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "users"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        write_users(link, _users(alice="x"))
    with pytest.raises(ConfigError, match="symbolic link"):
        read_users(link)
    assert target.read_text() == ""


@pytest.mark.parametrize(
    "line",
    [
        "alice SCRAM-SHA-1 salt=AA==,stored_key=AA==,server_key=AA==,iterations=4096",
        "al ice SCRAM-SHA-256 x",
        "alice SCRAM-SHA-256 salt=AA==,stored_key=AA==,server_key=AA==,iterations=4096",
        "alice SCRAM-SHA-256 salt=AA==",
    ],
)
def test_a_bad_users_line_is_refused_naming_its_line(line: str) -> None:
    with pytest.raises(ConfigError, match="line 2"):
        parse_users("# comment\n" + line + "\n")


@pytest.mark.parametrize(
    "first", [b"n,,n=alice", b"n,,", b"n,,r=abc", b"n,,n=alice,", b"y,,n=alice,x"]
)
def test_a_client_first_message_missing_attributes_is_a_sasl_failure(first: bytes) -> None:
    # A review found the one without r= raising IndexError (an internal error, not 58).
    cred = derive("SCRAM-SHA-256", "pw")
    exchange = ScramExchange("SCRAM-SHA-256", lambda name: {"SCRAM-SHA-256": cred})
    with pytest.raises(SaslFailedError):
        exchange.step(first)
