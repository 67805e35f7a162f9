"""Signed notes and C2SP checkpoints: what replog signs opens with the pinned key, and every
malformed, wrongly signed or foreign note is refused with VerificationError."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from replog.errors import InvalidArgumentError, VerificationError
from replog.tlog.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from replog.tlog.note import Signer, Verifier, key_hash, open_note, sign_note

SEED = bytes(range(32))
ORIGIN = "example.com/orders/0"
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture
def signer() -> Signer:
    return Signer("replog", Ed25519PrivateKey.from_private_bytes(SEED))


def other_signer(name: str = "replog") -> Signer:
    return Signer(name, Ed25519PrivateKey.from_private_bytes(bytes(32)))


def test_a_checkpoint_body_is_origin_size_and_base64_root() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(body) == Checkpoint(ORIGIN, 42, ROOT)
    with_extension = Checkpoint(ORIGIN, 0, ROOT, ("ext one",))
    assert Checkpoint.parse(with_extension.body()) == with_extension


def test_a_signed_checkpoint_opens_with_the_pinned_key(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), signer)
    signature = note.partition("\n\n")[2]
    assert signature.startswith("\u2014 replog ") and signature.endswith("\n")
    raw = base64.b64decode(signature.split(" ")[2])
    assert int.from_bytes(raw[:4], "big") == signer.verifier.key_hash
    assert len(raw) == 4 + 64
    assert open_checkpoint(note, signer.verifier, origin=ORIGIN) == Checkpoint(ORIGIN, 7, ROOT)
    assert open_checkpoint(note.encode(), signer.verifier).size == 7


def test_the_key_hash_is_the_first_four_bytes_of_the_named_key() -> None:
    public = bytes(range(100, 132))
    digest = hashlib.sha256(b"name\n\x01" + public).digest()
    assert key_hash("name", public) == int.from_bytes(digest[:4], "big")


def test_verifier_and_signer_keys_round_trip_in_the_go_note_format(signer: Signer) -> None:
    # This seed's public key holds a "+" in base64: the key is everything after the hash.
    assert "+" in base64.b64encode(b"\x01" + signer.verifier.public_key).decode()
    vkey = signer.verifier.encode()
    name, hash_text, key_text = vkey.split("+", 2)
    assert (name, int(hash_text, 16)) == ("replog", signer.verifier.key_hash)
    assert base64.b64decode(key_text)[:1] == b"\x01"
    assert Verifier.parse(vkey) == signer.verifier
    skey = signer.encode()
    assert skey.startswith(f"PRIVATE+KEY+replog+{hash_text}+")
    assert Signer.parse(skey).verifier == signer.verifier


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "replog",
        "replog+0000+AAAA",
        "replog+zzzzzzzz+" + base64.b64encode(b"\x01" + bytes(32)).decode(),
        "replog+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),  # wrong hash
        "replog+00000000+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
        "replog+00000000+not base64!",
        "rep log+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),
    ],
)
def test_a_malformed_verifier_key_is_refused(vkey: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Verifier.parse(vkey)


def test_a_key_name_with_a_space_or_plus_is_refused() -> None:
    for name in ["", "a b", "a+b", "tab\there"]:
        with pytest.raises(InvalidArgumentError):
            other_signer(name)


def test_a_note_signed_by_another_key_of_the_same_name_is_refused(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), other_signer())
    with pytest.raises(VerificationError, match="not signed by replog"):
        open_checkpoint(note, signer.verifier)


def test_a_note_whose_signature_was_altered_is_refused(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), signer)
    body, _, line = note.partition("\n\n")
    prefix, _, encoded = line.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 1
    forged = f"{body}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(VerificationError, match="does not verify"):
        open_checkpoint(forged, signer.verifier)


@pytest.mark.parametrize("change", ["size", "root", "origin"])
def test_a_checkpoint_whose_body_was_altered_is_refused(signer: Signer, change: str) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), signer)
    old = {"size": "\n7\n", "root": base64.b64encode(ROOT).decode()[:6], "origin": "orders"}
    new = {"size": "\n8\n", "root": "AAAAAA", "origin": "ordars"}
    with pytest.raises(VerificationError):
        open_checkpoint(note.replace(old[change], new[change], 1), signer.verifier)


def test_a_checkpoint_of_another_log_is_refused(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint("example.com/orders/1", 7, ROOT), signer)
    with pytest.raises(VerificationError, match=r"not 'example\.com/orders/0'"):
        open_checkpoint(note, signer.verifier, origin=ORIGIN)


def test_signatures_by_other_keys_are_ignored_beside_the_pinned_one(signer: Signer) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), signer)
    cosigned = sign_note(Checkpoint(ORIGIN, 7, ROOT).body(), other_signer("witness"))
    witness_line = cosigned.partition("\n\n")[2]
    assert open_checkpoint(note + witness_line, signer.verifier).size == 7
    with pytest.raises(VerificationError):
        open_checkpoint(cosigned, signer.verifier)


def good_note(signer: Signer) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), signer)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda note: note.replace("\n\n", "\n"),  # no signature block
        lambda note: note.rstrip("\n"),  # the last line has no newline
        lambda note: note.replace("\u2014 ", "- "),  # not an em dash
        lambda note: note.replace("\u2014 replog ", "\u2014 replog"),  # no space
        lambda note: note.replace("\u2014 replog ", "\u2014  replog "),  # empty name
        lambda note: note[:-2] + "!\n",  # not base64
        lambda note: note + "\u2014 replog AAAA\n",  # under 5 bytes
        lambda note: note.replace("\n7\n", "\r\n7\n"),  # a control character
        lambda note: note.replace("\n7\n", "\n07\n"),
        lambda note: note.replace("\n7\n", "\n-7\n"),
        lambda note: note + "\n",
        lambda note: note + "\u2014 other AAAAAAAA\n" * 100,  # too many signatures
    ],
)
def test_a_malformed_note_is_refused(signer: Signer, mangle: object) -> None:
    assert callable(mangle)
    with pytest.raises(VerificationError):
        open_checkpoint(mangle(good_note(signer)), signer.verifier)


ROOT_LINE = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n7\n",  # no root line
        f"\n7\n{ROOT_LINE}\n",  # empty origin
        f"{ORIGIN}\nseven\n{ROOT_LINE}\n",
        f"{ORIGIN}\n\u0667\n{ROOT_LINE}\n",  # a digit, but not an ASCII one
        f"{ORIGIN}\n{2**63}\n{ROOT_LINE}\n",  # over a signed 64-bit size
        f"{ORIGIN}\n7\n{base64.b64encode(ROOT[:31]).decode()}\n",  # a 31-byte root
        f"{ORIGIN}\n7\n{ROOT_LINE[:-1]}\n",  # base64 without its padding
        f"{ORIGIN}\n7\n{ROOT_LINE}\n\next\n",  # an empty extension line
    ],
)
def test_a_signed_body_that_is_no_checkpoint_is_refused(signer: Signer, body: str) -> None:
    with pytest.raises(VerificationError):
        open_checkpoint(sign_note(body, signer), signer.verifier)


def test_a_note_is_opened_to_exactly_its_signed_text(signer: Signer) -> None:
    assert open_note(sign_note("hello\nworld\n", signer), signer.verifier) == "hello\nworld\n"
    with pytest.raises(InvalidArgumentError):
        sign_note("no newline", signer)
