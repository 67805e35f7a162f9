"""``replog certs``: development certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from replog.security.certs import NODE_SUBJECT, write_dev_pki

app = typer.Typer(no_args_is_help=True)


@app.command("init")
def init(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the files to.")],
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Extra DNS name or IP for the node certificate (repeat)."),
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", help="Write a client certificate for this user (repeat)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace files already there (the CA, keys) in --out."),
    ] = False,
) -> None:
    """Write a development CA, a node certificate and client certificates (keys mode 0600).

    Refuses (before writing anything) when any of the files exists, unless --force; never
    writes through a symlink.
    """
    paths = write_dev_pki(out, hosts=host or [], users=user or [], force=force)
    console = Console(stderr=True)
    for path in paths:
        console.print(f"wrote {path}")
    console.print(
        f"node certificate subject: [bold]{NODE_SUBJECT}[/] (grant it 'replicate' in the ACL); "
        "these are for development — see docs/operations.md for production."
    )
