"""Each node's Kafka address in the controller state: set by the node, kept across
registrations and decommissions, in snapshots only when there is one, and each node's
Kafka broker id a function of its name alone."""

from __future__ import annotations

import pytest

from replog.cluster.controller import apply, apply_reporting, initial_state
from replog.cluster.controller_commands import (
    DecommissionNode,
    RegisterNode,
    SetKafkaAddress,
    decode,
)
from replog.cluster.controller_snapshot import decode_state, encode_state
from replog.cluster.members import kafka_broker_id, raft_id
from replog.errors import InvalidArgumentError, NotFoundError


def test_a_node_s_kafka_address_is_kept_across_its_registration_and_decommission() -> None:
    state = initial_state({"n1": "h:1", "n2": "h:2"})
    state = apply(state, SetKafkaAddress("n1", "k:9092"), 1)
    state = apply(state, RegisterNode("n1", "h:11"), 2)  # a restart on a new gRPC port
    state = apply(state, DecommissionNode("n1"), 3)
    node = state.nodes["n1"]
    assert (node.address, node.state, node.kafka_address) == ("h:11", "decommissioning", "k:9092")
    assert state.nodes["n2"].kafka_address == ""


def test_an_empty_kafka_address_says_the_listener_is_off() -> None:
    state = apply(initial_state({"n1": "h:1"}), SetKafkaAddress("n1", "k:1"), 1)
    assert apply(state, SetKafkaAddress("n1", ""), 2).nodes["n1"].kafka_address == ""


@pytest.mark.parametrize(
    ("command", "error", "words"),
    [
        (SetKafkaAddress("n9", "k:1"), NotFoundError, "not a member"),
        (SetKafkaAddress("n1", "k 1"), InvalidArgumentError, "Kafka address"),
    ],
)
def test_a_kafka_address_of_an_unknown_node_or_bad_text_changes_nothing(
    command: SetKafkaAddress, error: type[Exception], words: str
) -> None:
    state = initial_state({"n1": "h:1"})
    applied = apply_reporting(state, command, 1)
    assert isinstance(applied.refused, error)
    assert words in str(applied.refused)
    assert applied.state.nodes == state.nodes


def test_two_nodes_that_would_be_one_kafka_broker_cannot_both_run_a_listener() -> None:
    state = initial_state({"7": "h:1", "007": "h:2"})  # both are broker 7
    state = apply(state, SetKafkaAddress("7", "k:1"), 1)
    applied = apply_reporting(state, SetKafkaAddress("007", "k:2"), 2)
    assert isinstance(applied.refused, InvalidArgumentError)
    assert "same Kafka broker" in str(applied.refused)
    assert applied.state.nodes["007"].kafka_address == ""


def test_a_snapshot_carries_kafka_addresses_and_reads_those_written_before_them() -> None:
    before = initial_state({"n1": "h:1", "n2": "h:2"})
    old_bytes = encode_state(before)
    assert b'["n1","h:1","active"]' in old_bytes  # the encoding of states without any
    assert decode_state(old_bytes) == before
    after = apply(before, SetKafkaAddress("n2", "k:2"), 1)
    data = encode_state(after)
    assert b'["n2","h:2","active","k:2"]' in data
    assert decode_state(data) == after


def test_the_command_round_trips_through_its_canonical_bytes() -> None:
    command = SetKafkaAddress("n1", "127.0.0.1:9092")
    data = command.encode()
    assert data == b'{"address":"127.0.0.1:9092","node_id":"n1","type":"set_kafka_address","v":1}'
    assert decode(data) == command


def test_a_kafka_broker_id_is_the_node_s_number_or_31_bits_of_its_raft_id() -> None:
    assert kafka_broker_id("3") == 3
    assert kafka_broker_id("n1") == raft_id("n1") >> 32
    assert kafka_broker_id("n1") == 867_550_684  # pinned: it must never change
    for name in ("n1", "n2", "node-a", "0", "99999999999", "\u0661"):
        assert 0 < kafka_broker_id(name) < 2**31
