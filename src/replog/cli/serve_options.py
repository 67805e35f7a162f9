"""The flags of ``replog serve``: one per server setting, each showing its default and its
``REPLOG_*`` variable, and error messages that name flags, not setting names."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from typing import Any

import typer

from replog.server.settings import ServerSettings

__all__ = ["env_name", "flag_name", "name_flags", "setting_option"]

# Settings checked under another name by a lower layer (LogConfig calls segments "stores").
_ALIASES = {"max_store_bytes": "segment_bytes"}
_DEFAULTS = {f.name: f.default for f in fields(ServerSettings) if f.default is not MISSING}
_SHOWN = {
    "server_id": "the gRPC address",
    "ready_file": "none",
    "join": "none",
    "http_advertised_addr": "the bound address",
    "kafka_addr": "off",
    "kafka_advertised_addr": "the bound address",
}


def flag_name(setting: str) -> str:
    """The ``replog serve`` flag of a setting: ``raft_tick_ms`` -> ``--raft-tick-ms``."""
    return "--" + setting.replace("_", "-")


def env_name(setting: str) -> str:
    """The environment variable of a setting: ``raft_tick_ms`` -> ``REPLOG_RAFT_TICK_MS``."""
    return f"REPLOG_{setting.upper()}"


def _shown_default(setting: str) -> str:
    if setting in _SHOWN:
        return _SHOWN[setting]
    value = _DEFAULTS[setting]
    if isinstance(value, bool):
        return "on" if value else "off"
    if value == "":
        return "none"
    return str(value)


def setting_option(setting: str, text: str, *decls: str) -> Any:
    """A typer option for ``setting`` (None when not given, so that the environment and the
    TOML file still apply) whose help shows the setting's default and variable."""
    return typer.Option(
        *decls,
        help=text,
        envvar=env_name(setting),
        show_envvar=True,
        show_default=_shown_default(setting),
    )


def name_flags(message: str) -> str:
    """``message`` with every setting name it mentions replaced by its flag."""
    names = sorted({*_DEFAULTS, *_ALIASES}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w-])(" + "|".join(names) + r")(?![\w-])")
    return pattern.sub(lambda m: flag_name(_ALIASES.get(m.group(1), m.group(1))), message)
