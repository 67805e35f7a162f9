"""A Log's lock holds while the Log is open, even when its ``.lock`` file is deleted.

A flock(2) is on an inode: with only the file locked, a second opener after a deletion
creates and locks a new file, and two writers hand out the same offsets.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from replog.errors import ConfigError, LogLockedError
from replog.storage import Log
from replog.storage.faultfs import FaultyFileSystem


def test_deleting_the_lock_file_does_not_let_a_second_log_in(log_dir: str) -> None:
    with Log(log_dir) as first:
        first.append(b"a")
        os.remove(os.path.join(log_dir, ".lock"))
        with pytest.raises(LogLockedError):
            Log(log_dir)
        assert first.append(b"b") == 1  # the holder goes on; nobody else appended
    with Log(log_dir) as reopened:
        assert [reopened.read(i).value for i in range(reopened.next_offset)] == [b"a", b"b"]


def test_deleting_the_lock_file_does_not_let_another_process_in(log_dir: str) -> None:
    code = (
        "import sys\n"
        "from replog.errors import LogLockedError\n"
        "from replog.storage import Log\n"
        "try:\n"
        "    log = Log(sys.argv[1])\n"
        "except LogLockedError:\n"
        "    sys.exit(42)\n"
        "log.append(b'intruder')\n"
        "log.close()\n"
    )
    with Log(log_dir) as first:
        first.append(b"a")
        os.remove(os.path.join(log_dir, ".lock"))
        result = subprocess.run(
            [sys.executable, "-c", code, log_dir], timeout=60, capture_output=True, check=False
        )
        assert result.returncode == 42, result.stderr.decode()
        assert first.append(b"b") == 1


@pytest.mark.parametrize("code", [errno.EBADF, errno.ENOLCK])
def test_a_file_system_that_cannot_lock_is_a_config_error(
    fault_fs: FaultyFileSystem, code: int
) -> None:
    fault_fs.fail("lock", code)  # NFS answers flock(2) on a directory with EBADF
    with pytest.raises(ConfigError, match="local file system"):
        Log("/log", fs=fault_fs)
