"""Who a Kafka connection is: TLS on the port, client certificates, SASL, and the answers
to SaslHandshake (17) and SaslAuthenticate (36).

With ``tls_cert``/``tls_key`` the port speaks TLS only (a plaintext client fails the
handshake: one log line). A verified client certificate names the same identity as on
the gRPC and HTTP ports (``security/identity.py``). With a SASL users file, a client
without a certificate authenticates by PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 and is the
user it names; until it has, it gets answers to ApiVersions and the SASL APIs only. The
users file is re-read on SIGHUP (a broken file keeps the previous users)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode

from replog.errors import ConfigError
from replog.security.identity import subject_from_der
from replog.security.scram import ScramCredential, read_users
from replog.security.tls import TLSConfig, server_ssl_context
from replog.server.auth import Access, Gatekeeper
from replog.server.kafka.responses import make
from replog.server.kafka.sasl import (
    SASL_MECHANISMS,
    SaslExchange,
    SaslFailedError,
    new_exchange,
)
from replog.server.settings import ServerSettings

__all__ = [
    "SASL_APIS",
    "KafkaSecurity",
    "KafkaSession",
    "SaslUsers",
    "kafka_ssl_context",
    "sasl_answer",
    "security_for",
]

log = logging.getLogger("replog.kafka")
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
SASL_APIS: dict[int, tuple[int, int]] = {SASL_HANDSHAKE: (1, 1), SASL_AUTHENTICATE: (0, 2)}
"""The SASL API keys and versions served (SaslHandshake v0's unframed tokens are not)."""
_UNAUTHENTICATED_FRAME_BYTES = 512 * 1024  # Kafka's sasl.server.max.receive.size
_HANDSHAKE_TIMEOUT_S = 10.0


class SaslUsers:
    """The SASL users file: each user's SCRAM credentials, reloadable. Thread-safe."""

    def __init__(self, path: str) -> None:
        """Load ``path`` (ConfigError when it is missing or bad)."""
        self.path = path
        self._lock = threading.Lock()
        self._users = read_users(path)

    def __call__(self, name: str) -> Mapping[str, ScramCredential]:
        """User ``name``'s credentials by mechanism (empty: no such user)."""
        with self._lock:
            return self._users.get(name, {})

    def reload(self) -> bool:
        """Re-read the file; False (the previous users stay) when it does not load."""
        try:
            users = read_users(self.path)
        except ConfigError as exc:
            log.error("SIGHUP: Kafka users reload failed, keeping the previous users: %s", exc)
            return False
        with self._lock:
            self._users = users
        log.info("SIGHUP: Kafka users reloaded from %s (%d users)", self.path, len(users))
        return True


def kafka_ssl_context(tls: TLSConfig, sasl: bool) -> ssl.SSLContext:
    """The Kafka port's TLS context: the servers' certificate; with a CA, client
    certificates are verified, and required unless SASL is there for clients without one."""
    context = server_ssl_context(tls)
    if tls.mutual and sasl:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


@dataclass
class KafkaSecurity:
    """The Kafka port's TLS, SASL users and ACL."""

    gate: Gatekeeper
    tls: ssl.SSLContext | None = None
    users: SaslUsers | None = None

    async def open(
        self, writer: asyncio.StreamWriter, peer: object, timeout_s: float = _HANDSHAKE_TIMEOUT_S
    ) -> KafkaSession | None:
        """The connection's session after its TLS handshake (when TLS is on); None when the
        handshake failed (logged in one line; the caller closes the connection)."""
        der: bytes | None = None
        if self.tls is not None:
            try:
                await writer.start_tls(self.tls, ssl_handshake_timeout=timeout_s)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                reason = getattr(exc, "reason", None) or type(exc).__name__
                log.warning("kafka: TLS handshake with %s failed: %s", peer, reason)
                return None
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        subject = subject_from_der(der)
        return KafkaSession(self, str(peer), subject, self.users is None or subject is not None)


@dataclass
class KafkaSession:
    """One connection's identity and SASL state."""

    security: KafkaSecurity
    peer: str
    subject: str | None
    authenticated: bool
    """Whether requests beyond ApiVersions and SASL are served."""
    exchange: SaslExchange | None = field(default=None, repr=False)
    failed: bool = False
    """A SASL authentication failed: the connection closes after its answer."""

    def access(self) -> Access:
        """The connection's permissions under the ACL."""
        return Access(self.security.gate, self.subject, self.peer)

    @property
    def checked(self) -> bool:
        """Whether requests are checked against an ACL."""
        return self.security.gate.authorizer is not None

    def frame_limit(self, limit: int) -> int:
        """The largest frame this connection may send now: small until it authenticated."""
        return limit if self.authenticated else min(limit, _UNAUTHENTICATED_FRAME_BYTES)


async def sasl_answer(session: KafkaSession | None, key: int, cls: type[Any], body: Any) -> Any:
    """The answer to a SaslHandshake or SaslAuthenticate request."""
    users = session.security.users if session is not None else None
    if key == SASL_HANDSHAKE:
        if session is None or users is None:
            return make(cls, error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=())
        if body.mechanism not in SASL_MECHANISMS:
            return make(
                cls, error_code=ErrorCode.unsupported_sasl_mechanism, mechanisms=SASL_MECHANISMS
            )
        session.exchange = new_exchange(body.mechanism, users)
        return make(cls, error_code=ErrorCode.none, mechanisms=SASL_MECHANISMS)
    exchange = session.exchange if session is not None else None
    if session is None or exchange is None:
        return _authenticate(cls, ErrorCode.illegal_sasl_state, "no SaslHandshake before")
    try:
        step = await asyncio.to_thread(exchange.step, bytes(body.auth_bytes))
    except SaslFailedError as exc:
        session.exchange, session.failed = None, True
        log.warning(
            "kafka: SASL %s authentication from %s failed", exchange.mechanism, session.peer
        )
        return _authenticate(cls, ErrorCode.sasl_authentication_failed, str(exc))
    if step.user is not None:
        session.exchange = None
        session.subject, session.authenticated = step.user, True
        log.info("kafka: %s authenticated by SASL %s", session.peer, exchange.mechanism)
    return _authenticate(cls, ErrorCode.none, None, step.reply)


def _authenticate(cls: type[Any], code: ErrorCode, message: str | None, reply: bytes = b"") -> Any:
    return make(cls, error_code=code, error_message=message, auth_bytes=reply)


def security_for(settings: ServerSettings, gate: Gatekeeper) -> KafkaSecurity | None:
    """The Kafka port's security under ``settings`` (None: plaintext, anyone); ConfigError
    when the TLS or users files do not load."""
    tls = settings.tls_config()
    if tls is None and gate.authorizer is None and not settings.kafka_sasl_users:
        return None
    users = SaslUsers(settings.kafka_sasl_users) if settings.kafka_sasl_users else None
    context = kafka_ssl_context(tls, users is not None) if tls is not None else None
    return KafkaSecurity(gate, context, users)
