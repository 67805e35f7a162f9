"""Whether a metadata command holds against a controller state (``validate``).

Pure and deterministic: the leader calls it before proposing, every replica again when
applying (see ``replog.cluster.controller``), and all of them must agree.
"""

from __future__ import annotations

from collections.abc import Callable

from replog.broker.config import check_keys
from replog.broker.names import DEFAULT_TOPIC, check_partition_count, check_topic_name
from replog.cluster import placement
from replog.cluster.controller_commands import (
    AlterTopicConfig,
    Command,
    CompleteReassignment,
    CreatePartitions,
    CreateTopic,
    DecommissionNode,
    DeleteTopic,
    ReassignPartition,
    RegisterNode,
    SetHttpAddress,
    SetKafkaAddress,
)
from replog.cluster.controller_state import (
    ControllerState,
    TopicInfo,
    active_nodes,
    canonical_overrides,
    with_config_changes,
)
from replog.cluster.members import kafka_broker_id
from replog.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidArgumentError,
    NotFoundError,
    UnknownPartitionError,
    UnknownTopicError,
)

__all__ = ["validate"]

#: Node ids and addresses are short printable strings.
_MAX_NODE_TEXT = 255


def validate(state: ControllerState, command: Command) -> None:
    """Return if ``command`` may apply to ``state``; else raise the error a caller gets
    (InvalidArgumentError, ConfigError, AlreadyExistsError, UnknownTopicError,
    UnknownPartitionError, NotFoundError for an unknown node). Changes nothing."""
    check = _CHECKS.get(type(command))
    if check is None:
        raise InvalidArgumentError(f"not a metadata command: {type(command).__name__}")
    check(state, command)


def _check_node_text(what: str, value: str) -> None:
    if not value or len(value) > _MAX_NODE_TEXT or not value.isprintable() or " " in value:
        raise InvalidArgumentError(
            f"a node {what} is 1 to {_MAX_NODE_TEXT} printable characters without spaces"
        )


def _check_register(state: ControllerState, command: Command) -> None:
    assert isinstance(command, RegisterNode)
    _check_node_text("id", command.node_id)
    _check_node_text("address", command.address)


def _check_kafka_address(state: ControllerState, command: Command) -> None:
    assert isinstance(command, SetKafkaAddress)
    _known_node(state, command.node_id)
    if not command.address:
        return  # its listener is off
    _check_node_text("Kafka address", command.address)
    broker = kafka_broker_id(command.node_id)
    for other in sorted(state.nodes):
        same = other != command.node_id and kafka_broker_id(other) == broker
        if same and state.nodes[other].kafka_address:
            raise InvalidArgumentError(
                f"nodes {other!r} and {command.node_id!r} would be the same Kafka broker "
                f"(id {broker}); rename one of them to run Kafka listeners on both"
            )


def _check_http_address(state: ControllerState, command: Command) -> None:
    assert isinstance(command, SetHttpAddress)
    _known_node(state, command.node_id)
    if command.address:
        _check_node_text("HTTP address", command.address)


def _known_node(state: ControllerState, node_id: str) -> None:
    if node_id not in state.nodes:
        raise NotFoundError(f"node {node_id!r} is not a member of the cluster")


def _check_decommission(state: ControllerState, command: Command) -> None:
    assert isinstance(command, DecommissionNode)
    _known_node(state, command.node_id)
    if state.nodes[command.node_id].state != "active":
        raise InvalidArgumentError(f"node {command.node_id!r} is already being decommissioned")
    _check_not_being_added(state, command.node_id)
    remaining = [n for n in active_nodes(state) if n != command.node_id]
    if not remaining:
        raise InvalidArgumentError(
            f"node {command.node_id!r} is the last active node: nothing could take its replicas"
        )
    for name in sorted(state.topics):
        if name == DEFAULT_TOPIC:
            continue
        parts = state.topics[name].partitions
        wanted = {p: (part.target or part.replicas) for p, part in enumerate(parts)}
        try:
            placement.reassign_without(wanted, command.node_id, [*remaining, command.node_id])
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"topic {name!r}: {exc}") from exc


def _check_not_being_added(state: ControllerState, node_id: str) -> None:
    """Refuse to take a node out of a move that is adding it (see ``_check_reassign``)."""
    for name in sorted(state.topics):
        for p, part in enumerate(state.topics[name].partitions):
            if part.target is not None and node_id in part.target and node_id not in part.replicas:
                raise InvalidArgumentError(
                    f"partition {p} of topic {name!r} is being moved to {list(part.target)}; "
                    f"wait until that move completes before decommissioning {node_id!r}"
                )


def _check_replication_factor(state: ControllerState, replication_factor: int) -> None:
    active = len(active_nodes(state))
    if replication_factor < 1 or replication_factor > active:
        plural = "node" if active == 1 else "nodes"
        raise InvalidArgumentError(
            f"replication factor must be between 1 and the {active} active {plural} of the "
            f"cluster, got {replication_factor}"
        )


def _check_create_topic(state: ControllerState, command: Command) -> None:
    assert isinstance(command, CreateTopic)
    check_topic_name(command.name)
    if command.name in state.topics:
        raise AlreadyExistsError(command.name)
    check_partition_count(command.partitions)
    _check_replication_factor(state, command.replication_factor)
    canonical_overrides(command.config)


def _topic(state: ControllerState, name: str) -> TopicInfo:
    topic = state.topics.get(name)
    if topic is None:
        raise UnknownTopicError(name)
    return topic


def _check_delete_topic(state: ControllerState, command: Command) -> None:
    assert isinstance(command, DeleteTopic)
    _topic(state, command.name)
    if command.name == DEFAULT_TOPIC:
        raise InvalidArgumentError(
            "the topic 'default' takes every request that names no topic; it cannot be deleted"
        )


def _check_alter(state: ControllerState, command: Command) -> None:
    assert isinstance(command, AlterTopicConfig)
    topic = _topic(state, command.name)
    both = sorted(set(check_keys(list(command.set))) & set(check_keys(list(command.delete))))
    if both:
        raise ConfigError(f"config key {both[0]!r} is both set and deleted")
    with_config_changes(topic.config, command.set, command.delete)


def _check_create_partitions(state: ControllerState, command: Command) -> None:
    assert isinstance(command, CreatePartitions)
    topic = _topic(state, command.name)
    if command.name == DEFAULT_TOPIC:
        raise InvalidArgumentError(
            "in a cluster the topic 'default' keeps 1 partition (it is the controller group)"
        )
    have = len(topic.partitions)
    if command.count <= have:
        raise InvalidArgumentError(
            f"topic {command.name!r} has {have} partitions; the count can only grow, "
            f"got {command.count}"
        )
    check_partition_count(command.count)
    _check_replication_factor(state, topic.replication_factor)


def _check_partition(state: ControllerState, name: str, partition: int) -> TopicInfo:
    topic = _topic(state, name)
    if not 0 <= partition < len(topic.partitions):
        raise UnknownPartitionError(name, partition, len(topic.partitions))
    return topic


def _check_reassign(state: ControllerState, command: Command) -> None:
    assert isinstance(command, ReassignPartition)
    _check_partition(state, command.topic, command.partition)
    if command.topic == DEFAULT_TOPIC:
        raise InvalidArgumentError(
            "the replicas of 'default' partition 0 are the controller group's voters; "
            "change the cluster's membership instead"
        )
    replicas = command.replicas
    if not replicas:
        raise InvalidArgumentError("a partition needs at least one replica")
    repeated = sorted({n for n in replicas if replicas.count(n) > 1})
    if repeated:
        raise InvalidArgumentError(f"node {repeated[0]!r} is listed twice in the replica set")
    active = set(active_nodes(state))
    for node_id in replicas:
        _known_node(state, node_id)
        if node_id not in active:
            raise InvalidArgumentError(
                f"node {node_id!r} is being decommissioned and takes no new replicas"
            )
    part = state.topics[command.topic].partitions[command.partition]
    if part.target is not None and part.target != replicas:
        # The nodes the move adds may already hold the group's data or vote in it: a
        # state that no longer listed them would make them drop it.
        raise InvalidArgumentError(
            f"partition {command.partition} of topic {command.topic!r} is being moved to "
            f"{list(part.target)}; wait until that move completes"
        )


def _check_complete(state: ControllerState, command: Command) -> None:
    assert isinstance(command, CompleteReassignment)
    topic = _check_partition(state, command.topic, command.partition)
    if topic.topic_id != command.topic_id:
        raise UnknownTopicError(command.topic)
    target = topic.partitions[command.partition].target
    if target is None or target != command.replicas:
        raise InvalidArgumentError(
            f"partition {command.partition} of topic {command.topic!r} is not being moved "
            f"to {list(command.replicas)}"
        )


_CHECKS: dict[type, Callable[[ControllerState, Command], None]] = {
    RegisterNode: _check_register,
    SetKafkaAddress: _check_kafka_address,
    SetHttpAddress: _check_http_address,
    DecommissionNode: _check_decommission,
    CreateTopic: _check_create_topic,
    DeleteTopic: _check_delete_topic,
    AlterTopicConfig: _check_alter,
    CreatePartitions: _check_create_partitions,
    ReassignPartition: _check_reassign,
    CompleteReassignment: _check_complete,
}
