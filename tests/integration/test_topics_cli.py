"""``replog topic ...`` and ``replog produce/consume --topic`` against a real server: each
command works, and each bad input is one clear line, a non-zero exit and no change."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner, Result

from replog.broker.partitioner import partition_for_key
from replog.cli import client_commands, topics
from replog.client import Client
from tests.integration.conftest import ThreadedServer


def _app() -> typer.Typer:
    app = typer.Typer()
    client_commands.register(app)
    app.add_typer(topics.app, name="topic")
    return app


def _run(server: ThreadedServer, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(_app(), [*args, "--server", server.grpc_address], input=stdin)


def _describe(server: ThreadedServer, name: str) -> dict[str, object]:
    result = _run(server, "topic", "describe", name, "--format", "json")
    assert result.exit_code == 0, result.output
    described: dict[str, object] = json.loads(result.stdout)
    return described


def _one_line_error(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert text in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output and "Error(" not in result.stderr


def test_topic_create_list_describe_alter_add_partitions_and_delete(server: ThreadedServer) -> None:
    result = _run(
        server, "topic", "create", "orders", "--partitions", "3", "--config", "retention_ms=60000"
    )
    assert result.exit_code == 0, result.output
    assert "orders" in result.stdout and "3 partition" in result.stdout
    listed = _run(server, "topic", "list")
    assert listed.exit_code == 0 and "orders" in listed.stdout and "default" in listed.stdout
    names = [
        t["name"] for t in json.loads(_run(server, "topic", "list", "--format", "json").stdout)
    ]
    assert names == ["default", "orders"]
    table = _run(server, "topic", "describe", "orders")
    assert table.exit_code == 0 and "retention_ms" in table.stdout and "60000" in table.stdout

    described = _describe(server, "orders")
    assert set(described) == {"name", "config", "partitions"}
    assert described["name"] == "orders"
    partitions = described["partitions"]
    assert isinstance(partitions, list) and len(partitions) == 3
    node = partitions[0]["leader"]
    assert node == server.grpc_address  # the node id of a server without --server-id
    assert partitions[2] == {
        "partition": 2,
        "leader": node,
        "replicas": [node],
        "in_sync": [node],
        "lowest_offset": 0,
        "next_offset": 0,
        "size_bytes": partitions[2]["size_bytes"],
    }
    assert isinstance(described["config"], dict) and described["config"]["retention_ms"] == "60000"

    result = _run(
        server, "topic", "alter", "orders", "--set", "retention_ms=5000", "--set", "sync=always"
    )
    assert result.exit_code == 0, result.output
    config = _describe(server, "orders")["config"]
    assert isinstance(config, dict) and (config["retention_ms"], config["sync"]) == (
        "5000",
        "always",
    )
    result = _run(server, "topic", "alter", "orders", "--delete", "sync")
    assert result.exit_code == 0, result.output
    default_sync = _describe(server, "default")["config"]["sync"]  # type: ignore[index]
    assert _describe(server, "orders")["config"]["sync"] == default_sync  # type: ignore[index]

    result = _run(server, "topic", "add-partitions", "orders", "--count", "5")
    assert result.exit_code == 0 and "5 partition" in result.stdout
    result = _run(server, "topic", "delete", "orders", "--yes")
    assert result.exit_code == 0 and "deleted" in result.stdout
    assert [
        t["name"] for t in json.loads(_run(server, "topic", "list", "--format", "json").stdout)
    ] == ["default"]


def test_produce_and_consume_by_topic_key_and_partition(server: ThreadedServer) -> None:
    assert _run(server, "topic", "create", "events", "--partitions", "4").exit_code == 0
    key_partition = partition_for_key(b"alice", 4)
    result = _run(server, "produce", "--topic", "events", "--record-key", "alice", "a", "b")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [f"{key_partition}:0", f"{key_partition}:1"]
    result = _run(server, "produce", "-t", "events", "--partition", "3", stdin="x\ny\nz\n")
    assert result.exit_code == 0 and "of partition 3" in result.stderr, result.output
    result = _run(server, "consume", "--topic", "events", "--partition", "3")
    assert (result.exit_code, result.stdout) == (0, "x\ny\nz\n")
    result = _run(
        server, "consume", "-t", "events", "--partition", str(key_partition), "--format", "json"
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["offset"], r["key"]) for r in records] == [(0, "YWxpY2U="), (1, "YWxpY2U=")]
    result = _run(
        server, "consume", "-t", "events", "--partition", "3", "--offset", "1", "-f", "--count", "2"
    )
    assert (result.exit_code, result.stdout) == (0, "y\nz\n")
    # Without --topic, produce and consume address the default topic as before.
    assert _run(server, "produce", "plain").stdout.split() == ["0"]
    assert _run(server, "consume").stdout == "plain\n"


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["topic", "create", "a/b"], 1, "topic name"),
        (["topic", "create", ""], 1, "must not be empty"),
        (["topic", "create", "x" * 250], 1, "at most 249"),
        (["topic", "create", "t", "--config", "retention_ms"], 2, "KEY=VALUE"),
        (["topic", "create", "t", "--config", "colour=blue"], 1, "colour"),
        (["topic", "create", "t", "--partitions", "0"], 1, "partition"),
        (["topic", "create", "t", "--partitions", "5000"], 1, "4096"),
        (["topic", "create", "t", "--replication-factor", "2"], 1, "replication factor 2"),
        (["topic", "create", "t", "--replication-factor", "-1"], 1, "replication_factor"),
        (["topic", "describe", "ghost"], 1, "'ghost' does not exist"),
        (["topic", "describe", "default", "--format", "yaml"], 2, "--format"),
        (["topic", "delete", "ghost", "--yes"], 1, "'ghost' does not exist"),
        (["topic", "delete", "default", "--yes"], 1, "cannot be deleted"),
        (["topic", "alter", "ghost", "--set", "retention_ms=1"], 1, "'ghost' does not exist"),
        (["topic", "alter", "default"], 2, "--set"),
        (["topic", "alter", "default", "--set", "=1"], 2, "KEY=VALUE"),
        (["topic", "add-partitions", "ghost", "--count", "2"], 1, "'ghost' does not exist"),
        (["produce", "--topic", "ghost", "x"], 1, "'ghost' does not exist"),
        (["produce", "--partition", "1", "x"], 1, "there is no partition 1"),
        (["produce", "--partition", "-1", "x"], 1, "partition"),
        (["consume", "--topic", "ghost"], 1, "'ghost' does not exist"),
        (["consume", "--partition", "4"], 1, "there is no partition 4"),
    ],
    ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else str(v),
)
def test_bad_input_is_one_line_a_non_zero_exit_and_no_change(
    server: ThreadedServer, args: list[str], code: int, text: str
) -> None:
    before = _run(server, "topic", "list", "--format", "json").stdout
    _one_line_error(_run(server, *args), code, text)
    assert _run(server, "topic", "list", "--format", "json").stdout == before


def test_a_duplicate_topic_is_refused_and_the_first_is_kept(server: ThreadedServer) -> None:
    assert _run(server, "topic", "create", "dup", "--partitions", "2").exit_code == 0
    before = _describe(server, "dup")
    _one_line_error(
        _run(server, "topic", "create", "dup", "--partitions", "4"), 1, "already exists"
    )
    assert _describe(server, "dup") == before


def test_an_altered_config_with_a_bad_value_changes_nothing(server: ThreadedServer) -> None:
    assert _run(server, "topic", "create", "cfg").exit_code == 0
    before = _describe(server, "cfg")
    args = ["topic", "alter", "cfg", "--set", "retention_ms=100", "--set", "sync=often"]
    _one_line_error(_run(server, *args), 1, "sync")
    assert _describe(server, "cfg") == before
    _one_line_error(_run(server, "topic", "add-partitions", "cfg", "--count", "1"), 1, "partition")
    assert _describe(server, "cfg") == before


def test_delete_without_yes_from_a_script_refuses_and_keeps_the_topic(
    server: ThreadedServer,
) -> None:
    with Client(server.grpc_address) as client:
        client.create_topic("precious")
        client.produce(b"keep me", topic="precious")
    _one_line_error(_run(server, "topic", "delete", "precious"), 2, "--yes")
    assert _describe(server, "precious")["partitions"][0]["next_offset"] == 1  # type: ignore[index]
