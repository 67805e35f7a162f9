"""Appending does not keep what it appended in memory.

upb (the protobuf runtime) keeps every value assigned to a message in that message's arena
until the message is freed; a message reused for the life of a Log once made the process grow
by every byte appended one record at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.storage import Log, LogConfig
from replog.storage.codec import ValueEncoder
from replog.v1.record_pb2 import Record

_STATUS = Path("/proc/self/status")


def _rss_mib() -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not _STATUS.exists(), reason="needs Linux /proc")
def test_appending_100_mib_one_record_at_a_time_keeps_memory_flat(tmp_path: Path) -> None:
    value = b"v" * 10_240
    with Log(tmp_path, LogConfig(sync="never")) as log:
        for _ in range(500):
            log.append(value)  # warm up: first segment, index mapping, allocator
        before = _rss_mib()
        for _ in range(10_000):
            log.append(value)
        grown = _rss_mib() - before
    assert grown < 40, f"RSS grew {grown:.0f} MiB while appending 100 MiB"


def test_the_value_encoder_gives_the_bytes_a_fresh_message_would() -> None:
    encoder = ValueEncoder(renew_bytes=64)
    for offset in range(100):  # crosses the renewal many times
        value = bytes([offset]) * (offset % 40)
        expected = Record(value=value, offset=offset, timestamp_ms=7).SerializeToString()
        assert encoder.encode(value, offset, 7) == expected
