"""Log methods used by replication: byte-identical appends and reset (snapshot install)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replog.errors import InvalidArgumentError, OffsetOutOfRangeError
from replog.storage import Log, LogConfig
from replog.v1.record_pb2 import Record


def _payload(offset: int, value: bytes, term: int = 1) -> bytes:
    return Record(value=value, offset=offset, term=term, timestamp_ms=7).SerializeToString()


def test_append_payloads_stores_the_bytes_unchanged_and_survives_reopen(tmp_path: Path) -> None:
    payloads = [_payload(1, b"a"), _payload(2, b"b", term=2)]
    with Log(tmp_path, LogConfig(initial_offset=1)) as log:
        assert log.append_payloads(payloads) == 1
        assert log.read_payloads(1, max_records=10) == payloads
    with Log(tmp_path, LogConfig(initial_offset=1)) as log:
        assert log.read_payloads(1, max_records=10) == payloads
        assert log.read(2).term == 2


def test_append_payloads_refuses_an_empty_batch(tmp_path: Path) -> None:
    with Log(tmp_path, LogConfig(initial_offset=1)) as log, pytest.raises(InvalidArgumentError):
        log.append_payloads([])


def test_reset_discards_everything_and_continues_at_the_given_offset(tmp_path: Path) -> None:
    config = LogConfig(initial_offset=1, max_store_bytes=64, max_record_bytes=40)
    with Log(tmp_path, config) as log:
        log.append_payloads([_payload(i, b"x" * 20) for i in range(1, 9)])
        assert log.segment_count > 1
        log.reset(100)
        assert (log.lowest_offset, log.next_offset, log.segment_count) == (100, 100, 1)
        with pytest.raises(OffsetOutOfRangeError):
            log.read(5)
        log.append_payloads([_payload(100, b"after")])
    with Log(tmp_path, config) as log:
        assert (log.lowest_offset, log.next_offset) == (100, 101)
        assert log.read(100).value == b"after"
