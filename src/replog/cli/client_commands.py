"""``replog consume`` and ``replog servers`` (and the options every client command shares);
``replog produce`` lives in ``replog.cli.produce``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Annotated

import typer

from replog.client import Client, Consumer, ConsumerRecord, RetryPolicy
from replog.errors import ReplogError
from replog.jsonform import record_to_json
from replog.v1.record_pb2 import Header, Record

__all__ = ["register"]

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        "-s",
        envvar="REPLOG_SERVER",
        help="The servers' gRPC HOST:PORT, comma-separated (any one will do).",
    ),
]
CaOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        envvar="REPLOG_CA",
        help="CA (PEM) that signed the server's cert.",
        show_default="none: plaintext",
    ),
]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert",
        envvar="REPLOG_CERT",
        help="Client certificate (PEM), mutual TLS.",
        show_default="none",
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", envvar="REPLOG_KEY", help="The client certificate's key.", show_default="none"
    ),
]
TopicOpt = Annotated[
    str, typer.Option("--topic", "-t", help="The topic.", show_default="the default topic")
]
_DEFAULT_SERVER = "127.0.0.1:7400"
_CLI_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.1)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn replog errors into one line on stderr and exit status 1."""
    try:
        yield
    except ReplogError as exc:
        print(f"replog: error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise typer.Exit(0) from None


def _client(server: str, ca: Path | None, cert: Path | None, key: Path | None) -> Client:
    """A client for a command: TLS when any of ``ca``/``cert``/``key`` is given."""
    return Client(server, retry=_CLI_RETRY, ca=ca, cert=cert, key=key)


def consume_command(  # noqa: PLR0917  (typer options)
    offset: Annotated[int, typer.Option(min=0, help="First offset to read.")] = 0,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many.", show_default="no limit")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep tailing new records.")
    ] = False,
    fmt: Annotated[
        str, typer.Option("--format", help="raw (value per line) or json (record per line).")
    ] = "raw",
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    topic: TopicOpt = "",
    partition: Annotated[int, typer.Option(help="The partition to read.")] = 0,
    group: Annotated[
        str,
        typer.Option(
            "--group",
            "-g",
            help="Read as a member of this consumer group (until Ctrl-C).",
            show_default="none: read the one partition",
        ),
    ] = "",
    auto_offset_reset: Annotated[
        str,
        typer.Option(help="With --group: where a partition without a commit starts."),
    ] = "latest",
) -> None:
    """Print records from OFFSET of a topic's partition: up to its end, or tailing with
    --follow. With --group: the partitions the group assigns, committing what was printed,
    until --count records or Ctrl-C (which commits and leaves)."""
    if fmt not in ("raw", "json"):
        print(f"replog: error: --format must be raw or json, got {fmt!r}", file=sys.stderr)
        raise typer.Exit(2)
    out = sys.stdout.buffer
    if group:
        if offset or partition or follow:
            print(
                "replog: error: --offset, --partition and --follow do not apply with --group "
                "(the group assigns the partitions and knows where each one stands)",
                file=sys.stderr,
            )
            raise typer.Exit(2)
        with _errors(), _client(server, ca, cert, key) as client:
            _consume_group(client, group, topic or "default", auto_offset_reset, fmt, count)
        return
    with _errors(), _client(server, ca, cert, key) as client:
        where = (topic, partition)
        records = _tail(client, offset, where) if follow else _until_end(client, offset, where)
        try:
            for printed, record in enumerate(records, start=1):
                if fmt == "raw":
                    out.write(record.value + b"\n")
                else:
                    out.write(json.dumps(record_to_json(record)).encode() + b"\n")
                if follow:
                    out.flush()
                if count is not None and printed >= count:
                    break
        finally:
            records.close()
            out.flush()


def _consume_group(  # noqa: PLR0917
    client: Client, group: str, topic: str, reset: str, fmt: str, count: int | None
) -> None:
    """Print what the group assigns this member; commit what was written out, about every
    second and at the end (at least once: never a record not yet flushed)."""
    out = sys.stdout.buffer
    consumer = Consumer(client, group, [topic], auto_offset_reset=reset, enable_auto_commit=False)
    printed, committed_at = 0, time.monotonic()
    try:
        while count is None or printed < count:
            record = consumer.poll(0.5)
            if record is not None:
                line = record.value if fmt == "raw" else _json_line(record)
                out.write(line + b"\n")
                printed += 1
            if record is None or time.monotonic() - committed_at >= 1.0:
                out.flush()
                consumer.commit()
                committed_at = time.monotonic()
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.flush()
        try:
            consumer.commit()
        finally:
            consumer.close()


def _json_line(record: ConsumerRecord) -> bytes:
    message = Record(
        value=record.value, key=record.key, offset=record.offset, timestamp_ms=record.timestamp
    )
    message.headers.extend(Header(key=k, value=v) for k, v in record.headers)
    fields = {"topic": record.topic, "partition": record.partition, **record_to_json(message)}
    return json.dumps(fields).encode()


def _tail(client: Client, offset: int, where: tuple[str, int]) -> Generator[Record, None, None]:
    for batch in client.stream_batches(offset, topic=where[0], partition=where[1]):
        yield from batch.records


def _until_end(
    client: Client, offset: int, where: tuple[str, int]
) -> Generator[Record, None, None]:
    """Records from ``offset`` of the (topic, partition) ``where`` up to the high watermark
    seen by the first read."""
    end: int | None = None
    while True:
        batch = client.consume_batch(offset, max_records=1000, topic=where[0], partition=where[1])
        end = batch.high_watermark if end is None else end
        for record in batch.records:
            if record.offset >= end:
                return
            yield record
        # The server's next offset moves past control records even after an empty batch.
        next_offset = batch.next_offset
        if next_offset is None or next_offset <= offset or next_offset >= end:
            return
        offset = next_offset


def servers_command(
    server: ServerOpt = _DEFAULT_SERVER, ca: CaOpt = None, cert: CertOpt = None, key: KeyOpt = None
) -> None:
    """List the cluster's servers."""
    from rich.console import Console
    from rich.table import Table

    with _errors(), _client(server, ca, cert, key) as client:
        servers = client.servers()
    table = Table("id", "rpc_addr", "leader")
    for s in servers:
        table.add_row(s.id, s.rpc_addr, "yes" if s.is_leader else "")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``produce``, ``consume`` and ``servers`` to the app."""
    from replog.cli.produce import produce_command  # it imports this module's options

    app.command("produce")(produce_command)
    app.command("consume")(consume_command)
    app.command("servers")(servers_command)
