"""C2SP signed notes with Ed25519: the envelope a checkpoint travels in.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <name> <base64(key hash || signature)>``. The key hash is the first 4 bytes of
``SHA-256(name || "\\n" || 0x01 || public key)`` (0x01: Ed25519) and the signature covers the
text. A verifier key is written ``<name>+<hex key hash>+<base64(0x01 || public key)>`` and a
signer key ``PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || seed)>``, as Go's
``golang.org/x/mod/sumdb/note`` writes them, so keys and notes work with its tools.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from replog.errors import InvalidArgumentError, VerificationError

__all__ = [
    "MAX_SIGNATURES",
    "Signer",
    "Verifier",
    "check_key_name",
    "key_hash",
    "open_note",
    "sign_note",
]

MAX_SIGNATURES = 100
"""A note with more signature lines is refused unread (as Go's verifier does)."""

_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "  # an em dash and a space
_SIGNER_PREFIX = "PRIVATE+KEY+"
_KEY_BYTES = 32
_SIGNATURE_BYTES = 64


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def check_key_name(name: str) -> str:
    """``name`` if it can name a key (non-empty, no whitespace, no ``+``), else
    InvalidArgumentError."""
    if not _valid_name(name) or any(unicodedata.category(c) == "Cc" for c in name):
        raise InvalidArgumentError(f"{name!r} cannot name a key: no spaces or '+', not empty")
    return name


def key_hash(name: str, public_key: bytes) -> int:
    """The 32-bit hash that names a key in signature lines."""
    digest = hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidArgumentError(f"{what} is not base64") from None


def _parse_key(text: str, what: str) -> tuple[str, int, bytes]:
    """Split ``name+hash+base64(0x01 || key)`` and check the hash names that key."""
    parts = text.split("+", 2)  # the base64 key may hold a "+" itself
    if len(parts) != 3 or not _valid_name(parts[0]) or len(parts[1]) != 8:
        raise InvalidArgumentError(f"{what} is not name+hash+key")
    name, hash_text, key_text = parts
    try:
        stated = int(hash_text, 16)
    except ValueError:
        raise InvalidArgumentError(f"{what} has no hex key hash") from None
    key = _b64decode(key_text, what)
    if len(key) != 1 + _KEY_BYTES or key[:1] != _ED25519:
        raise InvalidArgumentError(f"{what} is not an Ed25519 key")
    return name, stated, key[1:]


@dataclass(frozen=True)
class Verifier:
    """A public key that checks notes: its ``name``, ``key_hash`` and raw ``public_key``."""

    name: str
    key_hash: int
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """The verifier of a verifier key ``name+hash+base64(0x01 || key)``;
        InvalidArgumentError if malformed or if the hash does not match the key."""
        name, stated, key = _parse_key(text.strip(), "the verifier key")
        if key_hash(name, key) != stated:
            raise InvalidArgumentError("the verifier key's hash does not match its key")
        return cls(name, stated, key)

    def encode(self) -> str:
        """The verifier key text, ``name+hash+base64(0x01 || key)``."""
        encoded = base64.b64encode(_ED25519 + self.public_key).decode()
        return f"{self.name}+{self.key_hash:08x}+{encoded}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``text``."""
        if len(signature) != _SIGNATURE_BYTES:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """A private key that signs notes under ``name``."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = check_key_name(name)
        self._key = private_key
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = Verifier(name, key_hash(name, public), public)

    @classmethod
    def parse(cls, text: str) -> Signer:
        """The signer of a signer key ``PRIVATE+KEY+name+hash+base64(0x01 || seed)``;
        InvalidArgumentError if malformed or if the hash does not match the key."""
        text = text.strip()
        if not text.startswith(_SIGNER_PREFIX):
            raise InvalidArgumentError("the signing key does not start with PRIVATE+KEY+")
        name, stated, seed = _parse_key(text.removeprefix(_SIGNER_PREFIX), "the signing key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if signer.verifier.key_hash != stated:
            raise InvalidArgumentError("the signing key's hash does not match its key")
        return signer

    def encode(self) -> str:
        """The signer key text (secret: whoever has it can sign)."""
        seed = self._key.private_bytes_raw()
        encoded = base64.b64encode(_ED25519 + seed).decode()
        return f"{_SIGNER_PREFIX}{self.name}+{self.verifier.key_hash:08x}+{encoded}"

    def sign(self, text: bytes) -> bytes:
        """The Ed25519 signature of ``text``."""
        return self._key.sign(text)


def _check_text(message: str) -> None:
    """A note is text with no control characters but newlines (and so no CR)."""
    if any(ord(c) < 0x20 and c != "\n" for c in message):
        raise VerificationError("the note holds a control character")


def sign_note(text: str, signer: Signer) -> str:
    """The signed note of ``text`` (which must end with a newline and hold no blank line at its
    end or control characters)."""
    if not text.endswith("\n") or text.endswith("\n\n"):
        raise InvalidArgumentError("a note's text ends with exactly one newline")
    _check_text(text)
    raw = text.encode()
    line = base64.b64encode(struct.pack(">I", signer.verifier.key_hash) + signer.sign(raw))
    return f"{text}\n{_SIG_PREFIX}{signer.name} {line.decode()}\n"


def _signature_lines(block: str) -> list[tuple[str, bytes]]:
    """The ``(name, key hash || signature)`` of every line of a signature block."""
    if not block.endswith("\n"):
        raise VerificationError("the note's signature block does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"the note has over {MAX_SIGNATURES} signatures")
    parsed = []
    for line in lines:
        name, _, encoded = line.removeprefix(_SIG_PREFIX).partition(" ")
        if not line.startswith(_SIG_PREFIX) or not _valid_name(name) or not encoded:
            raise VerificationError("the note has a malformed signature line")
        try:
            raw = _b64decode(encoded, "a signature")
        except InvalidArgumentError:
            raise VerificationError("the note has a signature that is not base64") from None
        if len(raw) < 5:
            raise VerificationError("the note has a signature too short to hold a key hash")
        parsed.append((name, raw))
    return parsed


def open_note(message: bytes | str, verifier: Verifier) -> str:
    """The text of a note ``verifier``'s key signed; VerificationError if the note is malformed,
    carries a bad signature under that key's name and hash, or none of that key at all.
    Signatures by other keys are ignored (a witness may cosign)."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("the note is not UTF-8") from None
    _check_text(message)
    split = message.rfind("\n\n")
    if split < 0:
        raise VerificationError("the note has no signature block")
    text, block = message[: split + 1], message[split + 2 :]
    signed = False
    for name, raw in _signature_lines(block):
        if name != verifier.name or struct.unpack(">I", raw[:4])[0] != verifier.key_hash:
            continue
        if not verifier.verifies(text.encode(), raw[4:]):
            raise VerificationError(f"the note's signature by {name} does not verify")
        signed = True
    if not signed:
        raise VerificationError(f"the note is not signed by {verifier.name}")
    return text
