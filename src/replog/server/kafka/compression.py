"""The compression codecs of Kafka record batches: gzip, snappy (xerial framing as the
Java client writes it, and plain), lz4 (Kafka's LZ4 frame) and zstd, all via cramjam.

Pure: bytes in, bytes out; a payload that does not decompress raises CorruptBatchError."""

from __future__ import annotations

import enum
import struct
from typing import Any

import cramjam

from replog.errors import CorruptBatchError, UnsupportedError

__all__ = ["Compression", "compress", "decompress"]

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024
_INT32 = struct.Struct(">i")


class Compression(enum.IntEnum):
    """The codec in bits 0-2 of a record batch's attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


def compress(codec: Compression, data: bytes) -> bytes:
    """``data`` compressed with ``codec`` as Kafka clients expect to read it (snappy in
    xerial framing, which every client reads and the Java client writes)."""
    if codec is Compression.NONE:
        return data
    if codec is Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec is Compression.SNAPPY:
        return _xerial_compress(data)
    if codec is Compression.LZ4:
        return bytes(cramjam.lz4.compress(data))
    return bytes(cramjam.zstd.compress(data))


def decompress(codec: int, data: bytes) -> bytes:
    """``data`` decompressed with the codec numbered ``codec``.

    Raises UnsupportedError for a codec number Kafka does not define and
    CorruptBatchError when the payload is not valid for its codec."""
    try:
        kind = Compression(codec)
    except ValueError:
        raise UnsupportedError(f"unknown Kafka compression codec {codec}") from None
    try:
        if kind is Compression.NONE:
            return data
        if kind is Compression.GZIP:
            return _bounded(cramjam.gzip.decompress_into, data)
        if kind is Compression.SNAPPY:
            return _snappy_decompress(data)
        if kind is Compression.LZ4:
            return _bounded(cramjam.lz4.decompress_into, data)
        return _bounded(cramjam.zstd.decompress_into, data)
    except cramjam.DecompressionError as exc:
        raise CorruptBatchError(f"{kind.name.lower()} payload does not decompress: {exc}") from None


MAX_DECOMPRESSED_BYTES = 32 << 20
"""The most one compressed record batch may expand to: a small request must not be able to
make the server allocate gigabytes (a decompression bomb)."""

_START_BYTES = 64 << 10


def _bounded(decompress_into: Any, data: bytes) -> bytes:
    """``data`` decompressed into a buffer that grows (doubling) up to
    MAX_DECOMPRESSED_BYTES; CorruptBatchError beyond it."""
    size = min(MAX_DECOMPRESSED_BYTES, max(_START_BYTES, 4 * len(data)))
    while True:
        out = bytearray(size)
        try:
            written = int(decompress_into(data, out))
        except cramjam.DecompressionError as exc:
            if "whole buffer" not in str(exc):
                raise
            if size >= MAX_DECOMPRESSED_BYTES:
                raise CorruptBatchError(
                    f"a record batch decompresses to over {MAX_DECOMPRESSED_BYTES} bytes"
                ) from None
            size = min(MAX_DECOMPRESSED_BYTES, size * 2)
            continue
        return bytes(memoryview(out)[:written])


def _snappy_raw(block: bytes | memoryview, budget: int) -> bytes:
    """One raw snappy block, refused when it would expand past ``budget`` bytes."""
    if int(cramjam.snappy.decompress_raw_len(block)) > budget:
        raise CorruptBatchError(
            f"a record batch decompresses to over {MAX_DECOMPRESSED_BYTES} bytes"
        )
    return bytes(cramjam.snappy.decompress_raw(block))


def _xerial_compress(data: bytes) -> bytes:
    parts = [_XERIAL_HEADER]
    view = memoryview(data)
    for start in range(0, len(data), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK]))
        parts.append(_INT32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: bytes) -> bytes:
    if not data.startswith(_XERIAL_MAGIC):
        return _snappy_raw(data, MAX_DECOMPRESSED_BYTES)
    parts: list[bytes] = []
    total = 0
    view = memoryview(data)
    position = len(_XERIAL_HEADER)
    while position < len(data):
        if position + 4 > len(data):
            raise CorruptBatchError("xerial snappy block length is truncated")
        (size,) = _INT32.unpack_from(data, position)
        position += 4
        if size < 0 or position + size > len(data):
            raise CorruptBatchError("xerial snappy block is truncated")
        part = _snappy_raw(view[position : position + size], MAX_DECOMPRESSED_BYTES - total)
        total += len(part)
        parts.append(part)
        position += size
    return b"".join(parts)
