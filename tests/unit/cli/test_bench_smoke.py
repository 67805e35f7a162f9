"""The storage benchmark harness still runs (`--quick`: tiny sizes, one run, temp output)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_storage.py"


def test_quick_benchmark_writes_a_storage_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n")
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path / "b"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    assert text.count("<!-- storage:begin -->") == 1
    assert text.count("<!-- storage:end -->") == 1
    for fragment in ("### Machine", "records/s", "random `read` p99", "peak RSS", "pass"):
        assert fragment in text
    assert not (tmp_path / "b").exists()  # the bench directory is cleaned up

    # A second run replaces the section instead of adding another one.
    again = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path / "b"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert out.read_text().count("<!-- storage:begin -->") == 1
