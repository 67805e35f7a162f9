"""Log: invalid configuration, invalid arguments, locking and closed logs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from replog.errors import ConfigError, InvalidArgumentError, LogLockedError, RecordTooLargeError
from replog.storage import Log, LogConfig
from replog.storage.faultfs import FaultyFileSystem

SMALL = LogConfig(max_store_bytes=512, max_index_bytes=120, max_record_bytes=200)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_store_bytes": 0}, "max_store_bytes"),
        ({"max_store_bytes": 2**50}, "max_store_bytes"),
        ({"max_store_bytes": "64"}, "integer"),
        ({"max_index_bytes": 0}, "max_index_bytes"),
        ({"max_index_bytes": 100}, "whole number of 12-byte entries"),
        ({"max_index_bytes": 12 * 2**40}, "max_index_bytes"),
        ({"max_record_bytes": 0}, "max_record_bytes"),
        ({"max_record_bytes": True}, "integer"),
        ({"max_store_bytes": 100, "max_record_bytes": 100}, "must fit in max_store_bytes"),
        ({"initial_offset": -1}, "initial_offset"),
        ({"initial_offset": 2**64}, "initial_offset"),
        ({"sync": "sometimes"}, "sync must be one of"),
        ({"sync_interval_ms": 0}, "sync_interval_ms"),
    ],
)
def test_every_invalid_config_value_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LogConfig(**kwargs)


def test_a_config_that_is_not_a_log_config_is_refused_before_touching_the_disk(
    log_dir: str,
) -> None:
    with pytest.raises(ConfigError):
        Log(log_dir, {"sync": "always"})  # type: ignore[arg-type]
    assert not os.path.exists(log_dir)


def test_a_directory_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"not a directory")
    with pytest.raises(ConfigError, match="not a directory"):
        Log(str(path))
    assert path.read_bytes() == b"not a directory"


def test_a_directory_below_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises((ConfigError, NotADirectoryError, FileExistsError)):
        Log(str(tmp_path / "file" / "log"))


def test_an_unwritable_directory_is_a_config_error_simulated(
    fault_fs: FaultyFileSystem,
) -> None:
    fault_fs.fail("lock", errno.EACCES)
    with pytest.raises(ConfigError, match="not writable"):
        Log("/log", fs=fault_fs)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root ignores directory permissions; the simulated variant covers this case",
)
def test_an_unwritable_directory_is_a_config_error_on_the_real_disk(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            Log(str(directory))
    finally:
        directory.chmod(0o700)


def test_a_second_log_on_the_same_directory_is_locked_out_until_the_first_closes(
    log_dir: str,
) -> None:
    first = Log(log_dir)
    with pytest.raises(LogLockedError):
        Log(log_dir)
    first.close()
    Log(log_dir).close()


def test_a_log_open_in_another_process_locks_this_one_out(log_dir: str) -> None:
    Log(log_dir).close()
    with Log(log_dir):
        code = (
            "import sys\n"
            "from replog.errors import LogLockedError\n"
            "from replog.storage import Log\n"
            "try:\n"
            "    Log(sys.argv[1]).close()\n"
            "except LogLockedError:\n"
            "    sys.exit(42)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, log_dir], timeout=60, capture_output=True, check=False
        )
    assert result.returncode == 42, result.stderr.decode()


def directory_bytes(path: str) -> dict[str, bytes]:
    return {name: Path(path, name).read_bytes() for name in sorted(os.listdir(path))}


@pytest.mark.parametrize(
    "call",
    [
        lambda log: log.append("text"),
        lambda log: log.append(b"v", key="k"),
        lambda log: log.append(b"v", headers=[("h", 1)]),
        lambda log: log.append(b"x" * 1000),
        lambda log: log.append_batch([b"ok", "bad"]),
        lambda log: log.append_batch([b"ok", b"x" * 1000]),
        lambda log: log.append_batch([]),
        lambda log: log.append_batch(b"bytes are not a batch"),
        lambda log: log.read(True),
        lambda log: log.read(-1),
        lambda log: log.read("0"),
        lambda log: log.read_batch(0, max_records=0),
        lambda log: log.truncate(-1),
        lambda log: log.truncate(10**9),
        lambda log: log.truncate(True),
        lambda log: log.truncate_after(-5),
        lambda log: log.truncate_after(10**9),
        lambda log: log.truncate_after(True),
        lambda log: log.truncate_after("3"),
    ],
)
def test_a_bad_argument_raises_and_changes_nothing_on_disk(log_dir: str, call: Any) -> None:
    with Log(log_dir, SMALL) as log:
        log.append_batch([b"%d" % i for i in range(30)])
        before = directory_bytes(log_dir)
        state = (log.lowest_offset, log.next_offset)
        with pytest.raises((InvalidArgumentError, LookupError)):
            call(log)
        assert directory_bytes(log_dir) == before
        assert (log.lowest_offset, log.next_offset) == state
        assert log.append(b"still works") == 30


def test_a_too_large_record_names_its_size_and_the_limit(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log, pytest.raises(RecordTooLargeError) as info:
        log.append(b"x" * 500)
    assert info.value.limit == 200


def test_a_bool_offset_at_next_offset_is_refused_not_read_as_one(log_dir: str) -> None:
    with Log(log_dir) as log:
        log.append(b"a")
        with pytest.raises(InvalidArgumentError):
            log.read_batch(True)
