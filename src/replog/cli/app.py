"""The ``replog`` command line: one typer app, with a sub-app per area."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Annotated

import typer

from replog.errors import ReplogError

app = typer.Typer(
    name="replog",
    help="replog: a distributed commit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from replog import __version__

        print(f"replog {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version."
        ),
    ] = False,
) -> None:
    """replog: a distributed commit log."""


def main() -> None:
    """Run the CLI; a replog error is printed as one line and exits with status 1."""
    _quiet_grpc_core(os.environ)
    _register()
    try:
        app()
    except ReplogError as exc:
        print(f"replog: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _quiet_grpc_core(env: MutableMapping[str, str]) -> None:
    """Keep gRPC's C core to errors (its INFO lines report every failed TLS handshake, one
    per probe or misdirected client) unless the user chose a verbosity. gRPC reads this
    when it is imported: nothing above this call imports it (``replog`` loads its clients
    lazily)."""
    env.setdefault("GRPC_VERBOSITY", "ERROR")


def _register() -> None:
    """Attach the sub-commands (each lives in its own module)."""
    from replog.cli import client_commands, serve

    serve.register(app)
    client_commands.register(app)
    from replog.cli import log_tools

    app.add_typer(log_tools.app, name="log", help="Inspect and verify a log directory.")
    from replog.cli import certs

    app.add_typer(certs.app, name="certs", help="Make development TLS certificates.")
    from replog.cli import keys

    app.add_typer(keys.app, name="keys", help="Make the key that signs log checkpoints.")
    from replog.cli import kafka_users

    app.add_typer(kafka_users.app, name="kafka-user", help="The Kafka port's SASL users.")
    from replog.cli import cluster

    app.add_typer(cluster.app, name="cluster", help="Inspect and change a replicated cluster.")
    from replog.cli import topics, verify

    verify.register(app)

    app.add_typer(topics.app, name="topic", help="Create, list, describe and change topics.")
    from replog.cli import groups

    app.add_typer(groups.app, name="group", help="List, describe, reset and delete groups.")
