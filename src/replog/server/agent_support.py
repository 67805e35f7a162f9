"""What the agent needs beside itself: gRPC channel options, the exposure warning, the
open-file limit and address formatting."""

from __future__ import annotations

import ipaddress
import logging
import resource

from replog.server.settings import ServerSettings, split_addr

__all__ = ["exposure_warning", "grpc_options", "join_host_port", "raise_open_file_limit"]

log = logging.getLogger("replog.server")

_GRPC_MAX_MESSAGE_BYTES = 128 * 1024 * 1024


def grpc_options(idle_timeout_s: float) -> list[tuple[str, int]]:
    """The gRPC server's channel options."""
    idle_ms = int(idle_timeout_s * 1000)
    return [
        ("grpc.max_receive_message_length", _GRPC_MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", _GRPC_MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
        # A connection that has not finished its TLS handshake and HTTP/2 preface in this
        # long is closed (the default is 120 s), and so is one without a call for this long
        # (GOAWAY: a client reconnects on its next call; calls in progress are not idle).
        ("grpc.server_handshake_timeout_ms", idle_ms),
        ("grpc.max_connection_idle_ms", idle_ms),
    ]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def exposure_warning(settings: ServerSettings) -> str | None:
    """A warning when an API listens beyond loopback without TLS (else None)."""
    plain = [] if settings.tls_cert else [settings.grpc_addr, settings.http_addr]
    if settings.kafka_addr and not settings.tls_cert:  # with a certificate it speaks TLS too
        plain.append(settings.kafka_addr)
    exposed = [addr for addr in plain if not _is_loopback(split_addr(addr)[0])]
    if not exposed:
        return None
    return (
        f"listening on {', '.join(exposed)} WITHOUT TLS: anyone who can reach it can read and "
        "write the log; set --tls-cert/--tls-key/--tls-ca (docs/operations.md)"
    )


def join_host_port(host: str, port: int) -> str:
    """``host:port``, bracketing an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (every partition
    holds four descriptors; the usual soft limit of 1,024 is ~200 partitions), as Go's
    runtime does for its servers. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # a container may refuse; keep the soft limit
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
            return soft
        return hard
    return soft


def log_start(
    s: ServerSettings, *, node: str, cluster_id: str | None, addrs: tuple[str, str, str]
) -> None:
    """Log the start line: addresses (gRPC, HTTP, Kafka or ""), data dir, node and cluster
    (``cluster_id`` None: a single node; "": joining a cluster)."""
    grpc_addr, http_addr, kafka_addr = addrs
    kafka = f", Kafka {kafka_addr}" if kafka_addr else ""
    if cluster_id is None:
        where = "(single node)"
    else:
        where = f"of cluster {cluster_id}" if cluster_id else "(joining a cluster)"
    log.info(
        f"started node {node} {where}: gRPC {grpc_addr}, HTTP {http_addr}"
        f"{kafka}, data dir {s.data_dir}",
        extra={
            "event": "start",
            "node": node,
            "cluster": cluster_id or None,
            "grpc_addr": grpc_addr,
            "http_addr": http_addr,
            "kafka_addr": kafka_addr or None,
            "data_dir": s.data_dir,
            "sync": s.sync,
            "tls": bool(s.tls_cert),
            "mutual_tls": bool(s.tls_ca),
            "acl": s.acl_policy or None,
        },
    )
