"""The server process wiring: one Log, one backend, the gRPC and HTTP servers, shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable

import grpc
from aiohttp import web
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from replog.broker import Broker
from replog.cluster.backend import RaftBackend
from replog.cluster.cluster_node import ClusterNode
from replog.cluster.members import is_clustered, resolve_node_id
from replog.cluster.topics import ClusterTopics
from replog.errors import ConfigError, StorageIOError
from replog.security.acl import Authorizer
from replog.security.tls import (
    grpc_channel_credentials,
    grpc_server_credentials,
    server_ssl_context,
)
from replog.server.admin_service import ADMIN_SERVICE_NAME, AdminService, SingleNodeCluster
from replog.server.agent_support import (
    exposure_warning,
    grpc_options,
    join_host_port,
    log_start,
    raise_open_file_limit,
)
from replog.server.auth import Gatekeeper, GrpcAuthInterceptor, http_auth_middleware
from replog.server.backend import SingleNodeBackend
from replog.server.broker_backend import BrokerBackend
from replog.server.group_service import GroupService
from replog.server.groups_grpc import GROUPS_SERVICE_NAME, GroupsGrpc
from replog.server.grpc_service import SERVICE_NAME, LogService
from replog.server.http_app import HttpState, error_response, make_app
from replog.server.http_errors import JsonErrorAppRunner
from replog.server.http_tlog import TLOG_KEY
from replog.server.kafka.cluster_view import ClusterView
from replog.server.kafka.context import KafkaContext
from replog.server.kafka.listener import KafkaListener
from replog.server.kafka.security import security_for
from replog.server.limits import Limits
from replog.server.metrics import ServerMetrics
from replog.server.partition_metrics import PartitionCollector, partition_sources
from replog.server.settings import ServerSettings, split_addr
from replog.server.tlog_grpc import TLOG_SERVICE_NAME, TlogGrpc
from replog.server.tlog_wiring import (
    AnyCheckpointer,
    read_signing_key,
    start_checkpoints,
    tlog_state,
)

__all__ = ["Agent", "exposure_warning", "serve"]

log = logging.getLogger("replog.server")


class Agent:
    """Hosts the gRPC and HTTP APIs over one Log in the running event loop.

    ``start()`` opens the log and binds both servers (port 0 picks a free port; the real
    addresses are then in ``grpc_address`` and ``http_address``); ``shutdown()`` stops
    accepting, lets in-flight calls finish, and closes the log (flush + fsync).

    With ``tls_cert``/``tls_key`` both APIs serve TLS (>= 1.2); with ``tls_ca`` too, clients
    must present a certificate that CA signed. With ``acl_policy``, every call is checked by
    one Gatekeeper (gRPC interceptor, HTTP middleware); ``reload_acl()`` re-reads the policy.
    ``http_ssl_context`` overrides the HTTP context the settings describe.
    """

    def __init__(
        self,
        settings: ServerSettings,
        *,
        registry: CollectorRegistry | None = None,
        http_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = ServerMetrics(registry)
        self._http_ssl_context = http_ssl_context
        self._grpc_credentials: grpc.ServerCredentials | None = None
        self.gatekeeper = Gatekeeper(None)
        self.grpc_address = ""
        self.http_address = ""
        self.kafka_address = ""
        """The Kafka listener's bound HOST:PORT ("" when it is off)."""
        self._kafka: KafkaListener | None = None
        self._kafka_view: ClusterView | None = None
        self._broker: Broker | None = None
        self.checkpointer: AnyCheckpointer | None = None
        """Signs the partitions' checkpoints (with a signing key)."""
        self._backend: SingleNodeBackend | None = None
        self._broker_backend: BrokerBackend | None = None
        self.topics: BrokerBackend | ClusterTopics | None = None
        """The topics behind the APIs, once started."""
        self.cluster: ClusterNode | None = None
        self._grpc: aio.Server | None = None
        self._service: LogService | None = None
        self._admin: AdminService | None = None
        self.groups: GroupService | None = None
        """Consumer groups, once started."""
        self._groups_grpc: GroupsGrpc | None = None
        self._health: health.aio.HealthServicer | None = None
        self._http_state: HttpState | None = None
        self._runner: web.AppRunner | None = None
        self._stopped = False
        self.failure: BaseException | None = None
        """Set when the node fail-stopped (its storage failed): ``serve`` then exits non-zero."""
        self.on_failure: Callable[[], None] = lambda: None
        self._unhealthy: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Open the log and start listening on both APIs.

        Raises ConfigError for unreadable TLS or ACL files (before the log is opened) and for
        addresses that cannot be bound.
        """
        s = self.settings
        self._load_security()
        signer = read_signing_key(s)
        if s.bootstrap or s.join or is_clustered(s.data_dir):
            self.cluster = await asyncio.to_thread(self._open_cluster)
            self.cluster.on_fatal = self._fail_stop
            self.cluster.inbox.on_drop = self.metrics.on_raft_dropped
        else:
            self._broker = await asyncio.to_thread(self._open_broker)
        self.checkpointer = start_checkpoints(s, signer, self._broker, self.cluster)
        try:
            await self._start_servers()
            self.kafka_address = await self._start_kafka()
        except BaseException:
            await self.shutdown()
            raise
        self._log_start()
        warning = exposure_warning(s)
        if warning:
            log.warning(warning)
            print(f"replog: WARNING: {warning}", file=sys.stderr, flush=True)

    def _log_start(self) -> None:
        """The start line: addresses, data dir, node id and cluster."""
        cluster = self.cluster
        node = cluster.name if cluster is not None else self.settings.server_id
        log_start(
            self.settings,
            node=node or self.grpc_address,
            cluster_id=(cluster.inbox.cluster_id or "") if cluster is not None else None,
            addrs=(self.grpc_address, self.http_address, self.kafka_address),
        )

    def _load_security(self) -> None:
        tls = self.settings.tls_config()
        if tls is not None:
            self._grpc_credentials = grpc_server_credentials(tls)
            if self._http_ssl_context is None:
                self._http_ssl_context = server_ssl_context(tls)
        if self.settings.acl_policy:
            self.gatekeeper.authorizer = Authorizer(
                self.settings.acl_policy, self.settings.acl_model or None
            )
        kafka = self.settings.kafka_addr  # TLS, SASL users, ACL of the Kafka port
        self._kafka_security = security_for(self.settings, self.gatekeeper) if kafka else None

    def _open_cluster(self) -> ClusterNode:
        s = self.settings
        tls = s.tls_config()
        return ClusterNode(
            s.data_dir,
            s.log_config(),
            name=resolve_node_id(s.data_dir, s.server_id, s.grpc_addr),
            bootstrap=s.bootstrap,
            options=s.node_options(),
            credentials=grpc_channel_credentials(tls) if tls is not None else None,
            topic_defaults=s.topic_defaults(),
            leader_balancing=s.leader_balancing,
            balance_interval_s=s.leader_balance_interval_ms / 1000,
            retention_interval_s=s.retention_check_interval_ms / 1000,
        )

    def _open_broker(self) -> Broker:
        s = self.settings
        return Broker(
            s.data_dir,
            defaults=s.topic_defaults(),
            sync_interval_ms=s.sync_interval_ms,
            node_id=s.server_id or s.grpc_addr,
            verifiable=s.tlog_on,
        )

    def _fail_stop(self, exc: BaseException) -> None:
        """The node's storage failed: unhealthy at once (readyz 503, health NOT_SERVING),
        then a graceful shutdown and a non-zero exit (a supervisor restarts the process)."""
        if self.failure is not None:
            return
        self.failure = exc
        log.critical(
            "storage failed; this node stops (fail-stop) and exits: %s",
            exc,
            extra={"event": "fail_stop", "node": self._node_name(), "error": str(exc)},
        )
        if self._http_state is not None:
            self._http_state.draining = True
        if self._health is not None:
            self._unhealthy = asyncio.ensure_future(self._health.enter_graceful_shutdown())
        self.on_failure()

    def _node_name(self) -> str:
        if self.cluster is not None:
            return self.cluster.name
        return self.settings.server_id or self.grpc_address

    def reload_acl(self) -> bool:
        """Re-read the ACL files and Kafka SASL users (SIGHUP); False, keeping the old ones,
        if they do not load."""
        users = self._kafka_security.users if self._kafka_security is not None else None
        users_ok = users.reload() if users is not None else True
        authorizer = self.gatekeeper.authorizer
        fields = {"event": "reload", "node": self._node_name(), "acl": self.settings.acl_policy}
        if authorizer is None:
            log.info("SIGHUP: no ACL configured; nothing to reload", extra=fields)
            return False
        ok = authorizer.reload()
        if ok:
            log.info("SIGHUP: ACL policy reloaded from %s", authorizer.policy_file, extra=fields)
        else:
            log.warning("SIGHUP: ACL reload failed; the previous policy stays", extra=fields)
        return ok and users_ok

    def _make_backend(self) -> SingleNodeBackend | RaftBackend:
        if self.cluster is not None:
            self.topics = self.cluster.topics
            return self.cluster.backend
        assert self._broker is not None
        topics = self._broker_backend = BrokerBackend(
            self._broker,
            server_id=self.settings.server_id,
            rpc_addr=self.settings.grpc_addr,
            on_appended=self.metrics.on_appended,
            on_storage_failure=self._fail_stop,
            max_batch_records=self.settings.max_batch_records,
            retention_check_interval_ms=self.settings.retention_check_interval_ms,
        )
        topics.start()
        self.topics = topics
        backend = self._backend = topics.default
        return backend

    def _make_groups(self, topics: BrokerBackend | ClusterTopics) -> GroupService:
        s, cluster = self.settings, self.cluster
        if cluster is None:
            return GroupService(
                topics,
                is_me=lambda server: True,  # a single node leads every partition
                offsets_partitions=s.offsets_topic_partitions,
                offsets_replication=lambda: 1,
                heartbeat_interval_ms=s.group_heartbeat_interval_ms,
                offsets_retention_ms=s.offsets_retention_ms,
            )
        return GroupService(
            topics,
            is_me=lambda server: server.id == cluster.name,
            offsets_partitions=s.offsets_topic_partitions,
            offsets_replication=lambda: min(3, len(cluster.members())),
            heartbeat_interval_ms=s.group_heartbeat_interval_ms,
            offsets_retention_ms=s.offsets_retention_ms,
        )

    def _grpc_server(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> aio.Server:
        """The gRPC server with the services' ``handlers``, health and reflection (not yet
        listening)."""
        gate = self.gatekeeper
        server = aio.server(
            interceptors=[GrpcAuthInterceptor(gate)] if gate.authorizer is not None else None,
            options=grpc_options(self.settings.idle_timeout_s),
        )
        server.add_generic_rpc_handlers(handlers)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            SERVICE_NAME,
            ADMIN_SERVICE_NAME,
            GROUPS_SERVICE_NAME,
            TLOG_SERVICE_NAME,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        return server

    def _cluster_handlers(
        self, backend: SingleNodeBackend | RaftBackend
    ) -> tuple[grpc.GenericRpcHandler, ...]:
        """The Raft and Cluster services of a cluster member; a single node's Cluster
        service answers as a one-node cluster."""
        if self.cluster is not None:
            return tuple(self.cluster.generic_handlers())
        single = SingleNodeCluster(
            backend.servers, lambda: backend.high_watermark - 1, self.metrics
        )
        return (single.generic_handler(),)

    def _tlog_grpc(self) -> TlogGrpc:
        return TlogGrpc(tlog_state(self._broker, self.cluster, self.checkpointer), self.metrics)

    def _bind_metrics(
        self, backend: SingleNodeBackend | RaftBackend, topics: BrokerBackend | ClusterTopics
    ) -> None:
        """The log gauges, and the per-partition and per-group series read at scrape time."""
        self.metrics.bind_log(lambda: backend.size_bytes, lambda: backend.segment_count)
        sources = partition_sources(topics, self.cluster, self._broker_backend, lambda: self.groups)
        self.metrics.add_exposition(PartitionCollector(sources).render)

    async def _start_servers(self) -> None:
        s = self.settings
        backend = self._make_backend()
        limits = Limits(s.max_batch_records, s.max_streams_per_identity)
        topics = self.topics
        assert topics is not None
        # GetServers answers from the log of the routes without a topic (default/0), which
        # exists whatever topics are deleted: it is the server's own membership.
        self._service = LogService(topics, self.metrics, limits, servers=backend.servers)
        self._admin = AdminService(topics, self.metrics)
        self.groups = self._make_groups(topics)
        self._bind_metrics(backend, topics)
        self._groups_grpc = GroupsGrpc(self.groups, self.metrics)
        self.groups.start()
        server = self._grpc = self._grpc_server(
            (
                self._service.generic_handler(),
                self._admin.generic_handler(),
                self._groups_grpc.generic_handler(),
                *self._cluster_handlers(backend),
                self._tlog_grpc().generic_handler(),
            )
        )
        host, _ = split_addr(s.grpc_addr, "grpc_addr")
        try:
            if self._grpc_credentials is None:
                port = server.add_insecure_port(s.grpc_addr)
            else:
                port = server.add_secure_port(s.grpc_addr, self._grpc_credentials)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen for gRPC on {s.grpc_addr}: {exc}") from None
        if not port:
            raise ConfigError(f"cannot listen for gRPC on {s.grpc_addr}")
        await server.start()
        self.grpc_address = join_host_port(host, port)
        if self._broker_backend is not None:
            self._broker_backend.set_address(s.server_id or self.grpc_address, self.grpc_address)
        elif self.cluster is not None:
            self.cluster.start(self.grpc_address, s.join)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert self._health is not None
        for name in ("", SERVICE_NAME, ADMIN_SERVICE_NAME, GROUPS_SERVICE_NAME):
            await self._health.set(name, serving)
        await self._start_http(backend, limits)

    async def _start_http(self, backend: SingleNodeBackend | RaftBackend, limits: Limits) -> None:
        """Listen for HTTP; a cluster node then has the metadata name its HTTP address."""
        s = self.settings
        self._http_state = HttpState(backend, self.metrics, self.cluster, limits, self.topics)
        self._http_state.groups = self.groups
        gate = self.gatekeeper
        auth = http_auth_middleware(gate, error_response) if gate.authorizer else None
        app = make_app(self._http_state, max_body_bytes=s.http_max_body_bytes, auth=auth)
        app[TLOG_KEY] = tlog_state(self._broker, self.cluster, self.checkpointer)
        # keepalive_timeout also closes a connection that never sends a whole request head:
        # aiohttp starts its timer when the connection opens (its default is an hour).
        runner = JsonErrorAppRunner(  # aiohttp's own parser errors answer in JSON too
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=s.shutdown_grace_s,
            keepalive_timeout=s.idle_timeout_s,
        )
        await runner.setup()
        self._runner = runner
        host, port = split_addr(s.http_addr, "http_addr")
        site = web.TCPSite(runner, host, port, ssl_context=self._http_ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen for HTTP on {s.http_addr}: {exc.strerror}") from None
        bound = runner.addresses[0]
        self.http_address = join_host_port(host, int(bound[1]))
        advertised = s.http_advertised_addr or self.http_address
        self._http_state.http_address = advertised
        if self.cluster is not None:  # other nodes name it in Replog-Leader (issue 16)
            self.cluster.topics_host.http_address = advertised

    async def _start_kafka(self) -> str:
        """Start the Kafka listener when ``kafka_addr`` is set; its bound address or ""."""
        s = self.settings
        if not s.kafka_addr:
            return ""
        assert self.topics is not None
        host, port = split_addr(s.kafka_addr, "kafka_addr")
        ctx = KafkaContext(self.topics, max_batch_records=s.max_batch_records, groups=self.groups)
        security = self._kafka_security
        self._kafka = KafkaListener(ctx, idle_timeout_s=s.idle_timeout_s, security=security)
        address = await self._kafka.start(host, port)
        ctx.host, ctx.port = split_addr(s.kafka_advertised_addr or address, "kafka_advertised_addr")
        if self.cluster is not None:  # every node names every node's listener (issue 14)
            ctx.cluster = self._kafka_view = ClusterView(self.cluster.topics_host)
            self.cluster.topics_host.kafka_address = join_host_port(ctx.host, ctx.port)
        return address

    async def shutdown(self) -> None:
        """Stop accepting, finish in-flight requests, close the log. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_s
        log.info("shutting down", extra={"grace_s": grace})
        if self.cluster is not None:
            await self.cluster.shutdown_transfer()  # producers move to the new leader
        if self._service is not None:
            self._service.draining = True
        if self._admin is not None:
            self._admin.draining = True
        if self._groups_grpc is not None:
            self._groups_grpc.draining = True
        if self._http_state is not None:
            self._http_state.draining = True
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._broker_backend is not None:
            self._broker_backend.begin_shutdown()  # refuses new appends, ends tailing streams
        if self.cluster is not None:
            self.cluster.backend.begin_shutdown()
            self.cluster.close_streams()
        if self._kafka is not None:
            await self._kafka.stop()
        if self._kafka_view is not None:
            await self._kafka_view.close()
        if self._grpc is not None:
            await self._grpc.stop(grace)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.groups is not None:
            await self.groups.close()
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        if self._broker_backend is not None:
            await self._broker_backend.close()
        elif self._broker is not None:
            await asyncio.to_thread(self._broker.close)
        log.info("stopped")


def _write_ready_file(path: str, agent: Agent) -> None:
    data = {"grpc_addr": agent.grpc_address, "http_addr": agent.http_address, "pid": os.getpid()}
    if agent.kafka_address:
        data["kafka_addr"] = agent.kafka_address
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


async def serve(settings: ServerSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run a server until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    SIGHUP re-reads the ACL policy and Kafka SASL users (a broken file: logged, old kept).
    """
    raise_open_file_limit()
    agent = Agent(settings)
    stop = stop or asyncio.Event()
    agent.on_failure = stop.set
    await agent.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, agent.reload_acl)
    try:
        if settings.ready_file:
            _write_ready_file(settings.ready_file, agent)
        scheme = "https" if settings.tls_cert else "http"
        kafka = f", Kafka on {agent.kafka_address}" if agent.kafka_address else ""
        print(
            f"replog serving gRPC on {agent.grpc_address}, HTTP on {scheme}://{agent.http_address}"
            + kafka,
            flush=True,
        )
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await agent.shutdown()
    if agent.failure is not None:
        raise StorageIOError(f"stopped after a storage failure: {agent.failure}")
