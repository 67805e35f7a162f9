"""What ``replog produce`` tells its user: the tally of acknowledged and refused records, the
summary line, the error line and the progress line. Pure: no I/O, no clock (times are given)."""

from __future__ import annotations

from dataclasses import dataclass, field

from replog.errors import InvalidArgumentError, ReplogError

__all__ = ["DeliveryTally", "progress_text"]

# Beyond this many partitions the summary names the count, not every partition's range.
_LISTED_PARTITIONS = 4


@dataclass
class DeliveryTally:
    """Outcomes of the records of one ``replog produce``, told in send order.

    ``item`` names what a record came from in messages ("line" for stdin, "value" for
    arguments). ``ranges`` maps each partition written to the lowest and highest
    acknowledged offset.
    """

    item: str = "line"
    acked: int = 0
    failed: int = 0
    first_error: BaseException | None = None
    first_failed: int | None = None  # 1-based position of the first refused record
    fatal: bool = False  # an error that is not about one record (server gone, no access)
    ranges: dict[int, list[int]] = field(default_factory=dict)  # partition: [low, high]

    @property
    def told(self) -> int:
        """How many outcomes were told so far."""
        return self.acked + self.failed

    def acknowledged(self, partition: int, offset: int) -> None:
        """The next record was appended at ``offset`` of ``partition``."""
        self.acked += 1
        span = self.ranges.get(partition)
        if span is None:
            self.ranges[partition] = [offset, offset]
        elif offset > span[1]:
            span[1] = offset
        elif offset < span[0]:
            span[0] = offset

    def refused(self, error: BaseException) -> None:
        """The next record was not acknowledged, because of ``error``.

        An invalid record (too large, say) concerns that record only; any other error
        (unavailable, permission denied, unknown topic...) makes the tally ``fatal``.
        """
        self.failed += 1
        if self.first_error is None:
            self.first_error = error
            self.first_failed = self.told
        if not isinstance(error, InvalidArgumentError):
            self.fatal = True

    def offsets_text(self, *, named: bool) -> str:
        """The acknowledged offsets: ``offsets 0..99``; with ``named`` (or several
        partitions) ``offsets 0..9 of partition 0, 0..7 of partition 1``; beyond four
        partitions their count and the lowest and highest offset."""
        if not self.ranges:
            return "no offsets"
        ranges = sorted(self.ranges.items())
        if len(ranges) > _LISTED_PARTITIONS:
            low = min(low for _, (low, _) in ranges)
            high = max(high for _, (_, high) in ranges)
            return f"offsets {low}..{high} over {len(ranges)} partitions"
        if len(ranges) == 1 and not named:
            ((_, (low, high)),) = ranges
            return f"offsets {low}..{high}"
        spans = [f"{low}..{high} of partition {p}" for p, (low, high) in ranges]
        return "offsets " + ", ".join(spans)

    def summary(self, *, named: bool) -> str:
        """The line printed when every record was acknowledged."""
        if not self.acked:
            return "no records produced"
        noun = "record" if self.acked == 1 else "records"
        return f"produced {self.acked} {noun} ({self.offsets_text(named=named)})"

    def error_line(self, *, named: bool, stopped: bool) -> str:
        """The line printed when some record was not acknowledged; ``stopped``: the input
        was not read to its end."""
        error = self.first_error
        cause = _error_text(error) if error is not None else "interrupted"
        where = f"first: {self.item} {self.first_failed}, " if self.first_failed else ""
        done = "none was"
        if self.acked:
            verb = "was" if self.acked == 1 else "were"
            done = f"{self.acked} {verb}, {self.offsets_text(named=named)}"
        line = f"{self.failed} of {self.told} records were not acknowledged ({where}{cause})"
        line += f"; {done}"
        if stopped:
            line += f"; input not read past {self.item} {self.told}"
        return line


def _error_text(error: BaseException) -> str:
    if isinstance(error, ReplogError):
        return str(error) or error.code
    return f"{type(error).__name__}: {error}"


def progress_text(
    sent: int, acked: int, elapsed_s: float, read_bytes: int = 0, total_bytes: int | None = None
) -> str:
    """The live line: records sent and acknowledged, the acknowledgement rate since the
    start, and how much of a file was read when its size is known."""
    rate = acked / elapsed_s if elapsed_s > 0 else 0.0
    text = f"{sent:,} records sent, {acked:,} acknowledged, {rate:,.0f} records/s"
    if total_bytes:
        text += f", {min(100.0, 100 * read_bytes / total_bytes):.0f}% read"
    return text
