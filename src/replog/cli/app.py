"""The ``replog`` command line: one typer app, with a sub-app per area."""

from __future__ import annotations

import sys

import typer

from replog.errors import ReplogError

app = typer.Typer(
    name="replog",
    help="replog: a distributed commit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    """Run the CLI; a replog error is printed as one line and exits with status 1."""
    _register()
    try:
        app()
    except ReplogError as exc:
        print(f"replog: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


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
    from replog.cli import cluster

    app.add_typer(cluster.app, name="cluster", help="Inspect and change a replicated cluster.")
    from replog.cli import topics, verify

    verify.register(app)

    app.add_typer(topics.app, name="topic", help="Create, list, describe and change topics.")
