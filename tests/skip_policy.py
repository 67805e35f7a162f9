"""What a skipped test means, said at the end of every run, and enforced in CI.

Some tests need root or a tool (a tmpfs mount for the disk-full fault tests). CI runs as root
with what .ci/run installs, so there such a test must run: under ``CI=true`` a skip whose
reason does not start with an entry of :data:`CI_ALLOWED_SKIPS` fails the run instead of
passing silently; :data:`CI_REQUIRED_SKIPS` names the known skips that are *not* allowed
there, with what CI does so they run. Every run ends with a section listing each skipped
(and xfailed) test with its reason. Loaded by tests/conftest.py; ``-p tests.skip_policy``
loads it elsewhere.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Generator

import pluggy
import pytest

__all__ = [
    "CI_ALLOWED_SKIPS",
    "CI_REQUIRED_SKIPS",
    "in_ci",
    "pytest_make_collect_report",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]

CI_ALLOWED_SKIPS: dict[str, str] = {
    "root ignores directory permissions": "CI runs as root; the simulated variant covers it",
}
"""Skip reasons (prefixes) that are expected in CI, each with why it is fine there."""

CI_REQUIRED_SKIPS: dict[str, str] = {
    "go is not installed": (
        ".ci/run installs golang-go and golang-golang-x-mod-dev, so the Go sumdb interop "
        "test of the verifiable log (tests/interop) runs"
    ),
    "browser tests need playwright": "the dev extra installs playwright (tests/browser)",
    "browser tests need /usr/bin/chromium": (
        ".ci/run installs Debian's chromium, which the console's browser tests drive"
    ),
}
"""Skip reasons (prefixes) the suite knows but that are NOT allowed in CI, each with what CI
installs so the test runs; under ``CI=true`` such a skip fails the run like any unlisted one."""


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to true, 1 or yes, as CI services and .ci/run do)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _allowed(reason: str) -> str | None:
    if _required(reason) is not None:
        return None
    return next(
        (why for prefix, why in CI_ALLOWED_SKIPS.items() if reason.startswith(prefix)), None
    )


def _required(reason: str) -> str | None:
    return next(
        (why for prefix, why in CI_REQUIRED_SKIPS.items() if reason.startswith(prefix)), None
    )


def _enforce(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    reason = _reason(report)
    if _allowed(reason) is None:
        required = _required(reason)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where it must run: {reason}\n" + (
            f"(listed in CI_REQUIRED_SKIPS of tests/skip_policy.py: {required})"
            if required
            else "(CI runs as root with what .ci/run installs; if this skip is expected there, "
            "add its reason to CI_ALLOWED_SKIPS in tests/skip_policy.py, saying why)"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    """Under CI, turn a skip that is not on the allow-list into a failure saying why."""
    outcome = yield
    _enforce(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pluggy.Result[pytest.CollectReport], None]:
    """The same for a whole module skipped at collection."""
    outcome = yield
    _enforce(outcome.get_result())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List every skipped and xfailed test with its reason, grouped by reason."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if r.skipped]
    xfailed = terminalreporter.stats.get("xfailed", [])
    if not skipped and not xfailed:
        return
    terminalreporter.section("skipped and expected failures, and why")
    by_reason: dict[str, list[str]] = defaultdict(list)
    for report in skipped:
        by_reason[_reason(report)].append(report.nodeid)
    for reason, ids in sorted(by_reason.items()):
        allowed, required = _allowed(reason), _required(reason)
        if allowed:
            note = f" [allowed in CI: {allowed}]"
        else:
            note = f" [not allowed in CI: {required}]" if required else " [not allowed in CI]"
        terminalreporter.write_line(f"SKIPPED ({len(ids)}) {reason}{note}")
        for nodeid in ids:
            terminalreporter.write_line(f"    {nodeid}")
    for report in xfailed:
        terminalreporter.write_line(f"XFAIL {report.nodeid}: {getattr(report, 'wasxfail', '')}")
