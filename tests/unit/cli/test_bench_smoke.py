"""The storage benchmark harness still runs (`--quick`: tiny sizes, one run, temp output).

It runs once: a second run would only call the same ``write_section`` again, which the test
calls directly instead (a run is some twenty worker processes, ~8 s)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_storage.py"


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_storage", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


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

    # Writing the section again (what a second run does) replaces it instead of adding one.
    _bench_module().write_section(out, "<!-- storage:begin -->\nagain\n<!-- storage:end -->")
    again = out.read_text()
    assert again.count("<!-- storage:begin -->") == 1
    assert "<!-- storage:begin -->\nagain\n<!-- storage:end -->" in again
    assert "### Machine" not in again
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in again
