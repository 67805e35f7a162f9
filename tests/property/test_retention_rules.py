"""Properties of segments_to_delete over arbitrary segment layouts and limits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from replog.storage.retention import SegmentInfo, segments_to_delete

limits = st.one_of(st.none(), st.just(-1), st.integers(min_value=0, max_value=10_000))


@st.composite
def logs(draw: st.DrawFn) -> list[SegmentInfo]:
    """A log's segments: contiguous offsets, all sealed but the last (some layouts mark a
    segment unsealed early, which the rules must respect too)."""
    count = draw(st.integers(min_value=1, max_value=12))
    segments = []
    base = draw(st.integers(min_value=0, max_value=1000))
    for i in range(count):
        length = draw(st.integers(min_value=0, max_value=50))
        size = draw(st.integers(min_value=0, max_value=3000))
        stamp = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=20_000)))
        sealed = i < count - 1 and draw(st.integers(0, 9)) > 0
        segments.append(SegmentInfo(base, base + length, size, stamp, sealed))
        base += length
    return segments


cases = st.fixed_dictionaries(
    {
        "segments": logs(),
        "now_ms": st.integers(min_value=0, max_value=30_000),
        "retention_ms": limits,
        "retention_bytes": limits,
        "keep_from": st.integers(min_value=0, max_value=2000),
    }
)


def _count(case: dict[str, object]) -> int:
    return segments_to_delete(**case)  # type: ignore[arg-type]


@given(cases)
def test_only_a_prefix_of_sealed_segments_below_keep_from_goes_never_the_active(
    case: dict[str, object],
) -> None:
    segments: list[SegmentInfo] = case["segments"]  # type: ignore[assignment]
    count = _count(case)
    assert 0 <= count < len(segments)  # never the last (active) segment
    for doomed in segments[:count]:
        assert doomed.sealed
        assert doomed.next_offset <= case["keep_from"]  # type: ignore[operator]


@given(cases)
def test_every_deleted_segment_is_expired_or_leaves_at_least_the_size_limit(
    case: dict[str, object],
) -> None:
    segments: list[SegmentInfo] = case["segments"]  # type: ignore[assignment]
    retention_ms, retention_bytes = case["retention_ms"], case["retention_bytes"]
    count = _count(case)
    left = sum(s.size_bytes for s in segments)
    for doomed in segments[:count]:
        left -= doomed.size_bytes
        expired = (
            retention_ms not in (None, -1)
            and doomed.max_timestamp_ms is not None
            and doomed.max_timestamp_ms < case["now_ms"] - retention_ms  # type: ignore[operator]
        )
        fits = retention_bytes not in (None, -1) and left >= retention_bytes  # type: ignore[operator]
        assert expired or fits


@given(cases)
def test_the_prefix_stops_at_the_first_segment_neither_rule_deletes(
    case: dict[str, object],
) -> None:
    segments: list[SegmentInfo] = case["segments"]  # type: ignore[assignment]
    count = _count(case)
    if count + 1 >= len(segments):
        return
    # Deleting one more segment than the answer would break a rule or a guard.
    kept = segments[count]
    left = sum(s.size_bytes for s in segments[count:]) - kept.size_bytes
    retention_ms, retention_bytes = case["retention_ms"], case["retention_bytes"]
    expired = (
        retention_ms not in (None, -1)
        and kept.max_timestamp_ms is not None
        and kept.max_timestamp_ms < case["now_ms"] - retention_ms  # type: ignore[operator]
    )
    fits = retention_bytes not in (None, -1) and left >= retention_bytes  # type: ignore[operator]
    guarded = not kept.sealed or kept.next_offset > case["keep_from"]  # type: ignore[operator]
    assert guarded or not (expired or fits)


@given(cases)
def test_without_limits_nothing_goes_and_a_looser_limit_never_deletes_more(
    case: dict[str, object],
) -> None:
    assert _count({**case, "retention_ms": None, "retention_bytes": -1}) == 0
    count = _count(case)
    for name in ("retention_ms", "retention_bytes"):
        limit = case[name]
        if limit not in (None, -1):
            assert _count({**case, name: limit + 1}) <= count  # type: ignore[operator]
