"""The `make run` demo of the embedded log."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog import Log
from replog.demo import main


def test_demo_appends_reads_and_survives_a_reopen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "data"
    assert main([str(directory)]) == 0
    out = capsys.readouterr().out
    assert "offsets [0, 1, 2, 3, 4]" in out
    assert "all there" in out
    assert main([str(directory)]) == 0  # a second run continues the log
    assert "offsets [5, 6, 7, 8, 9]" in capsys.readouterr().out
    with Log(directory) as log:
        assert log.next_offset == 10
        assert log.read(1).key == b"user-42"


def test_demo_reports_a_locked_directory_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Log(tmp_path / "data"):
        assert main([str(tmp_path / "data")]) == 1
    assert "already open" in capsys.readouterr().err
