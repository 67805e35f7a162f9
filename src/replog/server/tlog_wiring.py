"""The agent's verifiable-log wiring: the signing key, the checkpointer of a single node or of a
cluster node, and what the HTTP and gRPC routes read."""

from __future__ import annotations

from pathlib import Path

from replog.broker import Broker
from replog.cluster.cluster_node import ClusterNode
from replog.errors import ConfigError, ReplogError
from replog.server.checkpointer import Checkpointer
from replog.server.cluster_checkpointer import ClusterCheckpointer
from replog.server.http_tlog import TlogState
from replog.server.settings import ServerSettings
from replog.server.tlog_source import BrokerTlog, ClusterTlog
from replog.tlog.keyfile import read_signer
from replog.tlog.note import Signer

__all__ = ["AnyCheckpointer", "read_signing_key", "start_checkpoints", "tlog_state"]

AnyCheckpointer = Checkpointer | ClusterCheckpointer


def read_signing_key(settings: ServerSettings) -> Signer | None:
    """The checkpoint signing key, if one is set; ConfigError if it cannot be used."""
    if not settings.signing_key:
        return None
    try:
        return read_signer(Path(settings.signing_key))
    except ReplogError as exc:
        raise ConfigError(str(exc)) from None


def start_checkpoints(
    settings: ServerSettings,
    signer: Signer | None,
    broker: Broker | None,
    cluster: ClusterNode | None,
) -> AnyCheckpointer | None:
    """Start signing the checkpoints of a single node's ``broker`` or of the groups a
    ``cluster`` node runs (None without a key); call on the event loop."""
    if signer is None:
        return None
    s = settings
    checkpointer: AnyCheckpointer
    if cluster is not None:
        checkpointer = ClusterCheckpointer(
            cluster, signer, interval_ms=s.checkpoint_interval_ms, keep=s.checkpoints_kept
        )
    else:
        assert broker is not None
        checkpointer = Checkpointer(
            broker,
            s.server_id or s.grpc_addr,
            signer,
            interval_ms=s.checkpoint_interval_ms,
            keep=s.checkpoints_kept,
        )
    checkpointer.start()
    return checkpointer


def tlog_state(
    broker: Broker | None, cluster: ClusterNode | None, checkpointer: AnyCheckpointer | None
) -> TlogState:
    """What the verifiable-log routes read."""
    if cluster is not None:
        store = checkpointer.store if isinstance(checkpointer, ClusterCheckpointer) else None
        return TlogState(ClusterTlog(cluster.topics, store))
    if broker is None:
        return TlogState()
    single = checkpointer if isinstance(checkpointer, Checkpointer) else None
    return TlogState(BrokerTlog(broker, single))
