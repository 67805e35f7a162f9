"""``replog produce`` against a real server: it reports what was and was not acknowledged,
keeps stdin's order, and shows a progress line only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import PIPE, Popen

import typer
from typer.testing import CliRunner, Result

from replog.cli import client_commands, topics
from replog.client import Client
from tests.integration.conftest import ServerProcess, ThreadedServer, wait_until

MAX_RECORD_BYTES = 1000
CLI = [sys.executable, "-c", "from replog.cli.app import main; main()"]


def _app() -> typer.Typer:
    app = typer.Typer()
    client_commands.register(app)
    app.add_typer(topics.app, name="topic")
    return app


def _produce(server: ThreadedServer, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(_app(), ["produce", "-s", server.grpc_address, *args], input=stdin)


def _records(address: str, topic: str = "", partition: int = 0) -> list[tuple[int, bytes]]:
    """Every (offset, value) of a partition, in log order."""
    found: list[tuple[int, bytes]] = []
    with Client(address) as client:
        while True:
            start = found[-1][0] + 1 if found else 0
            batch = client.consume_batch(start, max_records=5000, topic=topic, partition=partition)
            if not batch.records:
                return found
            found += [(r.offset, r.value) for r in batch.records]


def _count(address: str) -> int:
    with Client(address) as client:
        return int(client.consume_batch(0, max_records=1).high_watermark)


def test_produce_exits_non_zero_and_counts_the_lines_the_server_refused(server_factory) -> None:
    # Issue 13: it looked at the first and last futures only, and printed
    # "produced 3000 records (offsets 0..2997)" with exit status 0.
    server = server_factory(max_record_bytes=MAX_RECORD_BYTES)
    oversized = "x" * (2 * MAX_RECORD_BYTES)
    lines = [oversized if i in (1000, 2000) else str(i) for i in range(3000)]
    result = _produce(server, stdin="\n".join(lines) + "\n")
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output, result.stderr
    assert result.stderr.startswith("replog: error: 2 of 3000 records were not acknowledged")
    assert "(first: line 1001, record of" in result.stderr and "over the limit" in result.stderr
    assert result.stderr.endswith("; 2998 were, offsets 0..2997\n"), result.stderr
    good = [line.encode() for line in lines if line != oversized]
    assert [value for _, value in _records(server.grpc_address)] == good


def test_produce_of_values_prints_the_acknowledged_offsets_and_counts_the_refused(
    server_factory,
) -> None:
    server = server_factory(max_record_bytes=MAX_RECORD_BYTES)
    result = _produce(server, "small", "x" * (2 * MAX_RECORD_BYTES), "also small")
    assert result.exit_code == 1, result.output
    assert result.stdout.split() == ["0", "1"]
    assert result.stderr.startswith("replog: error: 1 of 3 records were not acknowledged")
    assert "(first: value 2, " in result.stderr
    assert result.stderr.endswith("; 2 were, offsets 0..1\n"), result.stderr


def test_produce_summary_names_the_partition_when_one_is_given(server: ThreadedServer) -> None:
    assert (
        CliRunner()
        .invoke(
            _app(), ["topic", "create", "events", "--partitions", "3", "-s", server.grpc_address]
        )
        .exit_code
        == 0
    )
    result = _produce(server, "-t", "events", "--partition", "2", stdin="a\nb\nc\n")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "produced 3 records (offsets 0..2 of partition 2)\n"
    assert _produce(server, "-q", stdin="a\n").stderr == ""
    assert _produce(server, stdin="").stderr == "no records produced\n"


def test_a_line_that_cannot_be_sent_stops_the_input_and_is_counted(server: ThreadedServer) -> None:
    # A keyed record makes send() ask for the topic's partition count: it raises at once.
    result = _produce(server, "-t", "ghost", "--record-key", "k", stdin="a\nb\n")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "replog: error: 1 of 1 records were not acknowledged (first: line 1, topic 'ghost' "
        "does not exist); none was; input not read past line 1\n"
    )


def test_seq_piped_into_produce_keeps_line_order_and_prints_one_clean_line(
    server: ThreadedServer,
) -> None:
    lines = b"".join(b"%d\n" % i for i in range(1, 20_001))
    done = subprocess.run(
        [*CLI, "produce", "-s", server.grpc_address],
        input=lines,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # stderr is not a terminal: the summary only, no progress line or escape codes.
    assert (done.stdout, done.stderr) == (b"", b"produced 20000 records (offsets 0..19999)\n")
    records = _records(server.grpc_address)
    assert [value for _, value in records] == [b"%d" % i for i in range(1, 20_001)]
    offsets = [offset for offset, _ in records]
    assert all(a < b for a, b in itertools.pairwise(offsets))


@contextlib.contextmanager
def _producing(address: str, lines: range, stderr: int = subprocess.PIPE) -> Iterator[Popen[bytes]]:
    """``replog produce`` as a process, sent ``lines`` (numbers, one a line) on a stdin left
    open; killed by PID at the end if it still runs."""
    cmd = [*CLI, "produce", "-s", address]
    with subprocess.Popen(cmd, stdin=PIPE, stdout=PIPE, stderr=stderr) as cli:
        try:
            assert cli.stdin is not None
            cli.stdin.write(b"".join(b"%d\n" % i for i in lines))
            cli.stdin.flush()
            yield cli
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait(10)


def test_produce_exits_non_zero_when_the_server_is_killed_mid_run(
    tmp_path: Path, process_factory: Callable[..., ServerProcess]
) -> None:
    server = process_factory(tmp_path / "data")
    with _producing(server.grpc_address, range(1, 1001)) as cli:
        wait_until(lambda: _count(server.grpc_address) == 1000, 30, "the first 1000 lines")
        server.kill()  # SIGKILL, by PID
        rest = b"".join(b"%d\n" % i for i in range(1001, 2001))
        stdout, stderr = cli.communicate(rest, timeout=120)
    text = stderr.decode()
    assert cli.returncode == 1, text
    assert stdout == b"" and text.count("\n") == 1 and "Traceback" not in text, text
    found = re.match(r"replog: error: (\d+) of (\d+) records were not acknowledged", text)
    assert found, text
    failed, told = int(found[1]), int(found[2])
    assert failed == told - 1000 and 1000 < told <= 2000, text
    assert "(first: line 1001, " in text and "; 1000 were, offsets 0..999" in text, text


def _read_terminal(master: int, seen: bytearray) -> bool:
    """Append what the terminal shows now to ``seen``; False once the writer is gone."""
    ready, _, _ = select.select([master], [], [], 0.05)
    if not ready:
        return True
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: every writer closed the terminal
        return False
    seen += chunk
    return bool(chunk)


def _terminal_session(address: str, until: bytes, columns: int = 0) -> str:
    """What a terminal of ``columns`` (0: one that does not say) shows on stderr while
    ``replog produce`` is piped 100 lines, stdin left open until the screen shows ``until``."""
    master, terminal = pty.openpty()
    if columns:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    seen = bytearray()
    try:
        with _producing(address, range(100), stderr=terminal) as cli:
            os.close(terminal)
            # stdin stays open: the line is redrawn while the producer waits for more input.
            wait_until(lambda: _read_terminal(master, seen) and until in seen, 30, repr(until))
            assert cli.stdin is not None and cli.stdout is not None
            cli.stdin.close()
            assert cli.wait(60) == 0
            deadline = time.monotonic() + 10
            while _read_terminal(master, seen) and time.monotonic() < deadline:
                pass
            assert cli.stdout.read() == b""
    finally:
        os.close(master)
    return seen.decode()


def test_a_terminal_sees_a_live_progress_line_on_piped_input_erased_at_the_end(
    server: ThreadedServer,
) -> None:
    text = _terminal_session(server.grpc_address, b"100 acknowledged")
    assert re.search(r"\r100 records sent, 100 acknowledged, [\d,]+ records/s\x1b\[K", text), text
    # Erased, then the summary on a line of its own (the terminal turns \n into \r\n).
    assert text.endswith("\r\x1b[Kproduced 100 records (offsets 0..99)\r\n"), repr(text)


def test_the_progress_line_is_cut_to_a_narrow_terminal_so_it_never_wraps(
    server: ThreadedServer,
) -> None:
    text = _terminal_session(server.grpc_address, b"\r100 records sent, 100 acknowl\x1b[K", 30)
    drawn = re.findall(r"\r([^\r\x1b]*)\x1b\[K", text)
    assert drawn and max(len(line) for line in drawn) == 29, drawn


def test_an_interrupted_produce_reports_what_was_acknowledged_and_exits_130(
    server: ThreadedServer,
) -> None:
    with _producing(server.grpc_address, range(100)) as cli:
        wait_until(lambda: _count(server.grpc_address) == 100, 30, "the 100 lines")
        cli.send_signal(signal.SIGINT)  # stdin still open: as Ctrl-C on `tail -f | ...`
        stdout, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130, stderr
    assert (stdout, stderr) == (b"", b"replog: interrupted: produced 100 records (offsets 0..99)\n")


def test_lines_typed_on_a_terminal_get_no_progress_line_over_their_echo(
    server: ThreadedServer,
) -> None:
    master, terminal = pty.openpty()
    seen = bytearray()
    cmd = [*CLI, "produce", "-s", server.grpc_address]
    try:
        with Popen(cmd, stdin=terminal, stdout=PIPE, stderr=terminal) as cli:
            os.close(terminal)
            os.write(master, b"typed\n")
            wait_until(lambda: _count(server.grpc_address) == 1, 30, "the typed line")
            os.write(master, b"\x04")  # Ctrl-D: end of input
            assert cli.wait(60) == 0
            deadline = time.monotonic() + 10
            while _read_terminal(master, seen) and time.monotonic() < deadline:
                pass
    finally:
        os.close(master)
    assert b"records sent" not in seen and b"\x1b[K" not in seen, seen
    assert seen.endswith(b"produced 1 record (offsets 0..0)\r\n"), seen
