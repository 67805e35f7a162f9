"""``replog serve`` raises its soft open-file limit so many partitions fit."""

from __future__ import annotations

import resource
import subprocess
import sys


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = hard == resource.RLIM_INFINITY
    low = 256 if infinite else min(256, hard)
    expected = low if infinite else hard  # an unlimited hard limit is left alone
    script = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({low}, {hard}))\n"
        "from replog.server.agent import raise_open_file_limit\n"
        "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == [str(expected), str(expected)]
