"""segments_to_delete: Kafka's retention rules by age and size, as a pure function."""

from __future__ import annotations

import pytest

from replog.errors import InvalidArgumentError
from replog.storage.retention import SegmentInfo, segments_to_delete

NOW = 1_000_000


def layout(*sizes_and_stamps: tuple[int, int | None]) -> list[SegmentInfo]:
    """Segments of 10 offsets each, the last one active."""
    infos = []
    for i, (size, stamp) in enumerate(sizes_and_stamps):
        sealed = i < len(sizes_and_stamps) - 1
        infos.append(SegmentInfo(i * 10, i * 10 + 10, size, stamp, sealed))
    return infos


def delete(
    segments: list[SegmentInfo],
    *,
    retention_ms: int | None = None,
    retention_bytes: int | None = None,
    keep_from: int = 10**9,
) -> int:
    return segments_to_delete(
        segments,
        now_ms=NOW,
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        keep_from=keep_from,
    )


def test_no_limit_deletes_nothing() -> None:
    segments = layout((100, 1), (100, 1), (100, 1))
    assert delete(segments) == 0
    assert delete(segments, retention_ms=-1, retention_bytes=-1) == 0


def test_time_deletes_segments_whose_newest_record_is_older_than_the_limit() -> None:
    limit = NOW - 500
    segments = layout((1, limit - 2), (1, limit - 1), (1, limit), (1, limit - 9))
    # Strictly older (Kafka: now - largestTimestamp > retention.ms); the active one stays.
    assert delete(segments, retention_ms=500) == 2


def test_time_stops_at_the_first_segment_it_keeps() -> None:
    segments = layout((1, 1), (1, NOW), (1, 1), (1, 1))
    assert delete(segments, retention_ms=10) == 1


def test_a_segment_without_a_known_timestamp_is_never_deleted_by_time() -> None:
    segments = layout((1, None), (1, 1), (1, 1))
    assert delete(segments, retention_ms=0) == 0
    assert delete(segments, retention_ms=0, retention_bytes=0) == 2  # size still may


def test_size_deletes_while_what_is_left_still_holds_the_limit() -> None:
    segments = layout((100, None), (100, None), (100, None), (50, None))
    assert delete(segments, retention_bytes=250) == 1  # 350 - 100 = 250 >= 250, 150 < 250
    assert delete(segments, retention_bytes=150) == 2
    assert delete(segments, retention_bytes=149) == 2
    assert delete(segments, retention_bytes=351) == 0
    assert delete(segments, retention_bytes=0) == 3


def test_the_size_rule_is_kafkas_comparison_at_the_boundary() -> None:
    segments = layout((100, None), (100, None), (50, None))
    # total 250: deleting the first leaves 150 >= 150 -> delete; the second would leave 50.
    assert delete(segments, retention_bytes=150) == 1
    assert delete(segments, retention_bytes=151) == 0


def test_either_rule_can_delete_a_segment_of_the_prefix() -> None:
    segments = layout((500, NOW), (10, 1), (10, NOW), (10, NOW))
    # The first is too big (size), the second too old (time), the third neither.
    assert delete(segments, retention_ms=100, retention_bytes=30) == 2


def test_nothing_at_or_above_keep_from_is_deleted() -> None:
    segments = layout((1, 1), (1, 1), (1, 1), (1, 1))
    assert delete(segments, retention_ms=0, keep_from=20) == 2
    assert delete(segments, retention_ms=0, keep_from=19) == 1
    assert delete(segments, retention_ms=0, keep_from=0) == 0


def test_the_active_segment_is_never_deleted_even_if_marked_sealed() -> None:
    segments = [SegmentInfo(0, 10, 1, 1, True), SegmentInfo(10, 20, 1, 1, True)]
    assert delete(segments, retention_ms=0, retention_bytes=0) == 1
    assert delete(segments[:1], retention_ms=0, retention_bytes=0) == 0
    assert delete([], retention_ms=0, retention_bytes=0) == 0


def test_an_unsealed_segment_stops_the_prefix() -> None:
    segments = [SegmentInfo(0, 10, 1, 1, False), SegmentInfo(10, 20, 1, 1, False)]
    assert delete(segments, retention_ms=0, retention_bytes=0) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retention_ms": -2},
        {"retention_bytes": -5},
        {"retention_ms": True},
        {"retention_bytes": "1"},
        {"retention_ms": 2**63},
        {"keep_from": -1},
        {"keep_from": None},
    ],
)
def test_a_bad_limit_is_an_invalid_argument(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        delete(layout((1, 1), (1, 1)), **kwargs)  # type: ignore[arg-type]
