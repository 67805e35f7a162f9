"""``replog topic``: create, list, describe, alter, delete and grow topics (the Admin service).

Connects and reports errors as the other client commands do (``--server``, the TLS options,
one line on stderr and exit status 1 for a refused call; 2 for a malformed option).
``delete`` asks before deleting on a terminal and, like any destructive command run from a
script, needs ``--yes`` when stdin is not one.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from replog.cli.client_commands import (
    _DEFAULT_SERVER,
    CaOpt,
    CertOpt,
    KeyOpt,
    ServerOpt,
    _client,
    _errors,
)
from replog.client import TopicDescription

__all__ = ["app", "topic_json"]

app = typer.Typer(no_args_is_help=True)

FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]


def _usage(message: str) -> typer.Exit:
    print(f"replog: error: {message}", file=sys.stderr)
    return typer.Exit(2)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """``k=v`` options as a dict; exit 2 for one without ``=`` or an empty key."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _usage(f"{option} takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise _usage(f"--format must be table or json, got {fmt!r}")


def topic_json(topic: TopicDescription) -> dict[str, Any]:
    """The JSON form ``topic describe --format json`` prints."""
    return {
        "name": topic.name,
        "config": dict(topic.config),
        "partitions": [
            {
                "partition": p.partition,
                "leader": p.leader,
                "replicas": list(p.replicas),
                "in_sync": list(p.in_sync),
                "lowest_offset": p.lowest_offset,
                "next_offset": p.next_offset,
                "size_bytes": p.size_bytes,
            }
            for p in topic.partitions
        ],
    }


def _summary(topic: TopicDescription) -> str:
    return (
        f"topic {topic.name}: {topic.partition_count} partition(s), "
        f"replication factor {topic.replication_factor}"
    )


@app.command("create")
def create_command(  # noqa: PLR0917  (typer options)
    name: str,
    partitions: Annotated[int, typer.Option(help="Partition count (1..4096).")] = 1,
    replication_factor: Annotated[
        int,
        typer.Option(help="Replicas of each partition.", show_default="the server's choice"),
    ] = 0,
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="KEY=VALUE, repeatable.")
    ] = None,
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Create topic NAME."""
    settings = _pairs(config, "--config")
    with _errors(), _client(server, ca, cert, key) as client:
        topic = client.create_topic(name, partitions, replication_factor, settings)
    print(f"created {_summary(topic)}")


@app.command("list")
def list_command(
    fmt: FormatOpt = "table",
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """List the topics."""
    _check_format(fmt)
    with _errors(), _client(server, ca, cert, key) as client:
        topics = client.list_topics()
    if fmt == "json":
        print(json.dumps([topic_json(t) for t in topics]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "partitions", "replication factor")
    for t in topics:
        table.add_row(t.name, str(t.partition_count), str(t.replication_factor))
    Console().print(table)


@app.command("describe")
def describe_command(  # noqa: PLR0917  (typer options)
    name: str,
    fmt: FormatOpt = "table",
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Show topic NAME: its configuration and each partition's leader, replicas, offsets."""
    _check_format(fmt)
    with _errors(), _client(server, ca, cert, key) as client:
        topic = client.describe_topic(name)
    if fmt == "json":
        print(json.dumps(topic_json(topic)))
        return
    _print_topic(topic)


def _print_topic(topic: TopicDescription) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    settings = Table("key", "value", title=_summary(topic))
    for k, v in topic.config.items():
        settings.add_row(k, v)
    console.print(settings)
    columns = ("partition", "leader", "replicas", "in sync", "lowest", "next", "size (bytes)")
    table = Table(*columns)
    for p in topic.partitions:
        table.add_row(
            str(p.partition),
            p.leader or "-",
            ",".join(p.replicas),
            ",".join(p.in_sync),
            str(p.lowest_offset),
            str(p.next_offset),
            str(p.size_bytes),
        )
    console.print(table)


@app.command("alter")
def alter_command(  # noqa: PLR0917  (typer options)
    name: str,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=VALUE to set, repeatable.")
    ] = None,
    delete: Annotated[
        list[str] | None,
        typer.Option("--delete", help="KEY to reset to the server's default, repeatable."),
    ] = None,
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Change topic NAME's configuration."""
    settings = _pairs(set_, "--set")
    if not settings and not delete:
        raise _usage("give --set KEY=VALUE or --delete KEY")
    with _errors(), _client(server, ca, cert, key) as client:
        topic = client.alter_topic_config(name, settings, list(delete or ()))
    print(f"altered topic {topic.name}")


@app.command("delete")
def delete_command(  # noqa: PLR0917  (typer options)
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Delete topic NAME and all its records."""
    if not yes:
        if not sys.stdin.isatty():
            raise _usage(f"deleting topic {name!r} removes all its records: pass --yes")
        if not typer.confirm(f"Delete topic {name!r} and all its records?", default=False):
            print("not deleted", file=sys.stderr)
            raise typer.Exit(1)
    with _errors(), _client(server, ca, cert, key) as client:
        client.delete_topic(name)
    print(f"deleted topic {name}")


@app.command("add-partitions")
def add_partitions_command(  # noqa: PLR0917  (typer options)
    name: str,
    count: Annotated[int, typer.Option(help="The new total partition count.")],
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Grow topic NAME to COUNT partitions (a topic never shrinks)."""
    with _errors(), _client(server, ca, cert, key) as client:
        topic = client.create_partitions(name, count)
    print(f"{_summary(topic)}")


@app.command("reassign")
def reassign_command(  # noqa: PLR0917  (typer options)
    name: str,
    partition: int,
    replicas: Annotated[
        str, typer.Option(help="The new replica set, preferred leader first: a,b,c.")
    ],
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Move PARTITION of topic NAME to the nodes REPLICAS (a cluster only).

    Returns once the move is recorded; `replog cluster status` shows it until done."""
    from replog.cli.cluster import _call
    from replog.v1 import cluster_pb2

    nodes = [n.strip() for n in replicas.split(",") if n.strip()]
    if not nodes:
        raise _usage("--replicas: give at least one node id")
    if not 0 <= partition < 2**32:
        raise _usage(f"partition {partition} is out of range")
    request = cluster_pb2.ReassignPartitionRequest(topic=name, partition=partition, replicas=nodes)
    answer, _, _ = _call(server, ca, cert, key, "ReassignPartition", request)
    move = answer.move
    if move.target:
        print(f"moving {name}/{partition}: {','.join(move.replicas)} -> {','.join(move.target)}")
    else:
        print(f"{name}/{partition} stays on {','.join(move.replicas)}")
