"""TLS settings, and the contexts and credentials built from them for servers and clients."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from replog.errors import ConfigError

__all__ = [
    "TLSConfig",
    "client_ssl_context",
    "grpc_channel_credentials",
    "grpc_server_credentials",
    "server_ssl_context",
]


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class TLSConfig:
    """Paths of a certificate, its key and the CA that peers' certificates must chain to.

    On a server, a CA turns on mutual TLS: clients must present a certificate it signed.
    On a client, the CA verifies the server and cert/key identify the client.
    """

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("a TLS certificate and its key go together: give both or neither")

    @property
    def enabled(self) -> bool:
        """True when a certificate (server) or a CA (client) is configured."""
        return self.cert_file is not None or self.ca_file is not None

    @property
    def mutual(self) -> bool:
        """True when peers must present a certificate signed by ``ca_file``."""
        return self.ca_file is not None


def _context(purpose: ssl.Purpose, config: TLSConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if config.cert_file is not None and config.key_file is not None:
            context.load_cert_chain(config.cert_file, config.key_file)
        if config.ca_file is not None:
            context.load_verify_locations(cafile=config.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS files: {exc}") from exc
    return context


def server_ssl_context(config: TLSConfig) -> ssl.SSLContext:
    """An SSL context for an HTTPS server: TLS >= 1.2, client certificates required if a CA."""
    if config.cert_file is None:
        raise ConfigError("a TLS server needs --tls-cert and --tls-key")
    context = _context(ssl.Purpose.CLIENT_AUTH, config)
    context.verify_mode = ssl.CERT_REQUIRED if config.mutual else ssl.CERT_NONE
    return context


def client_ssl_context(config: TLSConfig) -> ssl.SSLContext:
    """An SSL context for an HTTPS client that verifies the server and presents cert/key."""
    return _context(ssl.Purpose.SERVER_AUTH, config)


def grpc_server_credentials(config: TLSConfig) -> grpc.ServerCredentials:
    """gRPC server credentials; with a CA, clients must present a certificate it signed."""
    cert, key = _read(config.cert_file, "certificate"), _read(config.key_file, "key")
    if cert is None or key is None:
        raise ConfigError("a TLS server needs --tls-cert and --tls-key")
    ca = _read(config.ca_file, "CA")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def grpc_channel_credentials(config: TLSConfig) -> grpc.ChannelCredentials:
    """gRPC channel credentials: trust ``ca_file``, identify with cert/key when given."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(config.ca_file, "CA"),
        private_key=_read(config.key_file, "key"),
        certificate_chain=_read(config.cert_file, "certificate"),
    )
