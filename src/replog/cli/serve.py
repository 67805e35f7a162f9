"""``replog serve``: run a server: one node, or a member of a replicated cluster."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from replog.errors import ReplogError

__all__ = ["register", "serve_command"]

TlsCertOpt = Annotated[
    Path | None, typer.Option(help="Server certificate (PEM); turns on TLS for both APIs.")
]
TlsKeyOpt = Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")]
TlsCaOpt = Annotated[
    Path | None, typer.Option(help="CA (PEM) client certificates must chain to (mutual TLS).")
]
AclPolicyOpt = Annotated[
    Path | None,
    typer.Option(help="casbin CSV policy; default deny, SIGHUP reloads. Needs mutual TLS."),
]
AclModelOpt = Annotated[
    Path | None, typer.Option(help="casbin model file [default: the built-in ACL model].")
]

NodeIdOpt = Annotated[str | None, typer.Option(help="Cluster node id (same as --server-id).")]
BootstrapOpt = Annotated[
    bool | None, typer.Option("--bootstrap", help="Start a new cluster with this node.")
]
JoinOpt = Annotated[
    str | None, typer.Option(help="Join the cluster that member HOST:PORT belongs to.")
]

MaxBatchRecordsOpt = Annotated[
    int | None, typer.Option(help="Most records one produce request may hold (default 32768).")
]
MaxStreamsOpt = Annotated[
    int | None, typer.Option(help="Most open streams per client identity (default 100).")
]
IdleTimeoutOpt = Annotated[
    float | None,
    typer.Option(help="Close connections without a whole request for this long (default 60 s)."),
]


RetentionMsOpt = Annotated[
    int | None, typer.Option(help="Topics' default time retention, -1 = forever.")
]
RetentionBytesOpt = Annotated[
    int | None, typer.Option(help="Topics' default size retention per partition, -1 = none.")
]
SegmentMsOpt = Annotated[
    int | None, typer.Option(help="Roll a segment this old (default 7 days), -1 = never.")
]
RetentionCheckOpt = Annotated[
    int | None, typer.Option(help="How often retention runs (default 60000).")
]
GrpcAddrOpt = Annotated[
    str | None, typer.Option(help="gRPC listen HOST:PORT [default: 127.0.0.1:7400].")
]
BalanceIntervalOpt = Annotated[
    int | None,
    typer.Option(help="How often leader balancing runs, in ms (cluster; default 5000)."),
]
LeaderBalancingOpt = Annotated[
    bool | None,
    typer.Option(
        "--leader-balancing/--no-leader-balancing",
        help="Hand partitions back to their preferred leaders (cluster; default on).",
    ),
]


def serve_command(  # noqa: PLR0917  (typer options)
    data_dir: Annotated[Path | None, typer.Option(help="Log directory [default: ./data].")] = None,
    grpc_addr: GrpcAddrOpt = None,
    http_addr: Annotated[
        str | None, typer.Option(help="HTTP listen HOST:PORT [default: 127.0.0.1:7401].")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML settings file (env REPLOG_CONFIG).")
    ] = None,
    sync: Annotated[
        str | None, typer.Option(help="When appends are fsynced: always|interval|never.")
    ] = None,
    sync_interval_ms: Annotated[int | None, typer.Option(help="fsync period for interval.")] = None,
    segment_bytes: Annotated[int | None, typer.Option(help="Segment store size.")] = None,
    max_record_bytes: Annotated[int | None, typer.Option(help="Largest record accepted.")] = None,
    retention_ms: RetentionMsOpt = None,
    retention_bytes: RetentionBytesOpt = None,
    segment_ms: SegmentMsOpt = None,
    retention_check_interval_ms: RetentionCheckOpt = None,
    max_batch_records: MaxBatchRecordsOpt = None,
    max_streams_per_identity: MaxStreamsOpt = None,
    idle_timeout_s: IdleTimeoutOpt = None,
    server_id: Annotated[str | None, typer.Option(help="Server id [default: gRPC addr].")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug|info|warning|error.")] = None,
    log_format: Annotated[str | None, typer.Option(help="text|json.")] = None,
    ready_file: Annotated[
        Path | None, typer.Option(help="Write the bound addresses here (JSON) once listening.")
    ] = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_ca: TlsCaOpt = None,
    acl_policy: AclPolicyOpt = None,
    acl_model: AclModelOpt = None,
    node_id: NodeIdOpt = None,
    bootstrap: BootstrapOpt = None,
    join: JoinOpt = None,
    leader_balancing: LeaderBalancingOpt = None,
    leader_balance_interval_ms: BalanceIntervalOpt = None,
    offsets_topic_partitions: Annotated[
        int | None,
        typer.Option(help="Partitions of __consumer_offsets, made on first use (default 8)."),
    ] = None,
    group_heartbeat_interval_ms: Annotated[
        int | None, typer.Option(help="How often group members heartbeat (default 500).")
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="Sign each partition's checkpoint with this key (replog keys init)."),
    ] = None,
    offsets_retention_ms: Annotated[
        int | None,
        typer.Option(help="Time retention of __consumer_offsets (default 7 days)."),
    ] = None,
) -> None:
    """Run a replog server until SIGTERM or Ctrl-C, then shut down without losing acks.

    Settings: flags > REPLOG_* environment > TOML file > defaults. SIGHUP reloads the ACL.
    """
    options = dict(locals())
    options["server_id"] = options.pop("node_id") or server_id
    options.pop("config")
    flags = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
    _serve(flags, config)


def _serve(flags: dict[str, Any], config: Path | None) -> None:
    """Serve with the settings ``flags`` and ``config`` give until stopped (errors: exit 1)."""
    from replog.server.agent import serve
    from replog.server.logs import configure_logging
    from replog.server.settings import load_settings

    try:
        settings = load_settings(flags, config_file=str(config) if config else None)
        configure_logging(settings.log_level, settings.log_format)
        asyncio.run(serve(settings))
    except ReplogError as exc:
        print(f"replog: error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the app."""
    app.command("serve")(serve_command)
