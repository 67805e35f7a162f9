"""kill -9 of a process appending with sync="always": every acknowledged record survives.

The child prints ``offset value`` after each append returns (and flushes the line), so
every printed line is an acknowledged record. The test kills it with SIGKILL after a random
number of acknowledgements, reopens the directory and checks every acknowledged record
reads back exactly at its offset, with no gaps, then starts the next child on the same log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from replog.storage import Log, LogConfig

CONFIG = LogConfig(max_store_bytes=2048, max_index_bytes=240, max_record_bytes=512)
CHILD = """
import os, random, sys
from replog.storage import Log, LogConfig
config = LogConfig(max_store_bytes=2048, max_index_bytes=240, max_record_bytes=512)
log = Log(sys.argv[1], config)
rng = random.Random(int(sys.argv[2]))
i = 0
while True:
    value = b"%s-%d-" % (sys.argv[2].encode(), i) + b"x" * rng.randrange(0, 200)
    if rng.random() < 0.3:
        batch = [value + b"-%d" % j for j in range(rng.randint(1, 5))]
        base = log.append_batch(batch)
        lines = "".join(f"{base + j} {v.hex()}\\n" for j, v in enumerate(batch))
    else:
        lines = f"{log.append(value)} {value.hex()}\\n"
    sys.stdout.write(lines)
    sys.stdout.flush()
    i += 1
"""


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()


ITERATIONS = int(os.environ.get("REPLOG_KILL9_ITERATIONS", "20"))


def test_every_acknowledged_record_survives_kill_9_at_random_moments(
    log_dir: str, children: list[subprocess.Popen[bytes]]
) -> None:
    rng = random.Random(int(os.environ.get("REPLOG_KILL9_SEED", "9")))
    acknowledged: dict[int, bytes] = {}
    for iteration in range(ITERATIONS):
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, log_dir, str(iteration)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        children.append(process)
        assert process.stdout is not None
        wanted = rng.randint(1, 60)
        seen = 0
        while seen < wanted:
            line = process.stdout.readline()
            assert line, f"child {iteration} exited early with {process.poll()}"
            offset, value = line.split()
            acknowledged[int(offset)] = bytes.fromhex(value.decode())
            seen += 1
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        # Lines written before the kill are acknowledged; a pipe write of one line is atomic,
        # so only whole, newline-terminated lines are there (the last element is b"").
        for line in process.stdout.read().split(b"\n")[:-1]:
            offset_text, value_hex = line.split()
            acknowledged[int(offset_text)] = bytes.fromhex(value_hex.decode())
        with Log(log_dir, CONFIG) as log:
            assert log.lowest_offset == 0
            assert log.next_offset > max(acknowledged), f"iteration {iteration}"
            stored = {o: log.read(o).value for o in range(log.next_offset)}  # no gaps
        lost = {o: v for o, v in acknowledged.items() if stored.get(o) != v}
        assert not lost, f"iteration {iteration}: acknowledged records lost: {sorted(lost)}"
        # Offsets past the acknowledged ones may hold unacknowledged records; later children
        # may append after them, so what the test knows is only the acknowledged part.
        acknowledged.update({o: v for o, v in stored.items() if o not in acknowledged})
