"""C2SP checkpoints: a log's signed statement of its size and root hash.

The body is ``<origin>\\n<size>\\n<base64 root hash>\\n`` and then any extension lines; it is
signed as a note (``note``). The origin names the log (replog's is
``<cluster-name>/<topic>/<partition>``), so a checkpoint of one log never passes for another's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from replog.errors import InvalidArgumentError, VerificationError
from replog.tlog.hashing import HASH_SIZE
from replog.tlog.note import Signer, Verifier, open_note, sign_note

__all__ = ["Checkpoint", "open_checkpoint", "sign_checkpoint"]

_MAX_SIZE = (1 << 63) - 1


@dataclass(frozen=True)
class Checkpoint:
    """A tree ``size`` and ``root`` hash of the log named ``origin`` (and extension lines)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or any(ord(c) < 0x20 for c in self.origin):
            raise InvalidArgumentError(f"{self.origin!r} cannot be a checkpoint's origin")
        if not 0 <= self.size <= _MAX_SIZE:
            raise InvalidArgumentError(f"{self.size} cannot be a tree size")
        if len(self.root) != HASH_SIZE:
            raise InvalidArgumentError(f"a root hash is {HASH_SIZE} bytes, not {len(self.root)}")
        if any(not line or any(ord(c) < 0x20 for c in line) for line in self.extensions):
            raise InvalidArgumentError("a checkpoint's extension line is one non-empty line")

    def body(self) -> str:
        """The checkpoint's text, the part a signature covers."""
        root = base64.b64encode(self.root).decode()
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """The checkpoint a body states; VerificationError if it is not one."""
        if not body.endswith("\n"):
            raise VerificationError("the checkpoint does not end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise VerificationError("the checkpoint has fewer than 3 lines")
        origin, size_text, root_text, *extensions = lines
        if not size_text.isdigit() or not size_text.isascii() or size_text != str(int(size_text)):
            raise VerificationError(f"the checkpoint's size {size_text!r} is not a number")
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise VerificationError("the checkpoint's root hash is not base64") from None
        try:
            return cls(origin, int(size_text), root, tuple(extensions))
        except InvalidArgumentError as exc:
            raise VerificationError(f"the checkpoint is malformed: {exc}") from None


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a note signed by ``signer``."""
    return sign_note(checkpoint.body(), signer)


def open_checkpoint(
    message: bytes | str, verifier: Verifier, *, origin: str | None = None
) -> Checkpoint:
    """The checkpoint of a note signed by ``verifier``'s key (and of log ``origin`` when
    given); VerificationError if the note or its body is malformed, wrongly signed or of
    another log."""
    checkpoint = Checkpoint.parse(open_note(message, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"the checkpoint is of log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint
