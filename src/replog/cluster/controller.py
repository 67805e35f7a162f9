"""The controller's metadata state machine: pure, deterministic, no I/O.

The controller group (the Raft group every cluster has) replicates the cluster's metadata
as a log of commands (``replog.cluster.controller_commands``). Every replica folds the same
commands into the same ``ControllerState`` with ``apply``; nothing here depends on dict or
set order, a clock or randomness, so the same log gives byte-identical snapshots
(``replog.cluster.controller_snapshot``) on every replica.

Validation and application. The leader calls ``validate`` before it proposes a command, so
the caller gets its error at once and nothing reaches the log. But the state a command
meets when it applies may differ from the one it was validated against (two proposals in
flight, or a leader change between validation and commit), so ``apply`` validates again
against the state it really meets: a command that no longer holds is applied as a no-op
(the metadata version still advances to its index) and ``apply_reporting`` returns its
error, which the host gives to the proposer waiting on that index. Because validation is
itself a deterministic function of the state, every replica refuses the same commands:
they stay identical either way. (KRaft instead validates only on the leader and applies
records unconditionally; our records are requests, not results, so they must be checked
where they apply.)

Reassignment. Moving a replica is done by the host over time (add a learner, catch up,
promote, remove), so the state records the TARGET replica set of a partition being moved
next to its current replicas; the host proposes ``CompleteReassignment`` once the group's
membership is the target. Decommissioning a node gives every partition holding it such a
target; the node can be removed once no partition lists it (``removable``).

The ``default`` topic exists from the first state: its one partition is the controller
group itself, replicated on every voter (a registered node is added to it, a decommissioned
one leaves it through the same target/complete steps). Its membership is the controller
group's Raft configuration, so it is not reassigned by hand and does not grow partitions.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from replog.broker.names import DEFAULT_TOPIC
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
from replog.cluster.controller_rules import validate
from replog.cluster.controller_state import (
    ControllerState,
    NodeInfo,
    NodeState,
    PartitionInfo,
    TopicInfo,
    active_nodes,
    canonical_overrides,
    with_config_changes,
)
from replog.errors import InvalidArgumentError, ReplogError

__all__ = [
    "Applied",
    "ControllerState",
    "NodeInfo",
    "NodeState",
    "PartitionInfo",
    "TopicInfo",
    "apply",
    "apply_reporting",
    "initial_state",
    "removable",
    "validate",
]


@dataclass(frozen=True, slots=True)
class Applied:
    """The state after a command, and the error that made it a no-op (None if it applied)."""

    state: ControllerState
    refused: ReplogError | None = None


def initial_state(voters: Mapping[str, str]) -> ControllerState:
    """The first state of a cluster whose voters are ``voters`` (node id -> address): every
    voter active, and the topic ``default`` of 1 partition replicated on every voter (its
    preferred leader the smallest id)."""
    if not voters:
        raise InvalidArgumentError("a cluster starts with at least one voter")
    state = ControllerState(nodes={}, topics={}, version=0)
    for node_id in sorted(voters):
        validate(state, RegisterNode(node_id, voters[node_id]))
        state = _register(state, RegisterNode(node_id, voters[node_id]))
    ids = tuple(sorted(voters))
    default = TopicInfo(
        topic_id=0,
        start=0,
        replication_factor=len(ids),
        config={},
        partitions=(PartitionInfo(ids),),
    )
    return dataclasses.replace(state, topics={DEFAULT_TOPIC: default})


def apply(state: ControllerState, command: Command, index: int) -> ControllerState:
    """The state after applying ``command``, the log entry at ``index`` (see
    ``apply_reporting``; a command that does not hold is a no-op)."""
    return apply_reporting(state, command, index).state


def apply_reporting(state: ControllerState, command: Command, index: int) -> Applied:
    """Apply ``command`` (log index ``index``): the new state, or the unchanged state (its
    version at ``index``) and the error, if ``validate`` refuses the command against this
    state. An index not above the state's version changes nothing and is refused: the
    host must never apply an entry twice."""
    if index <= state.version:
        error = InvalidArgumentError(
            f"metadata entry {index} is not after version {state.version}: already applied"
        )
        return Applied(state, error)
    try:
        validate(state, command)
    except ReplogError as exc:
        return Applied(dataclasses.replace(state, version=index), exc)
    new = _MUTATIONS[type(command)](state, command, index)
    return Applied(dataclasses.replace(new, version=index))


def removable(state: ControllerState, node_id: str) -> bool:
    """Whether ``node_id`` is decommissioning and no partition lists it any more (neither
    as a replica nor in a target)."""
    node = state.nodes.get(node_id)
    if node is None or node.state != "decommissioning":
        return False
    return not any(
        node_id in p.replicas or node_id in (p.target or ())
        for topic in state.topics.values()
        for p in topic.partitions
    )


def _register(state: ControllerState, command: RegisterNode) -> ControllerState:
    old = state.nodes.get(command.node_id)
    nodes = dict(state.nodes)
    nodes[command.node_id] = (
        NodeInfo(command.address)
        if old is None
        else dataclasses.replace(old, address=command.address)
    )
    topics = dict(state.topics)
    default = topics.get(DEFAULT_TOPIC)
    if old is None and default is not None:
        first = default.partitions[0]
        if command.node_id not in first.replicas:
            grown = dataclasses.replace(first, replicas=(*first.replicas, command.node_id))
            if first.target is not None:  # the controller group is shrinking: it stays
                grown = dataclasses.replace(grown, target=(*first.target, command.node_id))
            topics[DEFAULT_TOPIC] = _with_partition(default, 0, grown)
    return dataclasses.replace(state, nodes=nodes, topics=topics)


def _apply_register(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, RegisterNode)
    return _register(state, command)


def _apply_kafka_address(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, SetKafkaAddress)
    nodes = dict(state.nodes)
    nodes[command.node_id] = dataclasses.replace(
        nodes[command.node_id], kafka_address=command.address
    )
    return dataclasses.replace(state, nodes=nodes)


def _apply_http_address(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, SetHttpAddress)
    nodes = dict(state.nodes)
    nodes[command.node_id] = dataclasses.replace(
        nodes[command.node_id], http_address=command.address
    )
    return dataclasses.replace(state, nodes=nodes)


def _load(state: ControllerState) -> tuple[Counter[str], Counter[str]]:
    """Replicas each node holds (current or target) and partitions it is preferred leader
    of: the load new placements balance against."""
    held: Counter[str] = Counter()
    led: Counter[str] = Counter()
    for topic in state.topics.values():
        for p in topic.partitions:
            held.update(set(p.replicas) | set(p.target or ()))
            led[(p.target or p.replicas)[0]] += 1
    return held, led


def _start(name: str) -> int:
    """The topic's placement rotation: a stable hash of its name (not ``hash()``, which
    differs between processes)."""
    return zlib.crc32(name.encode("utf-8"))


def _apply_create_topic(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, CreateTopic)
    held, led = _load(state)
    start = _start(command.name)
    sets = placement.assign_replicas(
        active_nodes(state),
        command.partitions,
        command.replication_factor,
        load=held,
        leader_load=led,
        start=start,
    )
    topic = TopicInfo(
        topic_id=index,
        start=start,
        replication_factor=command.replication_factor,
        config=canonical_overrides(command.config),
        partitions=tuple(PartitionInfo(replicas) for replicas in sets),
    )
    return dataclasses.replace(state, topics={**state.topics, command.name: topic})


def _apply_delete_topic(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, DeleteTopic)
    topics = {name: t for name, t in state.topics.items() if name != command.name}
    return dataclasses.replace(state, topics=topics)


def _apply_alter(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, AlterTopicConfig)
    topic = state.topics[command.name]
    config = with_config_changes(topic.config, command.set, command.delete)
    altered = dataclasses.replace(topic, config=config)
    return dataclasses.replace(state, topics={**state.topics, command.name: altered})


def _apply_create_partitions(
    state: ControllerState, command: Command, index: int
) -> ControllerState:
    assert isinstance(command, CreatePartitions)
    topic = state.topics[command.name]
    held, led = _load(state)
    have = len(topic.partitions)
    sets = placement.assign_replicas(
        active_nodes(state),
        command.count - have,
        topic.replication_factor,
        first_partition=have,
        load=held,
        leader_load=led,
        start=topic.start,
    )
    grown = (*topic.partitions, *(PartitionInfo(replicas) for replicas in sets))
    topics = {**state.topics, command.name: dataclasses.replace(topic, partitions=grown)}
    return dataclasses.replace(state, topics=topics)


def _apply_reassign(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, ReassignPartition)
    topic = state.topics[command.topic]
    current = topic.partitions[command.partition]
    target = None if command.replicas == current.replicas else command.replicas
    moved = dataclasses.replace(current, target=target)
    topics = {**state.topics, command.topic: _with_partition(topic, command.partition, moved)}
    return dataclasses.replace(state, topics=topics)


def _apply_complete(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, CompleteReassignment)
    topic = state.topics[command.topic]
    done = PartitionInfo(command.replicas)
    topics = {**state.topics, command.topic: _with_partition(topic, command.partition, done)}
    return dataclasses.replace(state, topics=topics)


def _apply_decommission(state: ControllerState, command: Command, index: int) -> ControllerState:
    assert isinstance(command, DecommissionNode)
    node_id = command.node_id
    nodes = dict(state.nodes)
    nodes[node_id] = dataclasses.replace(nodes[node_id], state="decommissioning")
    remaining = [n for n in active_nodes(state) if n != node_id]
    topics: dict[str, TopicInfo] = {}
    for name in sorted(state.topics):
        topic = state.topics[name]
        wanted = {p: (part.target or part.replicas) for p, part in enumerate(topic.partitions)}
        if name == DEFAULT_TOPIC:
            targets = {p: tuple(n for n in rs if n != node_id) for p, rs in wanted.items()}
        else:
            targets = placement.reassign_without(wanted, node_id, [*remaining, node_id])
        parts = tuple(
            part if targets[p] == wanted[p] else _moving(part, targets[p])
            for p, part in enumerate(topic.partitions)
        )
        topics[name] = dataclasses.replace(topic, partitions=parts)
    return dataclasses.replace(state, nodes=nodes, topics=topics)


def _moving(part: PartitionInfo, target: tuple[str, ...]) -> PartitionInfo:
    return dataclasses.replace(part, target=None if target == part.replicas else target)


def _with_partition(topic: TopicInfo, partition: int, value: PartitionInfo) -> TopicInfo:
    parts = list(topic.partitions)
    parts[partition] = value
    return dataclasses.replace(topic, partitions=tuple(parts))


_MUTATIONS = {
    RegisterNode: _apply_register,
    SetKafkaAddress: _apply_kafka_address,
    SetHttpAddress: _apply_http_address,
    DecommissionNode: _apply_decommission,
    CreateTopic: _apply_create_topic,
    DeleteTopic: _apply_delete_topic,
    AlterTopicConfig: _apply_alter,
    CreatePartitions: _apply_create_partitions,
    ReassignPartition: _apply_reassign,
    CompleteReassignment: _apply_complete,
}
