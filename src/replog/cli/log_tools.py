"""``replog log dump`` and ``replog log check``: look inside a log directory, read-only.

A server's data directory holds one log per partition (``topics/<topic>/<partition>/``):
``dump`` reads one (``--topic``, ``--partition``; ``default``/0 unless told), ``check``
checks every one.

Like Kafka's ``kafka-dump-log``, these tools never open the directory as a ``Log``: that
takes the directory lock and may repair (cut) a torn tail. Instead a small read-only reader
opens the segment files with ``O_RDONLY`` and parses them itself, so the tools work on a
read-only copy and while a live server holds the log open, and change nothing.

On-disk format (see ``replog.storage``): segments are ``{base:020d}.store`` and
``{base:020d}.index``; a store is frames ``[u64 length][u32 crc32c][payload]`` whose payload
is a serialized ``replog.v1.Record``; an index is 12-byte entries ``(u32 relative offset,
u64 store position)``, big-endian, pre-sized with zeros while the segment is active and
trimmed to its entries on a clean close or when the segment is sealed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from replog.errors import CorruptRecordError, ReplogError
from replog.storage.inspect import CheckReport, check_log, iter_records, list_segments
from replog.v1.record_pb2 import Record

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

_PROGRESS_MIN_BYTES = 64 << 20


# -- output helpers ---------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> typer.Exit:
    print(f"replog: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def _parse_int(name: str, text: str | None, minimum: int) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _fail(f"{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise _fail(f"{name} must be at least {minimum}, got {value}")
    return value


def _text_or_none(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _show_text(data: bytes) -> str:
    text = _text_or_none(data)
    return json.dumps(text, ensure_ascii=False) if text is not None else repr(data)


def _json_bytes(data: bytes) -> tuple[str, str]:
    text = _text_or_none(data)
    if text is not None:
        return text, "utf8"
    return base64.b64encode(data).decode("ascii"), "base64"


def _timestamp(ms: int) -> str:
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def format_text(record: Record, position: int) -> str:
    """One record as a line of ``name: value`` pairs (Kafka's dump style)."""
    parts = [
        f"offset: {record.offset}",
        f"position: {position}",
        f"timestamp: {_timestamp(record.timestamp_ms)}",
    ]
    if record.term:
        parts.append(f"term: {record.term}")
    if record.type:
        parts.append(f"type: {record.type}")
    if record.key:
        parts.append(f"key: {_show_text(record.key)}")
    if record.headers:
        shown = ", ".join(f"{json.dumps(h.key)}: {_show_text(h.value)}" for h in record.headers)
        parts.append(f"headers: {{{shown}}}")
    parts.append(f"value: {_show_text(record.value)}")
    return " ".join(parts)


def format_json(record: Record, position: int) -> str:
    """One record as a JSON object on one line (bytes as UTF-8 text or base64)."""
    out: dict[str, Any] = {
        "offset": record.offset,
        "position": position,
        "timestamp_ms": record.timestamp_ms,
    }
    if record.term:
        out["term"] = record.term
    if record.type:
        out["type"] = record.type
    if record.key:
        out["key"], out["key_encoding"] = _json_bytes(record.key)
    if record.headers:
        headers = []
        for header in record.headers:
            value, encoding = _json_bytes(header.value)
            headers.append({"key": header.key, "value": value, "value_encoding": encoding})
        out["headers"] = headers
    out["value"], out["value_encoding"] = _json_bytes(record.value)
    return json.dumps(out, ensure_ascii=False)


# -- commands ---------------------------------------------------------------------------------

DirArg = Annotated[
    str,
    typer.Argument(help="The log directory, or a server's data directory (it is only read)."),
]


def partition_dirs(directory: str) -> list[tuple[str, str]] | None:
    """``(topic/partition, path)`` of every partition when ``directory`` is a data directory
    of topics (it has ``topics/``), in topic and partition order; None for a log directory."""
    topics = os.path.join(directory, "topics")
    if not os.path.isdir(topics):
        return None
    found = []
    for topic in sorted(os.listdir(topics)):
        where = os.path.join(topics, topic)
        if not os.path.isdir(where):
            continue
        parts = sorted(int(p) for p in os.listdir(where) if p.isdigit())
        found += [(f"{topic}/{p}", os.path.join(where, str(p))) for p in parts]
    return found


def _one_partition(directory: str, topic: str | None, partition: str | None) -> str:
    parts = partition_dirs(directory)
    if parts is None:
        if topic is not None or partition is not None:
            raise _fail(f"{directory} is one log, not a data directory of topics")
        return directory
    number = _parse_int("--partition", partition, 0) or 0
    name = f"{topic or 'default'}/{number}"
    for label, path in parts:
        if label == name:
            return path
    raise _fail(f"{directory} has no partition {name}")


@app.command()
def dump(  # noqa: PLR0917  # typer passes every option as a parameter
    directory: DirArg,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="OFFSET", help="First offset to print.", show_default="lowest"
        ),
    ] = None,
    count: Annotated[
        str | None,
        typer.Option("--count", metavar="N", help="Print at most N records.", show_default="all"),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", metavar="text|json", help="Output format.")
    ] = "text",
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="In a data directory: the topic.", show_default="default"),
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option(
            "--partition", metavar="P", help="In a data directory: the partition.", show_default="0"
        ),
    ] = None,
) -> None:
    """Print the records of a log directory, oldest first, without locking or changing it."""
    directory = _one_partition(directory, topic, partition)
    start = _parse_int("--from", from_, 0)
    limit = _parse_int("--count", count, 0)
    if output_format not in ("text", "json"):
        raise _fail(f"--format must be text or json, got {output_format!r}")
    formatter = format_json if output_format == "json" else format_text
    out = sys.stdout
    printed = 0
    try:
        if limit == 0:
            list_segments(directory)  # still report a bad directory
            return
        for record, position in iter_records(directory, start):
            out.write(formatter(record, position) + "\n")
            printed += 1
            if limit is not None and printed >= limit:
                break
        out.flush()
    except BrokenPipeError:  # `replog log dump DIR | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        raise typer.Exit(0) from None
    except CorruptRecordError as exc:
        out.flush()
        raise _fail(str(exc), 2) from None
    except ReplogError as exc:
        raise _fail(str(exc)) from None


