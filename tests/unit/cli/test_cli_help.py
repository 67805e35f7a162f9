"""The CLI says what it does by default: every serve setting has a flag, every option shows
its default (and serve's its ``REPLOG_*`` variable), errors name flags, and --version."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from replog import __version__
from replog.cli.app import _register, app
from replog.server.settings import ServerSettings


@functools.cache
def root() -> Any:
    _register()
    return typer.main.get_command(app)


def commands(cmd: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    cmd = root() if cmd is None else cmd
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def serve_options() -> dict[str, Any]:
    serve = dict(commands())["serve"]
    return {p.name: p for p in serve.params if p.param_type_name == "option"}


def replog(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from replog.cli.app import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.mark.parametrize("setting", [f.name for f in fields(ServerSettings)])
def test_every_serve_setting_has_a_flag_with_its_default_and_variable(setting: str) -> None:
    option = serve_options().get(setting)
    assert option is not None, f"replog serve has no flag for the setting {setting}"
    assert f"--{setting.replace('_', '-')}" in option.opts
    assert option.envvar == f"REPLOG_{setting.upper()}" and option.show_envvar
    assert isinstance(option.show_default, str) and option.show_default


def test_serve_help_shows_the_new_flags_their_defaults_and_variables() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for flag, env, default in (
        ("--raft-tick-ms", "REPLOG_RAFT_TICK_MS", "100"),
        ("--election-ticks", "REPLOG_ELECTION_TICKS", "10"),
        ("--http-max-body-bytes", "REPLOG_HTTP_MAX_BODY_BYTES", "16777216"),
        ("--shutdown-grace-s", "REPLOG_SHUTDOWN_GRACE_S", "10.0"),
    ):
        line = next(x for x in result.output.splitlines() if flag in x)
        assert env in line and default in line, line


def test_every_optional_option_of_every_command_says_what_it_defaults_to() -> None:
    for name, cmd in commands():
        for p in cmd.params:
            if p.name == "help" or p.required or getattr(p, "multiple", False):
                continue
            if getattr(p, "is_flag", False) or p.default not in (None, ""):
                continue  # a flag is off unless given; other defaults typer shows itself
            assert isinstance(p.show_default, str), f"replog {name} {p.opts}: no default shown"


def test_no_help_text_holds_a_bracketed_default_the_renderer_would_swallow() -> None:
    for name, cmd in commands():
        for p in cmd.params:
            assert "[default" not in (getattr(p, "help", None) or ""), f"replog {name} {p.opts}"


def test_a_bad_setting_is_reported_by_its_flag(tmp_path: Path) -> None:
    for args, flag in (
        (("--http-max-body-bytes", "5"), "--http-max-body-bytes"),
        (("--segment-bytes", "5"), "--segment-bytes"),
        (("--election-ticks", "1"), "--election-ticks"),
    ):
        result = replog("serve", "--data-dir", str(tmp_path / "data"), *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert flag in lines[0] and "_" not in lines[0].split(":")[2], lines[0]


def test_replog_version_prints_the_package_version() -> None:
    result = replog("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"replog {__version__}"
