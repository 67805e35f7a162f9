"""tests/skip_policy.py in a real pytest subprocess: every run ends with what was skipped and
why; under CI=true a skip off the allow-list fails the run, an allowed one does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """
import pytest

def test_runs():
    pass

def test_needs_root():
    pytest.skip("mounting a tmpfs needs root")

@pytest.mark.skipif(True, reason="root ignores directory permissions; covered elsewhere")
def test_allowed():
    pass

@pytest.mark.xfail(reason="issue 11 defect 2: sample", strict=False)
def test_known_defect():
    assert False
"""


def run_sample(
    tmp_path: Path, ci: str | None, body: str = SAMPLE
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(body)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the policy: a fast, isolated run
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.skip_policy",
         "-p", "no:cacheprovider", str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_outside_ci_skips_pass_and_the_summary_lists_each_with_its_reason(tmp_path: Path) -> None:
    done = run_sample(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "skipped and expected failures, and why" in out
    assert "SKIPPED (1) mounting a tmpfs needs root [not allowed in CI]" in out
    assert "test_sample.py::test_needs_root" in out
    assert (
        "SKIPPED (1) root ignores directory permissions; covered elsewhere [allowed in CI:" in out
    )
    assert "XFAIL test_sample.py::test_known_defect: issue 11 defect 2: sample" in out


def test_under_ci_a_skip_off_the_allow_list_fails_the_run_and_says_why(tmp_path: Path) -> None:
    done = run_sample(tmp_path, "true")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "skipped under CI=true, where it must run: mounting a tmpfs needs root" in out
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in out  # the allowed skip stays one


def test_under_ci_allowed_skips_and_xfails_pass(tmp_path: Path) -> None:
    body = SAMPLE.replace("def test_needs_root():", "def _not_collected():")
    done = run_sample(tmp_path, "1", body)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[allowed in CI: CI runs as root" in done.stdout


def test_the_suite_loads_the_skip_policy() -> None:
    import tests.conftest as suite

    assert suite.pytest_runtest_makereport.__module__ == "tests.skip_policy"


def test_under_ci_a_module_skipped_at_collection_fails_the_run_too(tmp_path: Path) -> None:
    body = 'import pytest\npytest.skip("needs a tool", allow_module_level=True)\n'
    done = run_sample(tmp_path, "true", body)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "skipped under CI=true, where it must run: needs a tool" in done.stdout
    assert run_sample(tmp_path, None, body).returncode == 5  # outside CI: nothing ran, no failure


REQUIRED_SAMPLE = """
import pytest

def test_interop():
    pytest.skip("go is not installed; the Go interop test needs it")
"""


def test_a_skip_listed_as_required_in_ci_fails_there_saying_what_ci_installs(
    tmp_path: Path,
) -> None:
    done = run_sample(tmp_path, "true", REQUIRED_SAMPLE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "skipped under CI=true, where it must run: go is not installed" in done.stdout
    assert "listed in CI_REQUIRED_SKIPS" in done.stdout and "golang-go" in done.stdout


def test_outside_ci_a_required_skip_passes_and_is_summarised_as_not_allowed_in_ci(
    tmp_path: Path,
) -> None:
    done = run_sample(tmp_path, None, REQUIRED_SAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "go is not installed; the Go interop test needs it [not allowed in CI: .ci/run" in (
        done.stdout
    )


def test_no_skip_is_both_allowed_and_required_in_ci() -> None:
    from tests.skip_policy import CI_ALLOWED_SKIPS, CI_REQUIRED_SKIPS

    overlapping = [
        (allowed, required)
        for allowed in CI_ALLOWED_SKIPS
        for required in CI_REQUIRED_SKIPS
        if allowed.startswith(required) or required.startswith(allowed)
    ]
    assert not overlapping
