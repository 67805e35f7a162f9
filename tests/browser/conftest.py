"""A real Chromium (Playwright) for the console's tests: one browser per test module.

The tests skip only when Playwright or Debian's Chromium is missing, with a reason starting
``browser tests need`` (CI installs both, and lists that reason as a skip it must not see).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
#: Without these, Chromium waits on a network the test machine does not have.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: How often the pages under test refresh (the console's default is 2 s).
POLL_MS = 250


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "browser tests need playwright (the dev extra)"
    if not Path(CHROMIUM).exists():
        return f"browser tests need {CHROMIUM} (apt-get install chromium)"
    return None


def launch() -> tuple[Any, Browser]:
    """Playwright and a headless Chromium; stop both with ``close``."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except BaseException:
        playwright.stop()
        raise
    return playwright, browser


def close(playwright: Any, browser: Browser) -> None:
    """Close the browser (its processes) and stop Playwright's driver."""
    try:
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    playwright, running = launch()
    yield running
    close(playwright, running)
