"""A Log directory on the real disk is private: the directory 0700, its files 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from replog.storage import Log, LogConfig

SMALL = LogConfig(max_store_bytes=512, max_index_bytes=120, max_record_bytes=200)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]
    }


def test_a_log_creates_its_directory_0700_and_its_files_0600(umask_022: None, log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        for i in range(40):
            log.append(b"record %d" % i)
    found = modes(Path(log_dir))
    assert len(found) > 5  # several segments, their indexes and the lock
    assert found == {name: 0o700 if name == "." else 0o600 for name in found}, (
        "a log directory must be private"
    )


def test_a_log_tightens_a_world_readable_directory_and_its_files(log_dir: str) -> None:
    with Log(log_dir, SMALL) as log:
        for i in range(40):
            log.append(b"record %d" % i)
    root = Path(log_dir)
    for path in [root, *root.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # as an older build left it
    with Log(log_dir, SMALL) as log:
        assert log.read(39).value == b"record 39"
    assert set(modes(root).values()) <= {0o700, 0o600}
    assert modes(root)["."] == 0o700
