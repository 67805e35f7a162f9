"""Server settings: defaults < TOML file < ``REPLOG_*`` environment < command-line flags.

Defaults bind loopback only: gRPC on 127.0.0.1:7400, HTTP on 127.0.0.1:7401, data in ./data.
The TOML file holds the same names as the fields below, at the top level or under
``[server]`` (dashes or underscores). Environment variables are the upper-cased names with a
``REPLOG_`` prefix, e.g. ``REPLOG_GRPC_ADDR``; ``REPLOG_CONFIG`` names the TOML file.

Security: ``tls_cert`` + ``tls_key`` turn on TLS for both APIs; ``tls_ca`` also requires
client certificates signed by that CA (mutual TLS). ``acl_policy`` (a casbin CSV, optionally
with ``acl_model``) authorizes each call by the client certificate's identity, so it needs
mutual TLS: settings with an ACL but without ``tls_cert``/``tls_key``/``tls_ca`` are refused.
The Kafka listener uses the same TLS files, identities and ACL; ``kafka_sasl_users`` adds
SASL users for Kafka clients without a certificate.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from replog.broker.config import TopicConfig
from replog.cluster.node_options import NodeOptions
from replog.errors import ConfigError
from replog.security.tls import TLSConfig
from replog.server.limits import (
    DEFAULT_MAX_BATCH_RECORDS,
    DEFAULT_MAX_STREAMS_PER_IDENTITY,
    MAX_BATCH_RECORDS_LIMIT,
)
from replog.storage import LogConfig

__all__ = [
    "DEFAULT_GRPC_ADDR",
    "DEFAULT_HTTP_ADDR",
    "ServerSettings",
    "load_settings",
    "split_addr",
]

EVENT_LOOPS = ("auto", "asyncio", "uvloop")
DEFAULT_GRPC_ADDR = "127.0.0.1:7400"
DEFAULT_HTTP_ADDR = "127.0.0.1:7401"


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything ``replog serve`` can be told."""

    data_dir: str = "./data"
    grpc_addr: str = DEFAULT_GRPC_ADDR
    http_addr: str = DEFAULT_HTTP_ADDR
    http_advertised_addr: str = ""
    """The HOST:PORT other nodes name in ``Replog-Leader`` (default: the bound address)."""
    kafka_addr: str = ""
    kafka_advertised_addr: str = ""
    kafka_sasl_users: str = ""
    """The Kafka port's SASL users file (``replog kafka-user add``): PLAIN and SCRAM-SHA-256/512
    for clients without a certificate, over TLS only; SIGHUP re-reads it."""
    server_id: str = ""
    sync: str = "always"
    sync_interval_ms: int = 100
    segment_bytes: int = 64 * 1024 * 1024
    max_record_bytes: int = 1024 * 1024
    retention_ms: int = -1
    retention_bytes: int = -1
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_check_interval_ms: int = 60_000
    leader_balancing: bool = True
    leader_balance_interval_ms: int = 5_000
    http_max_body_bytes: int = 16 * 1024 * 1024
    max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS
    max_streams_per_identity: int = DEFAULT_MAX_STREAMS_PER_IDENTITY
    idle_timeout_s: float = 60.0
    shutdown_grace_s: float = 10.0
    log_level: str = "info"
    log_format: str = "text"
    ready_file: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    acl_policy: str = ""
    tlog_tiles: bool = False
    """Keep each partition's verifiable-log tiles (``<partition>/tlog``) as records are
    appended (single node; a cluster's replicas always keep them). ``REPLOG_TLOG_TILES=0``
    turns them off, for measuring their cost."""
    signing_key: str = ""
    """The checkpoint signing key (``replog keys init``); none: no checkpoints are signed."""
    checkpoint_interval_ms: int = 1000
    checkpoints_kept: int = 100
    acl_model: str = ""
    bootstrap: bool = False
    join: str = ""
    raft_tick_ms: int = 100
    election_ticks: int = 10
    offsets_topic_partitions: int = 8
    group_heartbeat_interval_ms: int = 500
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    event_loop: str = "auto"
    """The event loop ``replog serve`` runs on: ``auto`` (uvloop when it is installed, else
    asyncio's own), ``asyncio`` or ``uvloop``."""

    def __post_init__(self) -> None:
        split_addr(self.grpc_addr, "grpc_addr")
        split_addr(self.http_addr, "http_addr")
        for name in ("http_advertised_addr", "kafka_addr", "kafka_advertised_addr"):
            if getattr(self, name):
                split_addr(getattr(self, name), name)
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigError(
                f"event_loop must be auto, asyncio or uvloop, got {self.event_loop!r}"
            )
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be text or json, got {self.log_format!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"log_level must be debug, info, warning or error, got {self.log_level!r}"
            )
        if self.http_max_body_bytes < 1024:
            raise ConfigError("http_max_body_bytes must be at least 1024")
        if not 1 <= self.max_batch_records <= MAX_BATCH_RECORDS_LIMIT:
            raise ConfigError(f"max_batch_records must be between 1 and {MAX_BATCH_RECORDS_LIMIT}")
        if self.max_streams_per_identity < 1:
            raise ConfigError("max_streams_per_identity must be at least 1")
        if not self.idle_timeout_s > 0:
            raise ConfigError("idle_timeout_s must be positive")
        if self.bootstrap and self.join:
            raise ConfigError("bootstrap (start a new cluster) and join go separately")
        if self.raft_tick_ms < 1 or self.election_ticks < 2:
            raise ConfigError("raft_tick_ms must be >= 1 and election_ticks >= 2")
        if self.shutdown_grace_s < 0:
            raise ConfigError("shutdown_grace_s must not be negative")
        self.log_config()  # validates sync and sizes
        self.topic_defaults()  # validates the retention settings
        if not 10 <= self.retention_check_interval_ms <= 86_400_000:
            raise ConfigError("retention_check_interval_ms must be between 10 and 86400000")
        if not 10 <= self.leader_balance_interval_ms <= 86_400_000:
            raise ConfigError("leader_balance_interval_ms must be between 10 and 86400000")
        if not 1 <= self.offsets_topic_partitions <= 4096:
            raise ConfigError("offsets_topic_partitions must be between 1 and 4096")
        if self.offsets_retention_ms < 1000:
            raise ConfigError("offsets_retention_ms must be at least 1000")
        if self.checkpoint_interval_ms < 10 or self.checkpoints_kept < 1:
            raise ConfigError("checkpoint_interval_ms must be >= 10, checkpoints_kept >= 1")
        if not 10 <= self.group_heartbeat_interval_ms <= 60_000:
            raise ConfigError("group_heartbeat_interval_ms must be between 10 and 60000")
        self._check_security()

    def _check_security(self) -> None:
        if self.kafka_sasl_users and not self.tls_cert:
            raise ConfigError(
                "kafka_sasl_users needs TLS (tls_cert, tls_key): passwords never cross plaintext"
            )
        if self.kafka_addr and self.acl_policy and not (self.tls_ca or self.kafka_sasl_users):
            raise ConfigError(  # no identity on the Kafka port: it would bypass the ACL
                "the Kafka listener beside an ACL needs identities: tls_ca or kafka_sasl_users"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        if self.tls_ca and not self.tls_cert:
            raise ConfigError("tls_ca (mutual TLS) needs the server's own tls_cert and tls_key")
        if self.acl_policy and not (self.tls_cert and self.tls_ca):
            raise ConfigError(
                "an ACL (acl_policy) needs mutual TLS to verify identities: "
                "set tls_cert, tls_key and tls_ca too"
            )
        if self.acl_model and not self.acl_policy:
            raise ConfigError("acl_model needs acl_policy")

    def node_options(self) -> NodeOptions:
        """The Raft node's timing and limits these settings describe."""
        return NodeOptions(
            tick_s=self.raft_tick_ms / 1000,
            election_ticks=self.election_ticks,
            max_record_bytes=self.max_record_bytes,
            max_batch_records=self.max_batch_records,
            tlog=self.tlog_on,
        )

    @property
    def tlog_on(self) -> bool:
        """Whether logs keep their verifiable-log trees: ``tlog_tiles``, or a signing key
        (checkpoints need the tiles)."""
        return self.tlog_tiles or bool(self.signing_key)

    def tls_config(self) -> TLSConfig | None:
        """The server's TLS files, or None when it serves plaintext."""
        if not self.tls_cert:
            return None
        return TLSConfig(self.tls_cert, self.tls_key, self.tls_ca or None)

    def topic_defaults(self) -> TopicConfig:
        """The configuration of a topic that sets no key of its own."""
        return TopicConfig(
            retention_ms=self.retention_ms,
            retention_bytes=self.retention_bytes,
            segment_bytes=self.segment_bytes,
            segment_ms=self.segment_ms,
            max_record_bytes=self.max_record_bytes,
            sync=self.sync,  # type: ignore[arg-type]  # checked by log_config
        )

    def log_config(self) -> LogConfig:
        """The LogConfig these settings describe."""
        return LogConfig(
            max_store_bytes=self.segment_bytes,
            max_record_bytes=self.max_record_bytes,
            sync=self.sync,  # type: ignore[arg-type]  # checked by LogConfig
            sync_interval_ms=self.sync_interval_ms,
        )


def split_addr(addr: str, name: str = "address") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` too); ConfigError if it is not one."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name} must be HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> ServerSettings:
    """Merge defaults, the TOML file, ``REPLOG_*`` variables and flags (None = not given)."""
    env = os.environ if env is None else env
    known = {f.name: f for f in fields(ServerSettings)}
    values: dict[str, Any] = {}
    path = config_file or env.get("REPLOG_CONFIG")
    if path:
        values.update(_from_toml(path, known))
    for name in known:
        raw = env.get(f"REPLOG_{name.upper()}")
        if raw is not None and raw != "":
            values[name] = raw
    for name, value in (flags or {}).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value
    converted = {name: _convert(name, value, known[name]) for name, value in values.items()}
    try:
        return ServerSettings(**converted)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc)) from exc


def _from_toml(path: str, known: Mapping[str, dataclasses.Field[Any]]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    table = doc.get("server", doc)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [server] must be a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        out[name] = value
    return out


def _convert(name: str, value: Any, field: dataclasses.Field[Any]) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    return str(value)
