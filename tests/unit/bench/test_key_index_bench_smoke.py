"""The key index benchmark harness still runs: tiny sizes, one run, only its own section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "bench" / "bench_key_index.py"


def test_a_tiny_key_index_benchmark_writes_only_its_own_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = ["--keys", "20000", "--log-records", "2000", "--runs", "1", "--out", str(out)]
    subprocess.run(
        [sys.executable, str(BENCH), *args], check=True, env=env, timeout=120, capture_output=True
    )
    text = out.read_text()
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    assert text.count("<!-- key-index:begin -->") == 1
    assert "index bytes per key" in text
    assert "| records/s |" in text
