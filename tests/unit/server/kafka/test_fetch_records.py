"""A fetch's batches built from stored bytes (``payloads_to_batches``) are byte for byte
those ``records_to_batches`` builds from the parsed records: runs of append times, offset
gaps, terms, replicated batches, keys, headers, empty and long values, max_bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from replog.server.kafka.fetch_records import payloads_to_batches
from replog.server.kafka.mapping import records_to_batches
from replog.storage.codec import decode_records
from replog.v1.record_pb2 import Header, Record

_rows = st.lists(
    st.tuples(
        st.sampled_from([b"", b"v", b"x" * 100, b"y" * 200, b"z" * 17_000]),
        st.sampled_from([b"", b"", b"k"]),
        st.lists(st.tuples(st.text(max_size=3), st.binary(max_size=3)), max_size=2),
        st.sampled_from([1, 1, 1, 2]),  # offset gap before the record
        st.sampled_from([1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_009]),
        st.sampled_from([0, 0, 3]),  # term
        st.booleans(),  # batch_continues
    ),
    max_size=40,
)


@settings(max_examples=250, deadline=None)
@given(
    rows=_rows,
    first=st.sampled_from([0, 1, 120, 5_000, 2**40]),
    end_gap=st.integers(0, 2),
    max_bytes=st.sampled_from([1, 500, 1 << 30]),
)
def test_batches_from_stored_bytes_are_those_from_parsed_records(
    rows: list[tuple[bytes, bytes, list[tuple[str, bytes]], int, int, int, bool]],
    first: int,
    end_gap: int,
    max_bytes: int,
) -> None:
    payloads, offset = [], first - 1
    for value, key, headers, gap, timestamp, term, continues in rows:
        offset += gap
        record = Record(
            value=value,
            key=key,
            headers=[Header(key=k, value=v) for k, v in headers],
            offset=offset,
            timestamp_ms=timestamp,
            term=term,
            batch_continues=continues,
        )
        payloads.append(record.SerializeToString())
    start = first if not rows or rows[0][3] == 1 else first - 1 + rows[0][3] - 1
    end = offset + 1 + end_gap
    expected = records_to_batches(decode_records(payloads), start, end, max_bytes)
    assert payloads_to_batches(payloads, start, end, max_bytes) == expected
