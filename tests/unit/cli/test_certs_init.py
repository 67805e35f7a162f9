"""``replog certs init`` never overwrites a CA or key by surprise, nor writes through a link."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest


def certs_init(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from replog.cli.app import main; main()", "certs", "init"]
    return subprocess.run(
        [*cmd, "--out", str(out), "--user", "alice", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replog: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_certs_init_twice_refuses_without_force_and_keeps_the_first_ca(tmp_path: Path) -> None:
    assert certs_init(tmp_path).returncode == 0
    ca_key = (tmp_path / "ca-key.pem").read_bytes()
    error = one_line_error(certs_init(tmp_path))
    assert "already exists" in error and "--force" in error
    assert (tmp_path / "ca-key.pem").read_bytes() == ca_key
    assert certs_init(tmp_path, "--force").returncode == 0
    assert (tmp_path / "ca-key.pem").read_bytes() != ca_key  # --force writes a new CA


@pytest.mark.parametrize("name", ["ca-key.pem", "alice-key.pem", "node.pem"])
def test_certs_init_never_writes_through_a_symlink_planted_at_its_path(
    tmp_path: Path, name: str
) -> None:
    out, target = tmp_path / "certs", tmp_path / "precious"
    out.mkdir()
    target.write_bytes(b"not yours\n")
    target.chmod(0o644)
    (out / name).symlink_to(target)
    error = one_line_error(certs_init(out))
    assert name in error and "--force" in error
    assert (out / name).is_symlink() and target.read_bytes() == b"not yours\n"
    assert not (out / "ca-key.pem").exists() or name == "ca-key.pem"  # nothing half-written
    result = certs_init(out, "--force")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"not yours\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not (out / name).is_symlink() and (out / name).read_bytes().startswith(b"-----BEGIN")
    if name.endswith("-key.pem"):
        assert stat.S_IMODE(os.lstat(out / name).st_mode) == 0o600


@pytest.mark.parametrize("user", ["ca", "node"])
def test_a_user_named_like_the_ca_or_the_node_is_refused(tmp_path: Path, user: str) -> None:
    from replog.errors import InvalidArgumentError
    from replog.security.certs import write_dev_pki

    with pytest.raises(InvalidArgumentError, match="would overwrite"):
        write_dev_pki(tmp_path, hosts=[], users=[user])
    assert list(tmp_path.iterdir()) == []
