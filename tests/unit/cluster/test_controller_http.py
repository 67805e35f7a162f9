"""Each node's HTTP address in the controller state: set by the node, kept across
registrations and decommissions, in snapshots only when there is one (states without one
encode exactly as before), and found from a node's gRPC address."""

from __future__ import annotations

import pytest

from replog.cluster.controller import apply, apply_reporting, initial_state
from replog.cluster.controller_commands import (
    DecommissionNode,
    RegisterNode,
    SetHttpAddress,
    SetKafkaAddress,
    decode,
)
from replog.cluster.controller_queries import http_address_of
from replog.cluster.controller_snapshot import decode_state, encode_state
from replog.errors import InvalidArgumentError, NotFoundError


def test_a_node_s_http_address_is_kept_across_its_registration_and_decommission() -> None:
    state = initial_state({"n1": "h:1", "n2": "h:2"})
    state = apply(state, SetHttpAddress("n1", "w:8080"), 1)
    state = apply(state, SetKafkaAddress("n1", "k:9092"), 2)
    state = apply(state, RegisterNode("n1", "h:11"), 3)  # a restart on a new gRPC port
    state = apply(state, DecommissionNode("n1"), 4)
    node = state.nodes["n1"]
    assert (node.address, node.state, node.kafka_address, node.http_address) == (
        "h:11",
        "decommissioning",
        "k:9092",
        "w:8080",
    )
    assert state.nodes["n2"].http_address == ""


@pytest.mark.parametrize(
    ("command", "error", "words"),
    [
        (SetHttpAddress("n9", "w:1"), NotFoundError, "not a member"),
        (SetHttpAddress("n1", "w 1"), InvalidArgumentError, "HTTP address"),
        (SetHttpAddress("n1", "w:1\n"), InvalidArgumentError, "HTTP address"),
    ],
)
def test_an_http_address_of_an_unknown_node_or_bad_text_changes_nothing(
    command: SetHttpAddress, error: type[Exception], words: str
) -> None:
    state = initial_state({"n1": "h:1"})
    applied = apply_reporting(state, command, 1)
    assert isinstance(applied.refused, error)
    assert words in str(applied.refused)
    assert applied.state.nodes == state.nodes


_TOPICS = b'"topics":[{"config":{},"id":0,"name":"default","partitions":[[["n1","n2"],null]],'


def test_a_snapshot_without_http_addresses_has_the_bytes_it_had_before_them() -> None:
    plain = initial_state({"n1": "h:1", "n2": "h:2"})
    kafka = apply(plain, SetKafkaAddress("n2", "k:2"), 1)
    # Pinned: what the code before HTTP addresses wrote for these states.
    assert encode_state(plain) == (
        b'{"nodes":[["n1","h:1","active"],["n2","h:2","active"]],'
        + _TOPICS
        + b'"rf":2,"start":0}],"v":1,"version":0}'
    )
    assert encode_state(kafka) == (
        b'{"nodes":[["n1","h:1","active"],["n2","h:2","active","k:2"]],'
        + _TOPICS
        + b'"rf":2,"start":0}],"v":1,"version":1}'
    )
    assert decode_state(encode_state(plain)) == plain
    assert decode_state(encode_state(kafka)) == kafka


def test_a_snapshot_carries_http_addresses_with_or_without_a_kafka_address() -> None:
    state = initial_state({"n1": "h:1", "n2": "h:2", "n3": "h:3"})
    state = apply(state, SetHttpAddress("n1", "w:1"), 1)
    state = apply(state, SetHttpAddress("n2", "w:2"), 2)
    state = apply(state, SetKafkaAddress("n2", "k:2"), 3)
    state = apply(state, SetKafkaAddress("n3", "k:3"), 4)
    data = encode_state(state)
    assert b'["n1","h:1","active","","w:1"]' in data
    assert b'["n2","h:2","active","k:2","w:2"]' in data
    assert b'["n3","h:3","active","k:3"]' in data
    assert decode_state(data) == state
    assert encode_state(decode_state(data)) == data


def test_a_snapshot_node_of_six_fields_is_no_snapshot() -> None:
    data = encode_state(initial_state({"n1": "h:1"})).replace(
        b'["n1","h:1","active"]', b'["n1","h:1","active","","w:1","x"]'
    )
    with pytest.raises(InvalidArgumentError, match="not a controller snapshot"):
        decode_state(data)


def test_the_command_round_trips_through_its_canonical_bytes() -> None:
    command = SetHttpAddress("n1", "127.0.0.1:7401")
    data = command.encode()
    assert data == b'{"address":"127.0.0.1:7401","node_id":"n1","type":"set_http_address","v":1}'
    assert decode(data) == command


def test_a_node_s_http_address_is_found_from_its_grpc_address_only_when_unambiguous() -> None:
    state = initial_state({"n1": "h:1", "n2": "h:2", "n3": "h:3"})
    state = apply(state, SetHttpAddress("n1", "w:1"), 1)
    assert http_address_of(state, "h:1") == "w:1"
    assert http_address_of(state, "h:2") == ""  # it has not said
    assert http_address_of(state, "h:9") == ""  # no such node
    assert http_address_of(state, "") == ""
    state = apply(state, RegisterNode("n2", "h:1"), 2)  # n1's old address, taken over
    state = apply(state, SetHttpAddress("n2", "w:2"), 3)
    assert http_address_of(state, "h:1") == ""
