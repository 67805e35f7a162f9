"""Hand-built protobuf bytes for the hot read path (no decode, no message objects).

A ``repeated Record records = 1`` field is each record's bytes behind a tag and a length,
so a ConsumeBatchResponse is built by concatenating the serialized records the Log returns.
"""

from __future__ import annotations

__all__ = ["encode_batch_response", "encode_consume_response", "varint"]

_SMALL = [bytes((0x0A, n)) for n in range(128)]


def varint(value: int) -> bytes:
    """The protobuf base-128 varint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field1(payload: bytes) -> bytes:
    n = len(payload)
    return _SMALL[n] if n < 128 else b"\x0a" + varint(n)


def encode_consume_response(payload: bytes) -> bytes:
    """A serialized ConsumeResponse holding one serialized Record."""
    return _field1(payload) + payload


def encode_batch_response(payloads: list[bytes], high_watermark: int) -> bytes:
    """A serialized ConsumeBatchResponse holding serialized Records and the high watermark."""
    parts: list[bytes] = []
    append = parts.append
    for payload in payloads:
        append(_field1(payload))
        append(payload)
    if high_watermark:
        append(b"\x10" + varint(high_watermark))
    return b"".join(parts)
