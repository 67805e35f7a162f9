"""``replog serve``: run a server: one node, or a member of a replicated cluster."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from replog.errors import ConfigError, ReplogError

__all__ = ["loop_factory", "register", "serve_command"]

from replog.cli.serve_options import name_flags
from replog.cli.serve_options import setting_option as _s

# One flag per ServerSettings field (tests/unit/cli/test_cli_help.py checks that).
Str = str | None
Int = int | None
Float = float | None
Flag = bool | None
PathOpt = Path | None


DataDirOpt = Annotated[PathOpt, _s("data_dir", "Log directory.")]
GrpcAddrOpt = Annotated[Str, _s("grpc_addr", "gRPC listen HOST:PORT.")]
HttpAddrOpt = Annotated[Str, _s("http_addr", "HTTP listen HOST:PORT.")]
ConfigOpt = Annotated[
    PathOpt,
    typer.Option(
        envvar="REPLOG_CONFIG",
        show_envvar=True,
        show_default="none",
        help="TOML settings file.",
    ),
]
SyncOpt = Annotated[Str, _s("sync", "When appends are fsynced: always|interval|never.")]
SyncIntervalMsOpt = Annotated[Int, _s("sync_interval_ms", "fsync period for interval.")]
SegmentBytesOpt = Annotated[Int, _s("segment_bytes", "Segment store size.")]
MaxRecordBytesOpt = Annotated[Int, _s("max_record_bytes", "Largest record accepted.")]
RetentionMsOpt = Annotated[Int, _s("retention_ms", "Topics' default time retention, -1 = forever.")]
RetentionBytesOpt = Annotated[
    Int, _s("retention_bytes", "Topics' default size retention per partition, -1 = none.")
]
SegmentMsOpt = Annotated[Int, _s("segment_ms", "Roll a segment this old, -1 = never.")]
RetentionCheckIntervalMsOpt = Annotated[
    Int, _s("retention_check_interval_ms", "How often retention runs.")
]
MaxBatchRecordsOpt = Annotated[
    Int, _s("max_batch_records", "Most records one produce request may hold.")
]
MaxStreamsPerIdentityOpt = Annotated[
    Int, _s("max_streams_per_identity", "Most open streams per client identity.")
]
IdleTimeoutSOpt = Annotated[
    Float, _s("idle_timeout_s", "Close connections without a whole request for this long.")
]
HttpMaxBodyBytesOpt = Annotated[
    Int, _s("http_max_body_bytes", "Largest HTTP request body accepted (at least 1024).")
]
ShutdownGraceSOpt = Annotated[
    Float, _s("shutdown_grace_s", "How long a stop waits for calls in flight to finish.")
]
ServerIdOpt = Annotated[Str, _s("server_id", "Server id (same as --node-id).")]
LogLevelOpt = Annotated[Str, _s("log_level", "debug|info|warning|error.")]
LogFormatOpt = Annotated[Str, _s("log_format", "text|json.")]
ReadyFileOpt = Annotated[
    PathOpt, _s("ready_file", "Write the bound addresses here (JSON) once listening.")
]
TlsCertOpt = Annotated[
    PathOpt, _s("tls_cert", "Server certificate (PEM); turns on TLS for both APIs.")
]
TlsKeyOpt = Annotated[PathOpt, _s("tls_key", "The certificate's private key (PEM).")]
TlsCaOpt = Annotated[
    PathOpt, _s("tls_ca", "CA (PEM) client certificates must chain to (mutual TLS).")
]
AclPolicyOpt = Annotated[
    PathOpt, _s("acl_policy", "casbin CSV policy; default deny, SIGHUP reloads; mutual TLS.")
]
AclModelOpt = Annotated[
    PathOpt, _s("acl_model", "casbin model file (none: the built-in ACL model).")
]
NodeIdOpt = Annotated[
    Str,
    typer.Option(help="Cluster node id (same as --server-id).", show_default="the gRPC address"),
]
BootstrapOpt = Annotated[
    Flag, _s("bootstrap", "Start a new cluster with this node.", "--bootstrap")
]
JoinOpt = Annotated[Str, _s("join", "Join the cluster that member HOST:PORT belongs to.")]
LeaderBalancingOpt = Annotated[
    Flag,
    _s(
        "leader_balancing",
        "Hand partitions back to their preferred leaders (cluster).",
        "--leader-balancing/--no-leader-balancing",
    ),
]
LeaderBalanceIntervalMsOpt = Annotated[
    Int, _s("leader_balance_interval_ms", "How often leader balancing runs (cluster).")
]
HttpAdvertisedAddrOpt = Annotated[
    Str,
    _s("http_advertised_addr", "HOST:PORT other nodes send HTTP clients to (Replog-Leader)."),
]
KafkaAddrOpt = Annotated[Str, _s("kafka_addr", "Kafka protocol listen HOST:PORT (off unless set).")]
KafkaAdvertisedAddrOpt = Annotated[
    Str, _s("kafka_advertised_addr", "HOST:PORT Kafka clients are told (default: the bound one).")
]
KafkaSaslUsersOpt = Annotated[
    PathOpt,
    _s(
        "kafka_sasl_users",
        "SASL/PLAIN and SCRAM users of the Kafka port (replog kafka-user add); needs TLS.",
    ),
]
SigningKeyOpt = Annotated[
    Path | None,
    _s("signing_key", "Sign each partition's checkpoint with this key (replog keys init)."),
]
TlogTilesOpt = Annotated[
    bool | None,
    _s(
        "tlog_tiles",
        "Keep each partition's verifiable-log tiles (on with --signing-key).",
        "--tlog-tiles/--no-tlog-tiles",
    ),
]
CheckpointIntervalMsOpt = Annotated[
    Int, _s("checkpoint_interval_ms", "How often a grown partition's checkpoint is signed.")
]
EventLoopOpt = Annotated[Str, _s("event_loop", "auto (uvloop when installed)|asyncio|uvloop.")]
CheckpointsKeptOpt = Annotated[
    Int, _s("checkpoints_kept", "Signed checkpoints kept per partition.")
]
RaftTickMsOpt = Annotated[Int, _s("raft_tick_ms", "Raft tick period (cluster).")]
OffsetsTopicPartitionsOpt = Annotated[
    Int, _s("offsets_topic_partitions", "Partitions of __consumer_offsets (made on first use).")
]
GroupHeartbeatIntervalMsOpt = Annotated[
    Int, _s("group_heartbeat_interval_ms", "How often consumer group members heartbeat.")
]
OffsetsRetentionMsOpt = Annotated[
    Int, _s("offsets_retention_ms", "Time retention of __consumer_offsets (when made).")
]
ElectionTicksOpt = Annotated[
    Int, _s("election_ticks", "Ticks without a leader before an election (cluster).")
]


def serve_command(  # noqa: PLR0917  (one flag per setting)
    data_dir: DataDirOpt = None,
    grpc_addr: GrpcAddrOpt = None,
    http_addr: HttpAddrOpt = None,
    http_advertised_addr: HttpAdvertisedAddrOpt = None,
    kafka_addr: KafkaAddrOpt = None,
    kafka_advertised_addr: KafkaAdvertisedAddrOpt = None,
    kafka_sasl_users: KafkaSaslUsersOpt = None,
    config: ConfigOpt = None,
    sync: SyncOpt = None,
    sync_interval_ms: SyncIntervalMsOpt = None,
    segment_bytes: SegmentBytesOpt = None,
    max_record_bytes: MaxRecordBytesOpt = None,
    retention_ms: RetentionMsOpt = None,
    retention_bytes: RetentionBytesOpt = None,
    segment_ms: SegmentMsOpt = None,
    retention_check_interval_ms: RetentionCheckIntervalMsOpt = None,
    max_batch_records: MaxBatchRecordsOpt = None,
    max_streams_per_identity: MaxStreamsPerIdentityOpt = None,
    idle_timeout_s: IdleTimeoutSOpt = None,
    http_max_body_bytes: HttpMaxBodyBytesOpt = None,
    shutdown_grace_s: ShutdownGraceSOpt = None,
    server_id: ServerIdOpt = None,
    log_level: LogLevelOpt = None,
    log_format: LogFormatOpt = None,
    ready_file: ReadyFileOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_ca: TlsCaOpt = None,
    acl_policy: AclPolicyOpt = None,
    acl_model: AclModelOpt = None,
    node_id: NodeIdOpt = None,
    bootstrap: BootstrapOpt = None,
    join: JoinOpt = None,
    leader_balancing: LeaderBalancingOpt = None,
    leader_balance_interval_ms: LeaderBalanceIntervalMsOpt = None,
    raft_tick_ms: RaftTickMsOpt = None,
    election_ticks: ElectionTicksOpt = None,
    offsets_topic_partitions: OffsetsTopicPartitionsOpt = None,
    group_heartbeat_interval_ms: GroupHeartbeatIntervalMsOpt = None,
    offsets_retention_ms: OffsetsRetentionMsOpt = None,
    signing_key: SigningKeyOpt = None,
    tlog_tiles: TlogTilesOpt = None,
    checkpoint_interval_ms: CheckpointIntervalMsOpt = None,
    checkpoints_kept: CheckpointsKeptOpt = None,
    event_loop: EventLoopOpt = None,
) -> None:
    """Run a replog server until SIGTERM or Ctrl-C, then shut down without losing acks.

    Settings: flags > REPLOG_* environment > TOML file > defaults. SIGHUP reloads the ACL and
    the Kafka SASL users.
    """
    options = dict(locals())
    options["server_id"] = options.pop("node_id") or server_id
    options.pop("config")
    flags = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
    _serve(flags, config)


def loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop ``event_loop`` names (None: asyncio's own). uvloop
    answers a one-at-a-time Kafka produce about 0.1 ms sooner (docs/benchmarks.md).
    Raises ConfigError for ``uvloop`` when it is not installed."""
    if event_loop == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")  # optional: not among the dependencies
    except ImportError:
        if event_loop == "uvloop":
            raise ConfigError("event_loop uvloop: uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _serve(flags: dict[str, Any], config: Path | None) -> None:
    """Serve with the settings ``flags`` and ``config`` give until stopped (errors: exit 1)."""
    from replog.server.agent import serve
    from replog.server.logs import configure_logging
    from replog.server.settings import load_settings

    try:
        settings = load_settings(flags, config_file=str(config) if config else None)
        configure_logging(settings.log_level, settings.log_format)
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings))
    except ConfigError as exc:
        print(f"replog: error: {name_flags(str(exc))}", file=sys.stderr)
        raise typer.Exit(1) from None
    except ReplogError as exc:
        print(f"replog: error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the app."""
    app.command("serve")(serve_command)
