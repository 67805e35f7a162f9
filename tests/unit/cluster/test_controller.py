"""The controller's metadata state machine: every command, every refusal, placement on the
applied state, decommissioning and what a node must reconcile."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from replog.broker.model import TopicDescription
from replog.cluster.controller import (
    ControllerState,
    apply,
    apply_reporting,
    initial_state,
    removable,
    validate,
)
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
)
from replog.cluster.controller_queries import PartitionRef, describe, diff_for_node, partitions_of
from replog.cluster.controller_snapshot import encode_state
from replog.errors import (
    AlreadyExistsError,
    ConfigError,
    InvalidArgumentError,
    NotFoundError,
    ReplogError,
    UnknownPartitionError,
    UnknownTopicError,
)


def _cluster(count: int) -> ControllerState:
    return initial_state({f"n{i}": f"127.0.0.1:{7000 + i}" for i in range(count)})


def _run(state: ControllerState, *commands: Command) -> ControllerState:
    for command in commands:
        result = apply_reporting(state, command, state.version + 1)
        assert result.refused is None, result.refused
        state = result.state
    return state


def _with_topic(count: int = 3) -> ControllerState:
    return _run(_cluster(count), CreateTopic("orders", 4, 2, {"retention.ms": "60000"}))


def test_the_first_state_holds_every_voter_and_the_default_topic_on_all_of_them() -> None:
    state = initial_state({"b": "h:2", "a": "h:1", "c": "h:3"})
    assert sorted(state.nodes) == ["a", "b", "c"]
    assert {info.state for info in state.nodes.values()} == {"active"}
    default = state.topics["default"]
    assert [p.replicas for p in default.partitions] == [("a", "b", "c")]
    assert state.version == 0


def test_a_cluster_cannot_start_without_a_voter() -> None:
    with pytest.raises(InvalidArgumentError):
        initial_state({})


def test_creating_a_topic_places_its_partitions_and_records_its_canonical_config() -> None:
    state = _with_topic()
    topic = state.topics["orders"]
    assert topic.config == {"retention_ms": "60000"}
    assert len(topic.partitions) == 4
    assert all(len(set(p.replicas)) == 2 for p in topic.partitions)
    assert topic.topic_id == state.version == 1


_REFUSALS: list[tuple[str, Command, type[ReplogError], str]] = [
    ("empty name", CreateTopic("", 1, 1), InvalidArgumentError, "empty"),
    ("bad character", CreateTopic("a/b", 1, 1), InvalidArgumentError, "may only hold"),
    ("dot name", CreateTopic("..", 1, 1), InvalidArgumentError, "cannot be a topic"),
    ("long name", CreateTopic("x" * 250, 1, 1), InvalidArgumentError, "249"),
    ("duplicate", CreateTopic("orders", 1, 1), AlreadyExistsError, "already exists"),
    ("duplicate default", CreateTopic("default", 1, 1), AlreadyExistsError, "already exists"),
    ("zero partitions", CreateTopic("t", 0, 1), InvalidArgumentError, "partitions"),
    ("too many partitions", CreateTopic("t", 4097, 1), InvalidArgumentError, "4096"),
    ("rf zero", CreateTopic("t", 1, 0), InvalidArgumentError, "replication factor"),
    ("rf above nodes", CreateTopic("t", 1, 4), InvalidArgumentError, "3 active nodes"),
    ("unknown key", CreateTopic("t", 1, 1, {"colour": "red"}), ConfigError, "colour"),
    ("bad value", CreateTopic("t", 1, 1, {"retention_ms": "soon"}), ConfigError, "retention_ms"),
    ("delete unknown", DeleteTopic("nope"), UnknownTopicError, "nope"),
    ("delete default", DeleteTopic("default"), InvalidArgumentError, "cannot be deleted"),
    ("alter unknown", AlterTopicConfig("nope", {"sync": "never"}), UnknownTopicError, "nope"),
    ("alter bad key", AlterTopicConfig("orders", {"colour": "1"}), ConfigError, "colour"),
    ("alter bad value", AlterTopicConfig("orders", {"sync": "often"}), ConfigError, "sync"),
    ("alter delete bad", AlterTopicConfig("orders", {}, ("colour",)), ConfigError, "colour"),
    (
        "alter set and delete",
        AlterTopicConfig("orders", {"sync": "never"}, ("sync",)),
        ConfigError,
        "sync",
    ),
    ("grow unknown", CreatePartitions("nope", 9), UnknownTopicError, "nope"),
    ("shrink", CreatePartitions("orders", 3), InvalidArgumentError, "only grow"),
    ("same count", CreatePartitions("orders", 4), InvalidArgumentError, "only grow"),
    ("grow too far", CreatePartitions("orders", 4097), InvalidArgumentError, "4096"),
    ("grow default", CreatePartitions("default", 2), InvalidArgumentError, "controller"),
    ("move unknown", ReassignPartition("nope", 0, ("n0",)), UnknownTopicError, "nope"),
    ("move out of range", ReassignPartition("orders", 4, ("n0",)), UnknownPartitionError, "0..3"),
    ("move negative", ReassignPartition("orders", -1, ("n0",)), UnknownPartitionError, "-1"),
    ("move to nobody", ReassignPartition("orders", 0, ()), InvalidArgumentError, "one replica"),
    ("move twice", ReassignPartition("orders", 0, ("n0", "n0")), InvalidArgumentError, "twice"),
    ("move unknown node", ReassignPartition("orders", 0, ("n9",)), NotFoundError, "n9"),
    ("move default", ReassignPartition("default", 0, ("n0",)), InvalidArgumentError, "voters"),
    (
        "complete nothing",
        CompleteReassignment("orders", 0, 1, ("n0",)),
        InvalidArgumentError,
        "not being moved",
    ),
    ("complete unknown", CompleteReassignment("nope", 0, 1, ("n0",)), UnknownTopicError, "nope"),
    ("decommission unknown", DecommissionNode("n9"), NotFoundError, "n9"),
    ("register empty id", RegisterNode("", "h:1"), InvalidArgumentError, "node id"),
    ("register spaced address", RegisterNode("n9", "h 1"), InvalidArgumentError, "address"),
]


@pytest.mark.parametrize(
    ("command", "error", "words"),
    [pytest.param(c, e, w, id=i) for i, c, e, w in _REFUSALS],
)
def test_a_refused_command_raises_a_clear_error_and_applies_as_a_no_op(
    command: Command, error: type[ReplogError], words: str
) -> None:
    state = _with_topic()
    with pytest.raises(error, match=words) as caught:
        validate(state, command)
    assert "Error" not in str(caught.value)
    result = apply_reporting(state, command, state.version + 1)
    assert isinstance(result.refused, error)
    assert result.state.version == state.version + 1
    before, after = encode_state(state), encode_state(result.state)
    assert after == before.replace(b'"version":1', b'"version":2')


def test_an_entry_at_or_below_the_state_version_changes_nothing() -> None:
    state = _with_topic()
    result = apply_reporting(state, DeleteTopic("orders"), state.version)
    assert result.state == state
    assert isinstance(result.refused, InvalidArgumentError)


def test_a_command_validated_on_an_old_state_is_refused_where_it_meets_a_new_one() -> None:
    state = _cluster(3)
    first = apply(state, CreateTopic("t", 1, 1), 1)
    second = apply_reporting(first, CreateTopic("t", 2, 2), 2)
    assert isinstance(second.refused, AlreadyExistsError)
    assert len(second.state.topics["t"].partitions) == 1


def test_deleting_a_topic_removes_it_and_a_re_created_one_has_another_id() -> None:
    state = _with_topic()
    old_id = state.topics["orders"].topic_id
    state = _run(state, DeleteTopic("orders"))
    assert "orders" not in state.topics
    state = _run(state, CreateTopic("orders", 1, 1))
    assert state.topics["orders"].topic_id not in (old_id, 0)


def test_altering_a_config_sets_and_resets_keys() -> None:
    state = _run(_with_topic(), AlterTopicConfig("orders", {"sync": "never"}, ("retention_ms",)))
    assert state.topics["orders"].config == {"sync": "never"}


def test_creating_partitions_places_the_new_ones_and_keeps_the_old_ones() -> None:
    before = _with_topic()
    after = _run(before, CreatePartitions("orders", 7))
    old, new = before.topics["orders"].partitions, after.topics["orders"].partitions
    assert new[:4] == old
    assert len(new) == 7
    assert all(len(set(p.replicas)) == 2 for p in new)


def test_creating_partitions_is_refused_when_too_few_active_nodes_remain() -> None:
    state = _run(_cluster(4), CreateTopic("t", 1, 4))
    state = _run(state, RegisterNode("n4", "h:4"), CreatePartitions("t", 2))
    assert len(state.topics["t"].partitions) == 2


def test_registering_a_node_adds_it_to_the_default_partition_and_again_only_moves_it() -> None:
    state = _run(_cluster(1), RegisterNode("n1", "h:1"))
    assert state.topics["default"].partitions[0].replicas == ("n0", "n1")
    state = _run(state, RegisterNode("n1", "h:9"))
    assert state.nodes["n1"].address == "h:9"
    assert state.topics["default"].partitions[0].replicas == ("n0", "n1")


@pytest.mark.parametrize("node_count", [3, 5])
def test_twelve_partitions_of_three_replicas_spread_replicas_and_leaders(node_count: int) -> None:
    state = _run(_cluster(node_count), CreateTopic("t", 12, 3))
    partitions = state.topics["t"].partitions
    assert all(len(set(p.replicas)) == 3 for p in partitions)
    led = Counter(p.replicas[0] for p in partitions)
    assert max(led.values()) <= math.ceil(12 / node_count) + 1
    held = Counter(n for p in partitions for n in p.replicas)
    assert max(held.values()) - min(held.values()) <= 1
    assert len(held) == node_count


def test_many_small_topics_still_spread_over_the_nodes() -> None:
    state = _cluster(3)
    for i in range(9):
        state = _run(state, CreateTopic(f"t{i}", 1, 1))
    led = Counter(state.topics[f"t{i}"].partitions[0].replicas[0] for i in range(9))
    assert sorted(led.values()) == [3, 3, 3]


def test_a_reassignment_records_a_target_until_it_completes() -> None:
    state = _with_topic()
    current = state.topics["orders"].partitions[0].replicas
    target = tuple(n for n in ("n0", "n1", "n2") if n not in current)[:1] + current[:1]
    moving = _run(state, ReassignPartition("orders", 0, target))
    assert moving.topics["orders"].partitions[0].replicas == current
    assert moving.topics["orders"].partitions[0].target == target
    stale = CompleteReassignment("orders", 0, 1, current)
    assert isinstance(apply_reporting(moving, stale, 9).refused, InvalidArgumentError)
    done = _run(moving, CompleteReassignment("orders", 0, 1, target))
    assert done.topics["orders"].partitions[0].replicas == target
    assert done.topics["orders"].partitions[0].target is None


def test_a_move_in_progress_is_neither_cancelled_nor_redirected_away_from_a_node_it_adds() -> None:
    # The node being added may already hold the group's data (or be a voter of its Raft
    # configuration); a state that no longer listed it would make it drop that data.
    state = _with_topic()
    current = state.topics["orders"].partitions[0].replicas
    moving = _run(state, ReassignPartition("orders", 0, ("n0", "n1", "n2")))
    added = next(n for n in ("n0", "n1", "n2") if n not in current)
    for replicas in (current, tuple(n for n in ("n0", "n1", "n2") if n != added)):
        result = apply_reporting(moving, ReassignPartition("orders", 0, replicas), 9)
        assert isinstance(result.refused, InvalidArgumentError), replicas
        assert "being moved" in str(result.refused)
        assert result.state.topics == moving.topics
    again = _run(moving, ReassignPartition("orders", 0, ("n0", "n1", "n2")))
    assert again.topics == moving.topics
    with pytest.raises(InvalidArgumentError, match="being moved"):
        validate(moving, DecommissionNode(added))


def test_a_node_registered_while_the_controller_group_shrinks_stays_in_it() -> None:
    state = _run(_cluster(3), DecommissionNode("n2"))
    state = _run(state, RegisterNode("n3", "h:3"))
    default = state.topics["default"].partitions[0]
    assert default.target is not None and "n3" in default.target
    state = _run(state, CompleteReassignment("default", 0, 0, default.target))
    assert state.topics["default"].partitions[0].replicas == ("n0", "n1", "n3")
    assert removable(state, "n2")


def test_completing_a_move_of_a_deleted_and_re_created_topic_is_refused() -> None:
    state = _run(_with_topic(), ReassignPartition("orders", 0, ("n0", "n1", "n2")))
    state = _run(state, DeleteTopic("orders"), CreateTopic("orders", 1, 1))
    state = _run(state, ReassignPartition("orders", 0, ("n0", "n1", "n2")))
    with pytest.raises(UnknownTopicError):
        validate(state, CompleteReassignment("orders", 0, 1, ("n0", "n1", "n2")))


def _complete_every_move(state: ControllerState) -> ControllerState:
    for name in sorted(state.topics):
        topic = state.topics[name]
        for p, part in enumerate(topic.partitions):
            if part.target is not None:
                done = CompleteReassignment(name, p, topic.topic_id, part.target)
                state = _run(state, done)
    return state


def test_decommissioning_moves_every_replica_off_the_node_once_the_moves_complete() -> None:
    state = _run(_cluster(5), CreateTopic("t", 12, 3), CreateTopic("u", 3, 1))
    hosted = len(partitions_of(state, "n2"))
    state = _run(state, DecommissionNode("n2"))
    assert state.nodes["n2"].state == "decommissioning"
    assert len(partitions_of(state, "n2")) == hosted, "the node keeps its replicas until moved"
    assert not removable(state, "n2")
    with pytest.raises(InvalidArgumentError, match="4 active nodes"):
        validate(state, CreateTopic("v", 1, 5))
    with pytest.raises(InvalidArgumentError, match="takes no new replicas"):
        validate(state, ReassignPartition("t", 0, ("n2",)))
    state = _complete_every_move(state)
    assert partitions_of(state, "n2") == []
    assert removable(state, "n2")
    for topic in state.topics.values():
        for part in topic.partitions:
            assert len(set(part.replicas)) == len(part.replicas)
    assert len(state.topics["t"].partitions[0].replicas) == 3


def test_decommissioning_is_refused_when_the_rest_cannot_hold_the_replicas() -> None:
    state = _run(_cluster(3), CreateTopic("t", 2, 3))
    with pytest.raises(InvalidArgumentError, match="only 2 would remain"):
        validate(state, DecommissionNode("n0"))
    with pytest.raises(InvalidArgumentError, match="last active node"):
        validate(_cluster(1), DecommissionNode("n0"))
    twice = _run(_cluster(3), DecommissionNode("n0"))
    with pytest.raises(InvalidArgumentError, match="already"):
        validate(twice, DecommissionNode("n0"))


def test_describe_shows_every_key_the_replicas_and_the_given_leaders() -> None:
    state = _with_topic()
    described = describe(state, "orders", {("orders", 1): "n1"})
    assert isinstance(described, TopicDescription)
    assert described.config["retention_ms"] == "60000"
    assert described.config["sync"] == "always"
    assert described.replication_factor == 2
    assert described.partition_count == 4
    assert described.partitions[1].leader == "n1"
    assert described.partitions[0].leader == ""
    assert described.partitions[2].replicas == state.topics["orders"].partitions[2].replicas
    assert describe(state, "default", {}).replication_factor == 3
    with pytest.raises(UnknownTopicError):
        describe(state, "nope", {})


def test_diff_for_node_creates_new_groups_and_removes_only_completed_moves() -> None:
    empty = _cluster(3)
    state = _run(empty, CreateTopic("t", 3, 1))
    create, remove = diff_for_node(empty, state, "n0")
    assert create == [ref for ref in partitions_of(state, "n0") if ref.topic == "t"]
    assert remove == []
    ref = create[0]
    others = tuple(n for n in ("n1", "n2") if n)[:1]
    moving = _run(state, ReassignPartition("t", ref.partition, others))
    assert diff_for_node(state, moving, "n0") == ([], [])
    assert diff_for_node(state, moving, others[0]) == ([ref], [])
    done = _run(moving, CompleteReassignment("t", ref.partition, ref.topic_id, others))
    assert diff_for_node(moving, done, "n0") == ([], [ref])


def test_diff_for_node_tells_a_re_created_topic_from_the_deleted_one() -> None:
    old = _run(_cluster(1), CreateTopic("t", 1, 1))
    new = _run(old, DeleteTopic("t"), CreateTopic("t", 1, 1))
    create, remove = diff_for_node(old, new, "n0")
    assert remove == [PartitionRef("t", 0, old.topics["t"].topic_id)]
    assert create == [PartitionRef("t", 0, new.topics["t"].topic_id)]


def test_diff_for_node_leaves_the_controller_group_out() -> None:
    old = _cluster(1)
    new = _run(old, RegisterNode("n1", "h:1"))
    assert PartitionRef("default", 0, 0) in partitions_of(new, "n1")
    assert diff_for_node(old, new, "n1") == ([], [])
