"""``--event-loop``: auto takes uvloop when it is installed, asyncio names asyncio's own,
uvloop without uvloop installed and an unknown name are refused with a clear error."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from replog.cli.serve import loop_factory
from replog.errors import ConfigError
from replog.server.settings import ServerSettings

INSTALLED = importlib.util.find_spec("uvloop") is not None


def test_asyncio_serves_on_asyncios_own_loop() -> None:
    assert loop_factory("asyncio") is None


def test_auto_takes_uvloop_only_when_it_is_installed() -> None:
    factory = loop_factory("auto")
    if not INSTALLED:
        assert factory is None
        return
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()


def test_uvloop_is_refused_when_it_is_not_installed() -> None:
    if INSTALLED:
        assert loop_factory("uvloop") is not None
        return
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        loop_factory("uvloop")


def test_an_unknown_event_loop_is_refused() -> None:
    with pytest.raises(ConfigError, match="event_loop must be auto, asyncio or uvloop"):
        ServerSettings(event_loop="trio")