@app.command()
def check(directory: DirArg) -> None:
    """Verify CRCs, lengths, offsets and indexes of a log directory (of every partition of a
    data directory); exit 2 on corruption."""
    parts = partition_dirs(directory)
    if parts is not None:
        corrupt = [label for label, path in parts if not _check_one(path)]
        if corrupt:
            raise _fail(f"corrupt partitions: {', '.join(corrupt)}", 2)
        return
    if not _check_one(directory):
        raise typer.Exit(2)


def _check_one(directory: str) -> bool:
    try:
        total = sum(
            os.path.getsize(s.store_path)
            for s in list_segments(directory)
            if s.store_path is not None
        )
        if sys.stderr.isatty() and total >= _PROGRESS_MIN_BYTES:
            progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            with progress:
                task = progress.add_task("checking", total=total)
                report = check_log(directory, lambda n: progress.advance(task, n))
        else:
            report = check_log(directory)
    except (ReplogError, OSError) as exc:
        raise _fail(str(exc)) from None
    _print_report(directory, report)
    return not report.problems


def _print_report(directory: str, report: CheckReport) -> None:
    console = Console(highlight=False)
    summary = Table(title=f"replog log check {directory}", show_header=False)
    summary.add_column("what", style="bold")
    summary.add_column("value", justify="right")
    empty = report.first_offset is None or report.next_offset == report.first_offset
    summary.add_row("segments", f"{report.segments:,}")
    summary.add_row("records", f"{report.records:,}")
    summary.add_row("store bytes", f"{report.store_bytes:,}")
    summary.add_row("index bytes", f"{report.index_bytes:,}")
    summary.add_row("first offset", "-" if empty else str(report.first_offset))
    last = None if empty or report.next_offset is None else report.next_offset - 1
    summary.add_row("last offset", "-" if last is None else str(last))
    status = f"[red]{len(report.problems)}[/red]" if report.problems else "[green]0[/green]"
    summary.add_row("problems", status)
    summary.add_row("notes", str(len(report.notes)))
    console.print(summary)
    for title, rows, style in (
        ("problems (corruption)", report.problems, "red"),
        ("notes (not corruption)", report.notes, "yellow"),
    ):
        if not rows:
            continue
        table = Table(title=title, title_style=style)
        for column in ("segment", "offset", "position", "what"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                str(row.segment),
                "-" if row.offset is None else str(row.offset),
                "-" if row.position is None else str(row.position),
                row.what,
            )
        console.print(table)
    verdict = "[red]CORRUPT[/red]" if report.problems else "[green]OK[/green]"
    console.print(f"{verdict}: {directory}")
