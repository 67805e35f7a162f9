"""What ``replog produce`` says: the tally of outcomes and its summary, error and progress
lines (pure; the command itself is tested against a real server in tests/integration)."""

from __future__ import annotations

from replog.cli.produce_report import DeliveryTally, progress_text
from replog.errors import RecordTooLargeError, UnavailableError


def _tally(outcomes: list[tuple[int, int] | Exception], item: str = "line") -> DeliveryTally:
    tally = DeliveryTally(item=item)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            tally.refused(outcome)
        else:
            tally.acknowledged(*outcome)
    return tally


def test_a_summary_gives_the_offset_range_of_each_partition_written() -> None:
    one = _tally([(0, 5), (0, 6), (0, 7)])
    assert one.summary(named=False) == "produced 3 records (offsets 5..7)"
    assert one.summary(named=True) == "produced 3 records (offsets 5..7 of partition 0)"
    two = _tally([(1, 0), (0, 10), (1, 1), (0, 11)])
    assert two.summary(named=False) == (
        "produced 4 records (offsets 10..11 of partition 0, 0..1 of partition 1)"
    )
    assert _tally([(0, 0)]).summary(named=False) == "produced 1 record (offsets 0..0)"
    assert _tally([]).summary(named=False) == "no records produced"


def test_beyond_four_partitions_the_summary_gives_their_count_and_the_extremes() -> None:
    many = _tally([(p, 100 * p + i) for p in range(6) for i in range(3)])
    assert many.summary(named=False) == "produced 18 records (offsets 0..502 over 6 partitions)"


def test_an_invalid_record_is_counted_and_the_run_goes_on() -> None:
    tally = _tally([(0, 0), RecordTooLargeError(2000, 1000), (0, 1)])
    assert (tally.acked, tally.failed, tally.told, tally.fatal) == (2, 1, 3, False)
    assert tally.error_line(named=False, stopped=False) == (
        "1 of 3 records were not acknowledged (first: line 2, record of 2000 bytes is over "
        "the limit of 1000 bytes); 2 were, offsets 0..1"
    )


def test_an_unavailable_server_is_fatal_and_the_line_says_where_input_stopped() -> None:
    tally = _tally([UnavailableError("server unavailable"), (0, 0)], item="value")
    tally.refused(RecordTooLargeError(2000, 1000))  # the first error is the one told
    assert tally.fatal
    assert tally.error_line(named=True, stopped=True) == (
        "2 of 3 records were not acknowledged (first: value 1, server unavailable); "
        "1 was, offsets 0..0 of partition 0; input not read past value 3"
    )
    nothing = _tally([UnavailableError("down")])
    assert nothing.error_line(named=False, stopped=False).endswith("; none was")


def test_the_progress_line_gives_counts_rate_and_the_share_of_a_file_read() -> None:
    assert progress_text(1500, 1000, 2.0) == (
        "1,500 records sent, 1,000 acknowledged, 500 records/s"
    )
    assert progress_text(0, 0, 0.0) == "0 records sent, 0 acknowledged, 0 records/s"
    assert progress_text(10, 10, 1.0, 250, 1000).endswith(", 25% read")
