"""The peer benchmark harness still runs: `--quick` with replog and whichever peers are
installed (it never installs them), writing only its own section, charts when matplotlib is
there, and leaving no server process behind.

One row of each kind is enough to prove the harness works (a single node, a 3-node cluster,
a Redis and a NATS row): the `sync=never` rows and the other peer rows differ from those only
in a flag, so the smoke run leaves them out. How fast anything is, is not what it checks."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench" / "bench_peers.py"
CHARTS = ("peers_produce.png", "peers_latency.png", "peers_consume.png")
SYSTEMS = "replog-always,redis-always,nats-r1,replog3-always"


def _installed(binary: str, *modules: str) -> bool:
    return shutil.which(binary) is not None and all(
        importlib.util.find_spec(m) is not None for m in modules
    )


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_quick_peer_benchmark_writes_its_section_and_charts(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--systems", SYSTEMS, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    text = out.read_text()
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    assert text.count("<!-- peers:begin -->") == 1
    assert text.count("<!-- peers:end -->") == 1
    for fragment in (
        "### Machine and its limits",
        "fdatasync/s",
        "loopback TCP round trip",
        "### Versions",
        "### Produce throughput, best client mode",
        "### Produce one at a time",
        "### Consume throughput, best client mode",
        "--quick: small counts",
    ):
        assert fragment in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("|")}
    assert "not measured" not in rows["replog sync=always"]

    # a peer that is installed is measured; one that is not is named as not measured
    peers = {
        "Redis AOF appendfsync always": _installed("redis-server", "redis"),
        "NATS JetStream R1 (file)": _installed("nats-server", "nats"),
    }
    produce = text.split("### Produce throughput")[1].split("###")[0]
    for label, present in peers.items():
        line = next(row for row in produce.splitlines() if row.startswith(f"| {label} |"))
        assert ("not measured" in line) != present, line

    if importlib.util.find_spec("matplotlib") is not None:
        for name in CHARTS:
            png = tmp_path / "img" / name
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"](img/{name})" in text
    else:
        assert "![" not in text

    pids = [
        int(line.rsplit("(pid ", 1)[1].rstrip(")"))
        for line in proc.stdout.splitlines()
        if "started " in line and "(pid " in line
    ]
    assert len(pids) >= 3  # replog single node, replog cluster, the echo server at least
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []  # stopped by PID
    assert _processes_mentioning(str(scratch)) == []
    assert list(scratch.iterdir()) == []  # and its temporary directories removed
