"""``replog kafka-user``: the SASL users of the Kafka port (``serve --kafka-sasl-users``).

Each user gets SCRAM-SHA-256 and SCRAM-SHA-512 credentials (salt, iterations, StoredKey,
ServerKey; never the password), which serve PLAIN too. The file is rewritten atomically,
mode 0600, never through a symbolic link; a running server reads it again on SIGHUP."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from replog.errors import ConfigError
from replog.security.scram import MECHANISMS, USER_NAME, derive, read_users, write_users

app = typer.Typer(no_args_is_help=True)

FileOpt = Annotated[
    Path,
    typer.Option(
        "--file",
        "-f",
        help="The users file (serve --kafka-sasl-users).",
        envvar="REPLOG_KAFKA_SASL_USERS",
        show_envvar=True,
    ),
]


def _password() -> str:
    """The password: stdin's first line when it is not a terminal, else asked twice."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
    else:
        line = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not line:
        raise ConfigError("the password is empty")
    return line


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user name (also its ACL identity).")],
    file: FileOpt,
    iterations: Annotated[
        int, typer.Option("--iterations", help="PBKDF2 iterations (Kafka: at least 4096).")
    ] = 4096,
) -> None:
    """Add user NAME, or give it a new password (read from stdin, or asked twice)."""
    if not USER_NAME.fullmatch(name):
        raise ConfigError("a user name is 1-255 of A-Z a-z 0-9 . _ @ -")
    if not 4096 <= iterations <= 1_000_000:
        raise ConfigError("--iterations must be between 4096 and 1000000")
    users = read_users(file) if file.exists() or file.is_symlink() else {}
    password = _password()
    users[name] = {m: derive(m, password, iterations=iterations) for m in MECHANISMS}
    write_users(file, users)
    print(f"{name}: SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN in {file}", file=sys.stderr)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The user name.")],
    file: FileOpt,
) -> None:
    """Remove user NAME (an unknown name is an error and changes nothing)."""
    users = read_users(file)
    if name not in users:
        raise ConfigError(f"no user {name!r} in {file}")
    del users[name]
    write_users(file, users)


@app.command("list")
def list_users(file: FileOpt) -> None:
    """Print each user and its mechanisms."""
    for name, credentials in sorted(read_users(file).items()):
        print(name, " ".join(sorted(credentials)))
