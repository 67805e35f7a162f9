"""The controller's state machine is deterministic: random command sequences give
byte-identical states on every replica, however each replica got there."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replog.cluster.controller import ControllerState, apply, initial_state
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
    decode,
)
from replog.cluster.controller_snapshot import decode_state, encode_state

_NODES = [f"n{i}" for i in range(6)]
# Mostly names that exist or will, so that most commands apply; a few that never can.
_TOPICS = st.sampled_from(["a", "b", "c.d", "a", "b", "c.d", "default", "bad/name"])
_CONFIGS = st.one_of(
    st.dictionaries(
        st.sampled_from(["retention_ms", "retention.bytes", "segment_ms"]),
        st.sampled_from(["1000", "-1", " 7"]),
        max_size=3,
    ),
    st.dictionaries(
        st.sampled_from(["retention_ms", "retention.bytes", "sync", "colour", "segment_bytes"]),
        st.sampled_from(["1000", "-1", "never", "always", "x", "64", "99999999"]),
        max_size=3,
    ),
)
_REPLICAS = st.one_of(
    st.lists(st.sampled_from(_NODES[:3]), min_size=1, max_size=3, unique=True).map(tuple),
    st.lists(st.sampled_from(_NODES), max_size=4).map(tuple),
)

_CREATES = st.builds(CreateTopic, _TOPICS, st.integers(1, 6), st.integers(1, 3), _CONFIGS)
_MOVES = st.builds(ReassignPartition, _TOPICS, st.integers(0, 2), _REPLICAS)

_COMMANDS: st.SearchStrategy[Command] = st.one_of(
    _CREATES,
    _CREATES,
    _MOVES,
    _MOVES,
    st.builds(RegisterNode, st.sampled_from(_NODES), st.sampled_from(["h:1", "h:2"])),
    st.builds(DecommissionNode, st.sampled_from(_NODES)),
    st.builds(SetKafkaAddress, st.sampled_from(_NODES), st.sampled_from(["", "h:9092"])),
    st.builds(SetHttpAddress, st.sampled_from(_NODES), st.sampled_from(["", "h:7401"])),
    st.builds(
        CreateTopic,
        _TOPICS,
        st.integers(0, 6),
        st.integers(0, 4),
        _CONFIGS,
    ),
    st.builds(DeleteTopic, _TOPICS),
    st.builds(
        AlterTopicConfig,
        _TOPICS,
        _CONFIGS,
        st.lists(st.sampled_from(["sync", "retention_ms", "colour"]), max_size=2).map(tuple),
    ),
    st.builds(CreatePartitions, _TOPICS, st.integers(0, 9)),
    st.builds(ReassignPartition, _TOPICS, st.integers(-1, 4), _REPLICAS),
    st.builds(
        CompleteReassignment,
        _TOPICS,
        st.integers(0, 9),
        st.integers(0, 30),
        _REPLICAS,
    ),
)


def _completions(state: ControllerState) -> list[Command]:
    """The CompleteReassignment of every move in progress (what a host would propose)."""
    return [
        CompleteReassignment(name, p, topic.topic_id, part.target)
        for name, topic in sorted(state.topics.items())
        for p, part in enumerate(topic.partitions)
        if part.target is not None
    ]


def _check_invariants(state: ControllerState) -> None:
    for topic in state.topics.values():
        for part in topic.partitions:
            for replicas in (part.replicas, part.target or ()):
                assert len(set(replicas)) == len(replicas), replicas
                assert set(replicas) <= set(state.nodes)
            assert part.replicas, "a partition always has replicas"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(_COMMANDS, max_size=25),
    second=st.lists(_COMMANDS, max_size=25),
    complete=st.booleans(),
)
def test_two_replicas_of_one_command_log_hold_byte_identical_states(
    first: list[Command], second: list[Command], complete: bool
) -> None:
    voters = {"n0": "h:0", "n1": "h:1", "n2": "h:2"}
    # Two topics from the start, so that most commands find something to act on.
    log = [RegisterNode("n3", "h:3"), CreateTopic("a", 3, 2), CreateTopic("b", 2, 1), *first]
    one = initial_state(voters)
    for command in log:
        one = apply(one, command, one.version + 1)
    if complete:
        log.extend(_completions(one))
    log.extend(second)
    replica_a = initial_state(dict(reversed(voters.items())))
    for index, command in enumerate(log, start=1):
        replica_a = apply(replica_a, command, index)
        _check_invariants(replica_a)
    # Replica b decodes each entry from its bytes and restarts from a snapshot midway.
    replica_b = initial_state(voters)
    middle = len(log) - len(second)
    for index, command in enumerate(log, start=1):
        replica_b = apply(replica_b, decode(command.encode()), index)
        if index == middle:
            replica_b = decode_state(encode_state(replica_b))
    assert encode_state(replica_a) == encode_state(replica_b)
    assert replica_a.version == len(log)
    assert decode_state(encode_state(replica_a)) == replica_a


@given(_COMMANDS)
def test_a_command_decodes_to_itself_and_encodes_to_the_same_bytes(command: Command) -> None:
    data = command.encode()
    assert decode(data) == command
    assert decode(data).encode() == data


@given(_CONFIGS)
def test_the_order_a_config_was_built_in_changes_no_byte(config: dict[str, str]) -> None:
    backwards = dict(reversed(list(config.items())))
    assert CreateTopic("t", 1, 1, config).encode() == CreateTopic("t", 1, 1, backwards).encode()
    state = initial_state({"n0": "h"})
    one = apply(state, CreateTopic("t", 1, 1, config), 1)
    two = apply(state, CreateTopic("t", 1, 1, backwards), 1)
    assert encode_state(one) == encode_state(two)
