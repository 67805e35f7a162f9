"""``replog group``: list, describe, reset the offsets of and delete consumer groups.

Every error is one line on stderr and a non-zero exit. ``reset-offsets`` computes the new
offsets here and commits them from outside the group (member id ""), which the coordinator
refuses while the group has members.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

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
from replog.client import Client
from replog.client.groups import GroupDescription, PartitionLag
from replog.errors import InvalidArgumentError, NonEmptyGroupError, NotFoundError

__all__ = ["app", "describe_json", "first_offset_at", "parse_time_ms"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

FormatOpt = Annotated[str, typer.Option("--format", help="table or json.")]


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise InvalidArgumentError(f"--format must be table or json, got {fmt!r}")


@app.command("list")
def list_command(
    fmt: FormatOpt = "table",
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """List every consumer group of the cluster with its state and member count."""
    with _errors(), _client(server, ca, cert, key) as client:
        _check_format(fmt)
        groups = client.list_groups()
    if fmt == "json":
        rows = [{"group": g.group, "state": g.state, "members": g.members} for g in groups]
        print(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("group", "state", "members")
    for g in groups:
        table.add_row(g.group, g.state, str(g.members))
    Console().print(table)


def completed_lags(client: Client, description: GroupDescription) -> list[PartitionLag]:
    """The group's offsets with the lag of partitions its coordinator does not host
    filled in from the topics' descriptions."""
    bounds: dict[str, list[tuple[int, int]]] = {}
    out = []
    for given in description.offsets:
        o = given
        if o.end_offset < 0:
            if o.topic not in bounds:
                parts = client.describe_topic(o.topic).partitions
                bounds[o.topic] = [(p.lowest_offset, p.next_offset) for p in parts]
            low, end = bounds[o.topic][o.partition]
            lag = max(0, end - (o.committed if o.committed >= 0 else low))
            o = PartitionLag(o.topic, o.partition, o.committed, end, lag)
        out.append(o)
    return out


def describe_json(description: GroupDescription, offsets: list[PartitionLag]) -> dict[str, object]:
    """``replog group describe --format json``: exactly group, generation, members (id,
    assignment) and offsets (topic, partition, committed, lag)."""
    return {
        "group": description.group,
        "generation": description.generation,
        "members": [
            {
                "id": m.member_id,
                "assignment": [{"topic": t, "partition": p} for t, p in m.assignment],
            }
            for m in description.members
        ],
        "offsets": [
            {"topic": o.topic, "partition": o.partition, "committed": o.committed, "lag": o.lag}
            for o in offsets
        ],
    }


@app.command("describe")
def describe_command(  # noqa: PLR0917  (typer options)
    group: Annotated[str, typer.Argument(help="The group.")],
    fmt: FormatOpt = "table",
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Show a group's members and assignment, and its committed offset and lag per
    partition."""
    with _errors(), _client(server, ca, cert, key) as client:
        _check_format(fmt)
        description = client.describe_group(group)
        offsets = completed_lags(client, description)
    if fmt == "json":
        print(json.dumps(describe_json(description, offsets)))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"group {description.group}: {description.state}, generation "
        f"{description.generation}, assignor {description.assignor}"
    )
    members = Table("member", "epoch", "assignment")
    for m in description.members:
        owned = ", ".join(f"{t}/{p}" for t, p in m.assignment)
        members.add_row(m.member_id, str(m.member_epoch), owned)
    console.print(members)
    table = Table("topic", "partition", "committed", "end", "lag")
    for o in offsets:
        table.add_row(o.topic, str(o.partition), str(o.committed), str(o.end_offset), str(o.lag))
    console.print(table)


def parse_time_ms(text: str) -> int:
    """Milliseconds since the Unix epoch from an integer of them or an ISO-8601 time
    (without a zone: UTC); InvalidArgumentError otherwise."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgumentError(
            f"--to-time takes epoch milliseconds or an ISO-8601 time, got {text!r}"
        ) from None
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def first_offset_at(
    first_from: Callable[[int], tuple[int, int] | None], low: int, end: int, time_ms: int
) -> int:
    """The offset of the first record in ``[low, end)`` whose timestamp is ``time_ms``
    or later (``end`` if none), by binary search; ``first_from(o)`` gives (offset,
    timestamp) of the first record at ``o`` or after, None when there is none before
    ``end``. Timestamps are append times, so they do not go down along a partition."""
    lo, hi = low, end
    while lo < hi:
        mid = (lo + hi) // 2
        found = first_from(mid)
        if found is None or found[0] >= hi or found[1] >= time_ms:
            hi = mid
        else:
            lo = found[0] + 1
    found = first_from(lo) if lo < end else None  # past any gap: a record's own offset
    return found[0] if found is not None and found[0] < end else end


def _first_from(
    client: Client, topic: str, partition: int
) -> Callable[[int], tuple[int, int] | None]:
    def first(offset: int) -> tuple[int, int] | None:
        batch = client.consume_batch(offset, 1, topic=topic, partition=partition, min_offset=0)
        if not batch.records:
            return None
        record = batch.records[0]
        return int(record.offset), int(record.timestamp_ms)

    return first


def reset_targets(
    client: Client,
    topic: str,
    *,
    to_earliest: bool,
    to_latest: bool,
    to_offset: int | None,
    to_time: str | None,
) -> dict[tuple[str, int], int]:
    """The offset each partition of ``topic`` is reset to (clamped to its range)."""
    chosen = [to_earliest, to_latest, to_offset is not None, to_time is not None]
    if sum(chosen) != 1:
        raise InvalidArgumentError(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --to-time"
        )
    time_ms = parse_time_ms(to_time) if to_time is not None else None
    out = {}
    for p in client.describe_topic(topic).partitions:
        low, end = p.lowest_offset, p.next_offset
        if to_earliest:
            target = low
        elif to_latest:
            target = end
        elif to_offset is not None:
            target = min(max(to_offset, low), end)
        else:
            assert time_ms is not None
            target = first_offset_at(_first_from(client, topic, p.partition), low, end, time_ms)
        out[(topic, p.partition)] = target
    return out


@app.command("reset-offsets")
def reset_command(  # noqa: PLR0917  (typer options)
    group: Annotated[str, typer.Argument(help="The group (it must have no members).")],
    topic: Annotated[str, typer.Option("--topic", "-t", help="The topic to reset.")],
    to_earliest: Annotated[bool, typer.Option("--to-earliest")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest")] = False,
    to_offset: Annotated[
        int | None,
        typer.Option("--to-offset", min=0, help="This offset.", show_default="none"),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time", help="Epoch ms or ISO-8601 (UTC if no zone).", show_default="none"
        ),
    ] = None,
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Set a group's committed offsets of every partition of a topic (while the group has
    no members)."""
    with _errors(), _client(server, ca, cert, key) as client:
        try:
            members = client.describe_group(group).members
        except NotFoundError:
            members = ()
        if members:
            raise NonEmptyGroupError(
                f"group {group!r} has {len(members)} members: stop them before resetting"
            )
        targets = reset_targets(
            client,
            topic,
            to_earliest=to_earliest,
            to_latest=to_latest,
            to_offset=to_offset,
            to_time=to_time,
        )
        client.commit_offsets(group, targets)
    for (t, p), offset in sorted(targets.items()):
        print(f"{t}\t{p}\t{offset}")


@app.command("delete")
def delete_command(
    group: Annotated[str, typer.Argument(help="The group (it must have no members).")],
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Delete a group and its committed offsets."""
    with _errors(), _client(server, ca, cert, key) as client:
        client.delete_group(group)
    print(f"deleted group {group}", file=sys.stderr)
