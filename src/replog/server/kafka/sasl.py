"""The server side of SASL/PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677).

Pure (sans-I/O): an exchange is fed each token the client sends (a SaslAuthenticate
request's ``auth_bytes``) and answers the token to send back; the last step also names the
user it authenticated. A failure raises :class:`SaslFailedError`, whose message says nothing of
why (a wrong password and an unknown user read the same). An unknown user's SCRAM exchange
goes on with a made-up salt and fails at its last step, so the first answer does not tell
which user names exist."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from replog.security.scram import MECHANISMS, USER_NAME, ScramCredential, derive

__all__ = [
    "SASL_MECHANISMS",
    "PlainExchange",
    "SaslExchange",
    "SaslFailedError",
    "ScramExchange",
    "SaslStep",
    "new_exchange",
]

SASL_MECHANISMS = ("PLAIN", *MECHANISMS)
"""The mechanisms SaslHandshake offers."""
MAX_TOKEN_BYTES = 64 * 1024
Lookup = Callable[[str], Mapping[str, ScramCredential]]
"""A user name -> that user's credentials by mechanism (empty: no such user)."""


class SaslFailedError(Exception):
    """The client did not authenticate; the message is safe to send it."""

    def __init__(self, mechanism: str) -> None:
        super().__init__(
            f"authentication failed: invalid credentials with SASL mechanism {mechanism}"
        )


@dataclass(frozen=True, slots=True)
class SaslStep:
    """The token to answer and, when the exchange is over, the user it authenticated."""

    reply: bytes
    user: str | None = None


class SaslExchange:
    """One client's authentication by one mechanism."""

    mechanism = ""

    def step(self, token: bytes) -> SaslStep:
        """The answer to the client's next ``token``; SaslFailedError ends the exchange."""
        raise NotImplementedError


class PlainExchange(SaslExchange):
    """PLAIN: one token, ``[authzid] NUL authcid NUL password``, checked against the
    user's stored SCRAM credential (its StoredKey recomputed from the password)."""

    mechanism = "PLAIN"

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._done = False

    def step(self, token: bytes) -> SaslStep:
        """Authenticate the one token PLAIN sends."""
        if self._done or len(token) > MAX_TOKEN_BYTES:
            raise SaslFailedError(self.mechanism)
        self._done = True
        try:
            authzid, user, password = token.decode().split("\0")
        except ValueError:  # not UTF-8, or not three fields
            raise SaslFailedError(self.mechanism) from None
        credentials = self._lookup(user) if USER_NAME.fullmatch(user) else {}
        if authzid not in ("", user) or not credentials:
            derive("SCRAM-SHA-256", password)  # as long as a real check: no timing oracle
            raise SaslFailedError(self.mechanism)
        credential = credentials.get("SCRAM-SHA-256") or next(iter(credentials.values()))
        if not credential.matches(password):
            raise SaslFailedError(self.mechanism)
        return SaslStep(b"", user)


def _unescape(name: str) -> str:
    """A SCRAM saslname: ``=2C`` is a comma, ``=3D`` an equals sign (RFC 5802 5.1)."""
    return name.replace("=2C", ",").replace("=3D", "=")


def _attributes(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) != 1:
            raise ValueError(item)
        pairs.append((key, value))
    return pairs


class ScramExchange(SaslExchange):
    """SCRAM-SHA-256 or -512 without channel binding: client-first -> server-first,
    client-final -> server-final (``v=`` the server signature)."""

    def __init__(
        self, mechanism: str, lookup: Lookup, *, nonce: str | None = None, secret: bytes = b""
    ) -> None:
        """An exchange for ``mechanism``; ``nonce`` (tests) fixes the server's nonce part,
        ``secret`` makes unknown users' made-up salts differ from server to server."""
        self.mechanism = mechanism
        self._hash = MECHANISMS[mechanism]
        self._lookup = lookup
        self._server_nonce = nonce or secrets.token_urlsafe(24)
        self._secret = secret or secrets.token_bytes(32)
        self._stage = 0
        self._user = ""
        self._credential: ScramCredential | None = None
        self._gs2 = ""
        self._first_bare = ""
        self._server_first = ""

    def step(self, token: bytes) -> SaslStep:
        """Answer client-first, then client-final."""
        if len(token) > MAX_TOKEN_BYTES:
            raise SaslFailedError(self.mechanism)
        stage, self._stage = self._stage, 2
        try:
            text = token.decode()
            if stage == 0:
                reply = self._first(text)
                self._stage = 1
                return SaslStep(reply.encode())
            if stage == 1:
                return self._final(text)
        except (ValueError, KeyError, IndexError):  # malformed: as a wrong password
            pass
        raise SaslFailedError(self.mechanism)

    def _first(self, text: str) -> str:
        cbind, authzid, bare = text.split(",", 2)
        if cbind not in ("n", "y"):  # "p=...": channel binding, not offered
            raise ValueError(cbind)
        attributes = _attributes(bare)
        if attributes[0][0] != "n" or attributes[1][0] != "r" or not attributes[1][1]:
            raise ValueError(bare)
        if any(key == "m" for key, _ in attributes):  # a mandatory extension we do not know
            raise ValueError(bare)
        user = _unescape(attributes[0][1])
        if authzid and authzid != f"a={attributes[0][1]}":
            raise ValueError(authzid)
        found = self._lookup(user).get(self.mechanism) if USER_NAME.fullmatch(user) else None
        self._credential = found
        salt = found.salt if found else hmac.digest(self._secret, user.encode(), "sha256")
        iterations = found.iterations if found else 4096
        self._user, self._gs2, self._first_bare = user, f"{cbind},{authzid},", bare
        nonce = attributes[1][1] + self._server_nonce
        self._server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        return self._server_first

    def _final(self, text: str) -> SaslStep:
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        attributes = dict(_attributes(without_proof))
        gs2 = base64.b64decode(attributes["c"], validate=True).decode()
        nonce = self._server_first.split(",", 1)[0][2:]
        if not sep or gs2 != self._gs2 or attributes["r"] != nonce:
            raise ValueError(text)
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except binascii.Error:
            raise ValueError(text) from None
        credential = self._credential
        if credential is None or len(proof) != len(credential.stored_key):
            raise ValueError(text)
        message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, message, self._hash)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self._hash, client_key).digest(), credential.stored_key
        ):
            raise ValueError(text)
        verifier = hmac.digest(credential.server_key, message, self._hash)
        return SaslStep(b"v=" + base64.b64encode(verifier), self._user)


def new_exchange(mechanism: str, lookup: Lookup) -> SaslExchange:
    """An exchange for ``mechanism`` (one of SASL_MECHANISMS; KeyError otherwise)."""
    if mechanism == "PLAIN":
        return PlainExchange(lookup)
    if mechanism not in MECHANISMS:
        raise KeyError(mechanism)
    return ScramExchange(mechanism, lookup)
