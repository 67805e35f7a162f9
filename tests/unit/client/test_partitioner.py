"""The client's copy of Kafka's partitioner agrees with the server's, bit for bit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replog.broker import partitioner as server
from replog.client import partitioner as client


@given(st.binary(max_size=300), st.integers(1, 4096))
def test_the_client_and_the_server_choose_the_same_partition(key: bytes, partitions: int) -> None:
    assert client.murmur2(key) == server.murmur2(key)
    assert client.partition_for_key(key, partitions) == server.partition_for_key(key, partitions)


def test_kafkas_own_vectors() -> None:
    # From Kafka's UtilsTest.testMurmur2.
    assert client.murmur2(b"21") == -973932308
    assert client.murmur2(b"foobar") == -790332482
    assert client.murmur2(b"a-little-bit-long-string") == -985981536
    assert client.murmur2(b"a-little-bit-longer-string") == -1486304829
    assert client.murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert client.murmur2(b"abc") == 479470107
