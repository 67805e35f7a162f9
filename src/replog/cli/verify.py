"""``replog verify``: check a stopped server's verifiable log offline, against its verifier key.

Every partition under ``--data-dir`` (``topics/<topic>/<partition>``, or ``--data-dir``
itself when it is one partition's directory) is verified by ``tlog.offline``: every record
re-hashed, its leaf and upper tiles compared, every kept checkpoint's signature, origin and
root checked. Exit 0 only when everything verifies; else the first bad partition and offset
are printed and the exit status is 1.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeRemainingColumn

from replog.errors import ReplogError, VerificationError
from replog.storage.inspect import list_segments
from replog.tlog.log_tree import TLOG_DIR
from replog.tlog.note import Verifier
from replog.tlog.offline import verify_partition

__all__ = ["register", "verify_command"]


def _partitions(data_dir: Path) -> list[tuple[str, Path]]:
    """``(topic/partition, directory)`` of every partition with a tree under ``data_dir``."""
    if (data_dir / TLOG_DIR).is_dir():
        return [(data_dir.name, data_dir)]
    topics = data_dir / "topics"
    found: list[tuple[str, Path]] = []
    if topics.is_dir():
        for topic in sorted(p for p in topics.iterdir() if p.is_dir()):
            for part in sorted((p for p in topic.iterdir() if p.name.isdigit()), key=_number):
                if (part / TLOG_DIR).is_dir():
                    found.append((f"{topic.name}/{part.name}", part))
    return found


def _advance(progress: Progress, task: TaskID, done: int) -> None:
    progress.update(task, completed=done)


def _number(path: Path) -> int:
    return int(path.name)


def _records(directory: Path) -> int:
    log_dir = directory / "log" if (directory / "log").is_dir() else directory
    segments = list_segments(str(log_dir))
    return max(0, segments[-1].base - segments[0].base) if segments else 0


def verify_command(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The server's data directory.")],
    key: Annotated[
        Path, typer.Option("--key", help="The verifier key file (signing.pub) to check with.")
    ],
) -> None:
    """Verify the verifiable log under --data-dir offline (stop the server first)."""
    console = Console(stderr=True)
    try:
        verifier = Verifier.parse(key.read_text())
    except (OSError, ReplogError) as exc:
        console.print(f"replog: error: cannot use the verifier key {key}: {exc}")
        raise typer.Exit(2) from None
    partitions = _partitions(data_dir)
    if not partitions:
        console.print(f"replog: error: no partition with a verifiable log under {data_dir}")
        raise typer.Exit(2)
    with Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        for name, directory in partitions:
            task = progress.add_task(name, total=_records(directory) or None)
            suffix = None if name == directory.name else "/" + name
            try:
                report = verify_partition(
                    directory,
                    verifier,
                    suffix=suffix,
                    on_progress=functools.partial(_advance, progress, task),
                )
            except VerificationError as exc:
                progress.stop()
                at = "" if exc.offset is None else f" at offset {exc.offset}"
                console.print(f"FAIL {name}{at}: {exc}")
                raise typer.Exit(1) from None
            progress.update(task, completed=report.records, total=report.records)
            console.print(
                f"ok {name}: {report.records} records, tree size {report.size}, "
                f"{report.checkpoints} checkpoints"
            )


def register(app: typer.Typer) -> None:
    """Add ``verify`` to the app."""
    app.command("verify")(verify_command)
