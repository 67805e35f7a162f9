"""The Kafka edge benchmark harness still runs end to end: a tiny run against a real
``replog serve`` prints every figure and writes only its own section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "bench" / "bench_kafka.py"


def test_a_tiny_kafka_benchmark_measures_every_figure_and_writes_its_section(
    tmp_path: Path,
) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = ["--records", "300", "--latency-records", "20", "--runs", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        check=False,
        env=env,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    assert text.count("<!-- kafka:begin -->") == 1
    for figure in ("confluent-kafka producer, 6 partitions", "consumer", "p50", "gRPC"):
        assert figure in text
