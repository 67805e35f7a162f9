"""``replog keys``: the Ed25519 key that signs checkpoints of the verifiable log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from replog.tlog.keyfile import write_key_files

app = typer.Typer(no_args_is_help=True)


@app.command("init")
def init(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the key files to.")],
    name: Annotated[
        str,
        typer.Option("--name", help="The key's name in signatures (no spaces or '+')."),
    ] = "replog",
    force: Annotated[bool, typer.Option("--force", help="Replace a key already in --out.")] = False,
) -> None:
    """Make a checkpoint signing key: ``signing.key`` (mode 0600; give it to every node with
    ``replog serve --signing-key``) and ``signing.pub``, the verifier key readers pin,
    printed on stdout.

    Refuses when either file exists, unless --force; never writes through a symlink.
    """
    files = write_key_files(out, name, force=force)
    console = Console(stderr=True)
    console.print(f"wrote {files.private} (secret: keep it 0600) and {files.public}")
    print(files.verifier.encode())
