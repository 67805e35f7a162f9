"""``replog verify``: audit a verifiable log against its verifier key.

- ``--topic T --partition P`` (``replog.cli.verify_online``): a running server's partition,
  every record read with the client's ``verify=True`` (proven in a checkpoint signed by the
  key; each newer checkpoint consistent with the one trusted before, kept in ``--state``).
- ``--data-dir DIR``: a stopped server's data directory offline. Every partition under it
  (``topics/<topic>/<partition>``, on a cluster node also its own log, topic ``default``'s
  partition 0; or DIR itself when it is one partition's directory) is
  verified by ``tlog.offline``: every record re-hashed, its leaf and upper tiles compared,
  every kept checkpoint's signature, origin and root checked.

Exit 0 only when everything verifies; else ``FAIL <topic>/<partition> at offset N: ...``
and exit status 1 (2 for an unusable key or nothing to verify).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeRemainingColumn

from replog.broker.names import DEFAULT_TOPIC
from replog.cli.client_commands import _DEFAULT_SERVER, CaOpt, CertOpt, ServerOpt
from replog.cli.verify_online import audit_partition
from replog.client import Client
from replog.cluster.members import CLUSTER_ID_FILE
from replog.errors import ReplogError, VerificationError
from replog.storage.inspect import list_segments
from replog.tlog.log_tree import TLOG_DIR
from replog.tlog.note import Verifier
from replog.tlog.offline import verify_partition

__all__ = ["register", "verify_command"]


def _partitions(data_dir: Path) -> list[tuple[str, Path]]:
    """``(topic/partition, directory)`` of every partition with a tree under ``data_dir``: a
    single node's ``topics/<t>/<p>``; a cluster node's own log (topic ``default``'s partition
    0, with the metadata entries) and its replicas' ``topics/<t>/<p>``; or ``data_dir``
    itself when it is one partition's directory."""
    topics = data_dir / "topics"
    found: list[tuple[str, Path]] = []
    if (data_dir / TLOG_DIR).is_dir():
        if not (topics.is_dir() or (data_dir / CLUSTER_ID_FILE).exists()):
            return [(data_dir.name, data_dir)]
        found.append((f"{DEFAULT_TOPIC}/0", data_dir))
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


def verify_command(  # noqa: PLR0917  (typer options)
    key: Annotated[
        Path, typer.Option("--key", help="The verifier key file (signing.pub) to check with.")
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Audit this stopped server's data directory offline (every partition).",
            show_default="none: audit a running server's --topic/--partition",
        ),
    ] = None,
    topic: Annotated[
        str,
        typer.Option("--topic", "-t", help="The topic to audit.", show_default="the default topic"),
    ] = "",
    partition: Annotated[
        int, typer.Option("--partition", "-p", min=0, help="The partition to audit.")
    ] = 0,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="The checkpoint this auditor trusts, kept between runs (a rollback or fork "
            "since the last run fails).",
            show_default="none: trust the first checkpoint",
        ),
    ] = None,
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    cert_key: Annotated[
        Path | None,
        typer.Option(
            "--cert-key",
            envvar="REPLOG_KEY",
            help="The client certificate's key.",
            show_default="none",
        ),
    ] = None,
) -> None:
    """Verify a verifiable log: a running server's partition (--topic, --partition) or,
    with --data-dir, a stopped server's data directory offline."""
    console = Console(stderr=True)
    try:
        text = key.read_text()
        verifier = Verifier.parse(text)
    except (OSError, ReplogError) as exc:
        console.print(f"replog: error: cannot use the verifier key {key}: {exc}")
        raise typer.Exit(2) from None
    if data_dir is None:
        _verify_server(
            console,
            Client(server, ca=ca, cert=cert, key=cert_key, verify_key=text, verify_state=state),
            topic,
            partition,
        )
        return
    _verify_offline(console, data_dir, verifier)


def _verify_offline(console: Console, data_dir: Path, verifier: Verifier) -> None:
    """Audit every partition with a verifiable log under ``data_dir``."""
    partitions = _partitions(data_dir)
    if not partitions:
        console.print(f"replog: error: no partition with a verifiable log under {data_dir}")
        raise typer.Exit(2)
    with _progress(console) as progress:
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
                _fail(console, name, exc)
            progress.update(task, completed=report.records, total=report.records)
            console.print(
                f"ok {name}: {report.records} records, tree size {report.size}, "
                f"{report.checkpoints} checkpoints"
            )


def _progress(console: Console) -> Progress:
    return Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _fail(console: Console, name: str, exc: VerificationError) -> NoReturn:
    at = "" if exc.offset is None else f" at offset {exc.offset}"
    console.print(f"FAIL {name}{at}: {exc}")
    raise typer.Exit(1) from None


def _verify_server(console: Console, client: Client, topic: str, partition: int) -> None:
    """Audit ``topic`` ``partition`` of the server ``client`` talks to."""
    name = f"{topic or DEFAULT_TOPIC}/{partition}"
    with client, _progress(console) as progress:
        task = progress.add_task(name, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            report = audit_partition(client, topic, partition, advance)
        except VerificationError as exc:
            progress.stop()
            _fail(console, name, exc)
        except ReplogError as exc:
            progress.stop()
            console.print(f"replog: error: {exc}")
            raise typer.Exit(1) from None
    gone = f" (offsets below {report.lowest} deleted by retention)" if report.lowest else ""
    span = f"offsets {report.lowest}..{report.end - 1}" if report.end > report.lowest else "empty"
    console.print(f"ok {name}: {report.records} records verified, {span}{gone}")


def register(app: typer.Typer) -> None:
    """Add ``verify`` to the app."""
    app.command("verify")(verify_command)
