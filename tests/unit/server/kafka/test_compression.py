"""Kafka's compression codecs: each round trips, snappy reads both framings, and a payload
that does not decompress is refused with a typed error."""

from __future__ import annotations

import struct

import cramjam
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replog.errors import CorruptBatchError, UnsupportedError
from replog.server.kafka.compression import Compression, compress, decompress

XERIAL_MAGIC = b"\x82SNAPPY\x00"


@pytest.mark.parametrize("codec", list(Compression), ids=lambda codec: codec.name.lower())
@given(data=st.binary(max_size=100_000))
def test_every_codec_decompresses_what_it_compressed(codec: Compression, data: bytes) -> None:
    assert decompress(codec, compress(codec, data)) == data


def test_snappy_is_written_in_xerial_framing_with_32_kib_blocks() -> None:
    data = bytes(range(256)) * 300  # 76,800 bytes: three blocks
    framed = compress(Compression.SNAPPY, data)
    assert framed.startswith(XERIAL_MAGIC + struct.pack(">ii", 1, 1))
    position, blocks = 16, []
    while position < len(framed):
        (size,) = struct.unpack_from(">i", framed, position)
        blocks.append(
            bytes(cramjam.snappy.decompress_raw(framed[position + 4 : position + 4 + size]))
        )
        position += 4 + size
    assert [len(block) for block in blocks] == [32768, 32768, 11264]
    assert b"".join(blocks) == data


def test_plain_snappy_as_librdkafka_writes_it_is_read() -> None:
    data = b"plain snappy block " * 50
    assert decompress(Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data


def test_a_truncated_xerial_block_is_refused() -> None:
    framed = compress(Compression.SNAPPY, b"x" * 1000)
    with pytest.raises(CorruptBatchError, match="truncated"):
        decompress(Compression.SNAPPY, framed[:-3])


@pytest.mark.parametrize(
    "codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
)
def test_bytes_that_are_not_of_the_codec_are_refused(codec: Compression) -> None:
    with pytest.raises(CorruptBatchError, match="does not decompress"):
        decompress(codec, b"\x00\x01garbage that is no compressed stream\xff" * 3)


def test_a_codec_number_kafka_does_not_define_is_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="codec 5"):
        decompress(5, b"")
