"""The encodings of metadata commands and controller snapshots: stable, versioned, and
strict about what they read."""

from __future__ import annotations

import pytest

from replog.cluster.controller import apply, initial_state
from replog.cluster.controller_commands import (
    AlterTopicConfig,
    CreateTopic,
    DecommissionNode,
    ReassignPartition,
    decode,
)
from replog.cluster.controller_snapshot import decode_state, encode_state
from replog.errors import InvalidArgumentError, UnsupportedError


def test_a_command_encodes_to_canonical_json_with_its_version_and_type() -> None:
    command = AlterTopicConfig("t", {"sync": "never", "retention_ms": "5"}, ("segment_ms",))
    assert command.encode() == (
        b'{"delete":["segment_ms"],"name":"t","set":{"retention_ms":"5","sync":"never"},'
        b'"type":"alter_topic_config","v":1}'
    )
    assert decode(command.encode()) == command


@pytest.mark.parametrize("version", [b"2", b"0", b"true", b'"1"', b"null"])
def test_a_command_of_an_unknown_version_is_refused_as_unsupported(version: bytes) -> None:
    data = b'{"name":"t","type":"delete_topic","v":' + version + b"}"
    with pytest.raises(UnsupportedError, match="upgrade"):
        decode(data)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"v":1,"type":"drop_everything"}', "unknown metadata command type"),
        (b'{"v":1,"type":"delete_topic"}', "lacks the field 'name'"),
        (b'{"v":1,"type":"delete_topic","name":7}', "'name' has the wrong type"),
        (b'{"v":1,"type":"delete_topic","name":"t","x":1}', "unknown fields"),
        (
            b'{"v":1,"type":"create_partitions","name":"t","count":true}',
            "'count' has the wrong type",
        ),
        (
            b'{"v":1,"type":"reassign_partition","topic":"t","partition":0,"replicas":[1]}',
            "'replicas' has the wrong type",
        ),
        (
            b'{"v":1,"type":"create_topic","name":"t","partitions":1,'
            b'"replication_factor":1,"config":{"sync":1}}',
            "'config' has the wrong type",
        ),
    ],
)
def test_bytes_that_are_no_command_are_refused_clearly(data: bytes, words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        decode(data)


def test_a_snapshot_round_trips_a_state_with_moves_in_progress() -> None:
    state = initial_state({"n0": "a", "n1": "b", "n2": "c", "n3": "d"})
    state = apply(state, CreateTopic("t", 4, 2, {"sync": "never"}), 1)
    state = apply(state, ReassignPartition("t", 0, ("n3",)), 2)
    state = apply(state, DecommissionNode("n1"), 3)
    data = encode_state(state)
    assert decode_state(data) == state
    assert encode_state(decode_state(data)) == data
    assert b'"v":1' in data


def test_a_snapshot_of_an_unknown_version_or_shape_is_refused() -> None:
    data = encode_state(initial_state({"n0": "a"}))
    with pytest.raises(UnsupportedError):
        decode_state(data.replace(b'"v":1', b'"v":2'))
    with pytest.raises(InvalidArgumentError, match="controller snapshot"):
        decode_state(data.replace(b'"active"', b'"sleeping"'))
    with pytest.raises(InvalidArgumentError, match="controller snapshot"):
        decode_state(b'{"v":1}')
