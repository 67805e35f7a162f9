"""Snapshots of the controller's metadata: ``encode_state`` / ``decode_state``.

The encoding is canonical JSON (sorted keys, lists in sorted order, no spaces) with a
format version, so two replicas that applied the same commands write byte-identical
snapshots, and a new node is caught up by decoding one.
"""

from __future__ import annotations

from typing import Any

from replog.cluster.controller_commands import canonical_json, check_version, parse_json
from replog.cluster.controller_state import (
    NODE_STATES,
    ControllerState,
    NodeInfo,
    NodeState,
    PartitionInfo,
    TopicInfo,
)
from replog.errors import InvalidArgumentError

__all__ = ["STATE_VERSION", "decode_state", "encode_state"]

#: The snapshot format this node writes and the only one it reads.
STATE_VERSION = 1


def encode_state(state: ControllerState) -> bytes:
    """``state`` as canonical bytes (equal states give equal bytes)."""
    nodes = [_encode_node(n, state.nodes[n]) for n in sorted(state.nodes)]
    topics = [_encode_topic(name, state.topics[name]) for name in sorted(state.topics)]
    body = {"v": STATE_VERSION, "version": state.version, "nodes": nodes, "topics": topics}
    return canonical_json(body)


def _encode_node(name: str, node: NodeInfo) -> list[str]:
    """[id, address, state], then the Kafka address when there is one or an HTTP address
    follows, then the HTTP address when there is one (so a state without either gives the
    bytes it gave before they existed, and one without an HTTP address those it gave
    before HTTP addresses)."""
    fields = [name, node.address, node.state]
    if node.http_address:
        return [*fields, node.kafka_address, node.http_address]
    return [*fields, node.kafka_address] if node.kafka_address else fields


def _decode_node(item: object) -> tuple[str, NodeInfo]:
    if not isinstance(item, list) or len(item) not in {3, 4, 5}:
        raise ValueError("node")
    kafka = _str(item[3]) if len(item) >= 4 else ""
    http = _str(item[4]) if len(item) == 5 else ""
    return _str(item[0]), NodeInfo(_str(item[1]), _node_state(item[2]), kafka, http)


def _encode_topic(name: str, topic: TopicInfo) -> dict[str, Any]:
    return {
        "name": name,
        "id": topic.topic_id,
        "start": topic.start,
        "rf": topic.replication_factor,
        "config": dict(topic.config),
        "partitions": [
            [list(p.replicas), None if p.target is None else list(p.target)]
            for p in topic.partitions
        ],
    }


def decode_state(data: bytes) -> ControllerState:
    """The state ``data`` encodes. UnsupportedError for an unknown format version;
    InvalidArgumentError for bytes that are no controller snapshot."""
    body = parse_json(data, "controller snapshot")
    check_version(body, "controller snapshots", STATE_VERSION)
    try:
        version = _int(body["version"])
        nodes = dict(_decode_node(item) for item in body["nodes"])
        topics = dict(_decode_topic(item) for item in body["topics"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgumentError("not a controller snapshot: a field is missing") from exc
    return ControllerState(nodes=nodes, topics=topics, version=version)


def _decode_topic(item: dict[str, Any]) -> tuple[str, TopicInfo]:
    config = item["config"]
    if not isinstance(config, dict):
        raise ValueError("config")
    partitions = tuple(
        PartitionInfo(_strs(replicas), None if target is None else _strs(target))
        for replicas, target in item["partitions"]
    )
    topic = TopicInfo(
        topic_id=_int(item["id"]),
        start=_int(item["start"]),
        replication_factor=_int(item["rf"]),
        config={_str(k): _str(v) for k, v in config.items()},
        partitions=partitions,
    )
    return _str(item["name"]), topic


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("expected an integer")
    return value


def _strs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return tuple(_str(item) for item in value)


def _node_state(value: object) -> NodeState:
    if value not in NODE_STATES:
        raise ValueError("unknown node state")
    return value
