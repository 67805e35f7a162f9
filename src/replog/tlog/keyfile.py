"""Checkpoint signing keys on disk: made by ``replog keys init``, read by ``replog serve``.

The private key file holds the signer key (``PRIVATE+KEY+<name>+<hash>+<key>``, as Go's
``sumdb/note`` reads it) and is created with mode 0600; the ``.pub`` file beside it holds the
verifier key a reader pins. Neither is ever written through a symlink.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from replog.errors import InvalidArgumentError
from replog.tlog.note import Signer, Verifier

__all__ = ["KeyFiles", "generate_signer", "read_signer", "read_verifier", "write_key_files"]

PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"


@dataclass(frozen=True)
class KeyFiles:
    """Where ``write_key_files`` put the keys, and the verifier key it wrote."""

    private: Path
    public: Path
    verifier: Verifier


def generate_signer(name: str) -> Signer:
    """A new random Ed25519 signing key named ``name``."""
    return Signer(name, Ed25519PrivateKey.generate())


def _exists_message(path: Path) -> str:
    kind = "a symlink" if path.is_symlink() else "a file"
    return f"{path} already exists ({kind}); give --force to replace the keys in {path.parent}"


def _create(path: Path, data: bytes, mode: int, *, force: bool) -> None:
    """Create ``path`` holding ``data`` with ``mode``: O_EXCL and O_NOFOLLOW refuse anything
    there (a symlink too); with ``force`` a new file is renamed over it, replacing a symlink
    itself, never its target."""
    target = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp") if force else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise InvalidArgumentError(_exists_message(path)) from None
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    if force:
        try:
            os.replace(target, path)
        except OSError:
            target.unlink(missing_ok=True)
            raise


def write_key_files(out: Path, name: str, *, force: bool = False) -> KeyFiles:
    """Make a signing key named ``name`` and write it to ``out/signing.key`` (0600) and its
    verifier key to ``out/signing.pub``. Refuses, before writing anything, when either exists
    (a symlink included) unless ``force``; returns the paths and the verifier key."""
    signer = generate_signer(name)
    private, public = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    if not force:
        for path in (private, public):
            if os.path.lexists(path):
                raise InvalidArgumentError(_exists_message(path))
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    _create(private, f"{signer.encode()}\n".encode(), 0o600, force=force)
    _create(public, f"{signer.verifier.encode()}\n".encode(), 0o644, force=force)
    return KeyFiles(private, public, signer.verifier)


def read_signer(path: Path) -> Signer:
    """The signing key in ``path``; InvalidArgumentError if it is not one, or if others than
    its owner may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the signing key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) & 0o077:
            raise InvalidArgumentError(f"the signing key {path} is readable by others: chmod 600")
        text = handle.read(4096)
    return Signer.parse(text.decode("utf-8", errors="replace"))


def read_verifier(text_or_path: str) -> Verifier:
    """The verifier key given as its text or as the path of a ``.pub`` file."""
    if "+" not in text_or_path or Path(text_or_path).is_file():
        try:
            text_or_path = Path(text_or_path).read_text()
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read the key {text_or_path}: {exc}") from None
    return Verifier.parse(text_or_path)
