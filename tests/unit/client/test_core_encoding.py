"""Records and produce requests encoded by hand are the bytes protobuf would produce."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replog.client.core import encode_batch_request, encode_record
from replog.v1.log_pb2 import ProduceBatchRequest
from replog.v1.record_pb2 import Record

blobs = st.binary(max_size=200) | st.sampled_from([b"", b"k" * 300])


@given(blobs, st.none() | blobs)
def test_a_value_and_key_encode_as_protobuf_does(value: bytes, key: bytes | None) -> None:
    expected = Record(value=value, key=key or b"").SerializeToString()
    assert encode_record(value, key) == expected


@given(blobs, st.dictionaries(st.text(max_size=3), st.binary(max_size=3), max_size=3))
def test_headers_are_kept(value: bytes, headers: dict[str, bytes]) -> None:
    record = Record.FromString(encode_record(value, b"k", headers))
    assert record.value == value and record.key == b"k"
    assert [(h.key, h.value) for h in record.headers] == list(headers.items())


@given(st.lists(st.tuples(blobs, st.none() | blobs), min_size=1, max_size=5))
def test_a_batch_request_is_the_protobuf_message(pairs: list[tuple[bytes, bytes | None]]) -> None:
    records = [Record(value=v, key=k or b"") for v, k in pairs]
    encoded = encode_batch_request([encode_record(v, k) for v, k in pairs])
    assert encoded == ProduceBatchRequest(records=records).SerializeToString()
