"""``replog keys init`` makes a checkpoint signing key: private 0600, verifier key printed and
beside it, never overwritten by surprise nor written through a link."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from replog.errors import InvalidArgumentError
from replog.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from replog.tlog.keyfile import read_signer, read_verifier


def keys_init(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from replog.cli.app import main; main()", "keys", "init"]
    return subprocess.run(
        [*cmd, "--out", str(out), *extra], capture_output=True, text=True, timeout=60, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replog: error: "), result.stderr
    return lines[0]


def test_keys_init_writes_a_private_key_and_prints_its_verifier_key(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = keys_init(out, "--name", "prod-cluster")
    assert result.returncode == 0, result.stderr
    private, public = out / "signing.key", out / "signing.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    printed = result.stdout.strip()
    assert printed == public.read_text().strip()
    assert printed.startswith("prod-cluster+")
    signer, verifier = read_signer(private), read_verifier(printed)
    assert read_verifier(str(public)) == verifier == signer.verifier
    note = sign_checkpoint(Checkpoint("prod-cluster/orders/0", 3, bytes(32)), signer)
    assert open_checkpoint(note, verifier).size == 3


def test_keys_init_twice_refuses_without_force_and_keeps_the_first_key(tmp_path: Path) -> None:
    assert keys_init(tmp_path).returncode == 0
    first = (tmp_path / "signing.key").read_bytes()
    error = one_line_error(keys_init(tmp_path))
    assert "already exists" in error and "--force" in error
    assert (tmp_path / "signing.key").read_bytes() == first
    assert keys_init(tmp_path, "--force").returncode == 0
    assert (tmp_path / "signing.key").read_bytes() != first


@pytest.mark.parametrize("name", ["signing.key", "signing.pub"])
def test_keys_init_never_writes_through_a_symlink_planted_at_its_path(
    tmp_path: Path, name: str
) -> None:
    out, target = tmp_path / "keys", tmp_path / "precious"
    out.mkdir()
    target.write_bytes(b"not yours\n")
    (out / name).symlink_to(target)
    assert "symlink" in one_line_error(keys_init(out))
    assert keys_init(out, "--force").returncode == 0
    assert target.read_bytes() == b"not yours\n"
    assert not (out / name).is_symlink()


def test_a_key_name_that_cannot_sign_is_one_line_error(tmp_path: Path) -> None:
    assert "cannot name a key" in one_line_error(keys_init(tmp_path, "--name", "a+b"))
    assert not (tmp_path / "signing.key").exists()


def test_a_signing_key_others_may_read_is_refused(tmp_path: Path) -> None:
    assert keys_init(tmp_path).returncode == 0
    os.chmod(tmp_path / "signing.key", 0o644)
    with pytest.raises(InvalidArgumentError, match="chmod 600"):
        read_signer(tmp_path / "signing.key")
