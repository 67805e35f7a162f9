"""The controller's metadata state: nodes, topics and their partitions' replica sets.

Values are frozen dataclasses; their maps are never changed in place (every change builds
new ones, see ``replog.cluster.controller``), so a state can be shared freely. Nothing that
is encoded depends on a map's order: encoders sort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from replog.broker.config import TopicConfig, check_keys, normalize_key

__all__ = [
    "ControllerState",
    "NodeInfo",
    "NodeState",
    "PartitionInfo",
    "TopicInfo",
    "active_nodes",
    "canonical_overrides",
    "with_config_changes",
]

NodeState = Literal["active", "decommissioning"]
NODE_STATES: tuple[NodeState, ...] = ("active", "decommissioning")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A registered node: where it is reached, whether it still takes new replicas
    (``active``) or is having its replicas moved away (``decommissioning``), where its
    Kafka listener is reached ("" when it runs none or has not said) and where its HTTP API
    is reached ("" until it has said)."""

    address: str
    state: NodeState = "active"
    kafka_address: str = ""
    http_address: str = ""


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition's replica set, preferred leader first, and the replica set it is
    being moved to (``target``; None when no move is in progress)."""

    replicas: tuple[str, ...]
    target: tuple[str, ...] | None = None

    @property
    def hosts(self) -> frozenset[str]:
        """Every node that holds, or is to hold, a replica of the partition."""
        return frozenset(self.replicas) | frozenset(self.target or ())


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """One topic.

    ``topic_id`` is the metadata index of the command that created it (0 for ``default``):
    a topic deleted and created again under the same name has another id, so a replica of
    the old one is never taken for the new one (Kafka's topic ids). ``start`` is the
    placement rotation its partitions were placed with, ``config`` its overrides of the
    defaults (canonical keys and values).
    """

    topic_id: int
    start: int
    replication_factor: int
    config: Mapping[str, str]
    partitions: tuple[PartitionInfo, ...]


@dataclass(frozen=True, slots=True)
class ControllerState:
    """The cluster's metadata as of the command at log index ``version``."""

    nodes: Mapping[str, NodeInfo]
    topics: Mapping[str, TopicInfo]
    version: int


def active_nodes(state: ControllerState) -> list[str]:
    """The ids of the nodes that take new replicas, sorted."""
    return sorted(n for n, info in state.nodes.items() if info.state == "active")


def canonical_overrides(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` with canonical keys (``retention.ms`` is ``retention_ms``) and values
    (``" 5"`` is ``"5"``), sorted by key. Raises ConfigError naming a bad key or value, or
    a combination the keys' rules refuse."""
    parsed = TopicConfig().with_values(values)
    keys = sorted({normalize_key(key) for key in values})
    return {key: str(getattr(parsed, key)) for key in keys}


def with_config_changes(
    config: Mapping[str, str], set_: Mapping[str, str], delete: Sequence[str]
) -> dict[str, str]:
    """``config`` with ``delete``'s keys reset to the defaults and ``set_``'s keys set;
    ConfigError naming a bad key or value (nothing changes)."""
    result = dict(config)
    for key in check_keys(list(delete)):
        result.pop(key, None)
    result.update({normalize_key(key): value for key, value in set_.items()})
    return canonical_overrides(result)
